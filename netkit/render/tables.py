"""Small helpers for building Rich tables safely (lazy Rich import)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

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



def verdict_lines(passed: bool, failed: Sequence[str]) -> list[Text]:
    """``thresholds: PASS`` (or FAIL) and a line for each failed check, as the meters print them."""
    from rich.text import Text

    lines = [Text(f"thresholds: {'PASS' if passed else 'FAIL'}", style="green" if passed else "red bold")]
    lines += [cell(f"  {f}", style="red") for f in failed]
    return lines

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


# ----- tables that fit the screen ----------------------------------------------------------------
@dataclass(frozen=True)
class Col:
    """One column of a :func:`fitted_table`.

    ``drop``: 0 for a column that always shows (what identifies a row, its state, the headline
    figures); columns with higher numbers are dropped first when the rows are wider than the screen.
    ``fold``: free text (an error, a banner) that may wrap onto more lines within its column
    instead of widening the table; it is given what is left of the width, at least ``FOLD_MIN``.
    Nothing is ever cut with an ellipsis: a cell that does not fit wraps whole.
    """

    name: str
    justify: Literal["left", "right"] = "left"
    drop: int = 0
    fold: bool = False


FOLD_MIN = 12  # a folded column narrower than this reads letter by letter: drop another column first
_GAP = 2  # characters between two columns of a fitted table


def _text_width(value: Any) -> int:
    from rich.cells import cell_len

    plain = value.plain if hasattr(value, "plain") else str(value)
    return max((cell_len(line) for line in plain.splitlines()), default=0)


def _needed_width(cols: Sequence[Col], natural: Sequence[int], shown: Sequence[int]) -> int:
    widths = [min(natural[i], FOLD_MIN) if cols[i].fold else natural[i] for i in shown]
    return sum(widths) + _GAP * (len(shown) - 1)


def _natural_widths(cols: Sequence[Col], rows: Sequence[Sequence[Any]]) -> list[int]:
    return [max([_text_width(c.name)] + [_text_width(r[i]) for r in rows]) for i, c in enumerate(cols)]


def fit_columns(cols: Sequence[Col], rows: Sequence[Sequence[Any]], width: int | None) -> list[int]:
    """The indexes of the columns to show so that the rows fit in ``width`` characters.

    Drops the highest ``drop`` numbers first (the rightmost first among equals); a column with
    ``drop == 0`` is never dropped. ``width`` None (not a terminal) keeps every column.
    """
    keep = list(range(len(cols)))
    if width is None:
        return keep
    natural = _natural_widths(cols, rows)
    droppable = sorted((i for i, c in enumerate(cols) if c.drop > 0), key=lambda i: (-cols[i].drop, -i))
    for i in droppable:
        if _needed_width(cols, natural, keep) <= width:
            break
        keep.remove(i)
    return keep


def fitted_table(cols: Sequence[Col], rows: Sequence[Sequence[Any]], *, width: int | None,
                 title: str | None = None) -> Table:
    """A table of ``rows`` showing only the columns that fit ``width`` (see :func:`fit_columns`).

    Cells may be plain values (shown through :func:`cell`) or Rich ``Text``. Every column except
    the folded ones is ``no_wrap``: an address, a state or a figure with its unit stays on one line.
    """
    from rich import box
    from rich.table import Table

    cells = [[v if hasattr(v, "__rich_console__") else cell(v) for v in row] for row in rows]
    keep = fit_columns(cols, cells, width)
    # When the columns that are never dropped are still wider than the screen, a no_wrap cell
    # would be cropped by Rich without a mark (an IPv6 address cut in the middle): let every
    # cell wrap whole onto more lines instead.
    too_wide = width is not None and _needed_width(cols, _natural_widths(cols, cells), keep) > width
    table = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", title_justify="left",
                  show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for i in keep:
        c = cols[i]
        table.add_column(c.name, justify=c.justify, no_wrap=not (c.fold or too_wide), overflow="fold",
                         min_width=FOLD_MIN if c.fold else None)
    for row in cells:
        table.add_row(*(row[i] for i in keep))
    return table


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[int]) -> str:
    """Recent RTTs as block characters scaled between their min and max."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo
    if span == 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) * len(SPARK) / span))] for v in values)
