"""A server's totals at its end (``serve iperf3``, ``serve responsiveness``): one shape for both.

json/jsonl/csv write the summary dataclass's fields as published (jsonl as ``"event": "summary"``);
a table run shows the human rows the server's renderer gives, as a field/value table whose values fold
rather than being cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from netkit.core.escape import safe_text
from netkit.core.units import format_count, format_duration

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from netkit.render.output import Output


def counts_text(counts: Mapping[str, int]) -> str:
    """``name n, name n`` of the non-zero counts (names are peers' words: escaped), or ``none``."""
    return ", ".join(f"{safe_text(k)} {format_count(v)}" for k, v in counts.items() if v) or "none"


def closing_rows(elapsed_ms: float, stopped_by: str | None, events_dropped: int | None) -> list[tuple[str, str]]:
    """The rows every server's summary ends with: how long it ran, what stopped it, events dropped."""
    rows = [("elapsed", format_duration(elapsed_ms / 1000)), ("stopped by", stopped_by or "-")]
    if events_dropped:
        rows.append(("events dropped", format_count(events_dropped)))
    return rows


def field_table(rows: list[tuple[str, str]], *, width: int | None, title: str) -> Table:
    from netkit.render.tables import Col, fitted_table

    return fitted_table([Col("field"), Col("value", fold=True)], rows, width=width, title=title)


def print_server_summary(out: Output, summary: Any, rows: list[tuple[str, str]], title: str,
                         events_dropped: int | None = None) -> None:
    """Emit ``summary`` (a dataclass) in the output's format; ``rows`` are its lines for people."""
    from netkit.render.output import to_jsonable

    record: dict[str, Any] = to_jsonable(summary)
    if events_dropped is not None:
        record["events_dropped"] = events_dropped
    if out.format == "jsonl":
        out.jsonl({"event": "summary", **record})
        return
    out.emit(record, table=lambda: field_table(rows, width=out.width, title=title), rows=[record])


__all__ = ["closing_rows", "counts_text", "field_table", "print_server_summary"]
