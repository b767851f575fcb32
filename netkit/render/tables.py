"""Small helpers for building Rich tables safely (lazy Rich import)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from netkit.core.escape import safe_text

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table
    from rich.text import Text


def cell(value: Any, *, style: str = "") -> Text:
    """Any value as an inert Rich Text: None shows as '-', bytes and str are escaped."""
    from rich.text import Text

    if value is None:
        return Text("-", style="dim")
    if isinstance(value, float):
        return Text(f"{value:.3f}", style=style)
    if isinstance(value, (bytes, bytearray)):
        return Text(safe_text(bytes(value)), style=style)
    return Text(safe_text(str(value)), style=style)


def make_table(columns: Sequence[str | tuple[str, str]], *, title: str | None = None,
               compact: bool = False) -> Table:
    """A table with the house style. A column given as (name, "right") is right-justified.

    ``compact``: two-space gaps and no blank edge columns, for a table of seven or more figures
    with units that must keep one line per row on an 80-column terminal (Rich's default three-space
    gaps would make it wrap every row in two or cut figures short with an ellipsis).
    """
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", title_justify="left")
    if compact:
        table.show_edge = False
        table.padding = (0, 1, 0, 0)
    for col in columns:
        if isinstance(col, tuple):
            table.add_column(col[0], justify=col[1])  # type: ignore[arg-type]
        else:
            table.add_column(col)
    return table


def add_row(table: Table, *values: Any) -> None:
    table.add_row(*(v if hasattr(v, "__rich_console__") else cell(v) for v in values))


STATE_STYLES = {
    "ok": "green",
    "pass": "green",
    "open": "green",
    "fail": "red",
    "closed": "red",
    "timeout": "yellow",
    "unreachable": "red",
    "dns-error": "red",
    "tls-error": "red",
    "mismatch": "yellow",
    "open|filtered": "yellow",
    "skip": "dim",
}


def state_cell(state: str) -> Text:
    return cell(state, style=STATE_STYLES.get(state, ""))
