"""What ``netkit measure connections`` shows: per-second intervals while it runs, then the summary.

- On a terminal (stderr), the intervals are a live table (:class:`ConnectionsProgress` through
  :class:`netkit.render.live.LiveScreen`), erased when the run ends so the summary is the clean last
  screen. Off a terminal, ``--format table`` prints one plain line per interval
  (:func:`connections_interval_line`); ``--format jsonl`` one ``interval`` event.
- The summary (:func:`connections_summary_table`) is fitted tables: the rate (conn/s always whole),
  the connect latency percentiles and, with ``--send``/``--expect``, the transaction's; then the
  errors by kind and the TIME_WAIT sockets left behind.

Nothing here reads a socket or a clock: it formats a
:class:`netkit.core.connections_result.ConnectionsResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from netkit.core.connections_result import ConnectionsInterval, ConnectionsResult
from netkit.core.escape import safe_text
from netkit.core.latency_histogram import LatencyMs
from netkit.core.units import format_count, format_ms, format_rate
from netkit.render.live import IntervalProgress
from netkit.render.tables import Col, cell, fitted_table, verdict_lines

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType
    from rich.table import Table

    from netkit.render.output import Output

#: Interval rows the live view keeps on screen.
LIVE_ROWS = 10
_GAP = "  "


# ----- interval lines (table format off a terminal) ---------------------------------------------

def _interval_fields(row: ConnectionsInterval) -> list[tuple[str, int]]:
    """The pieces of one interval line with how readily each is left out (0: never)."""
    lat = row.connect_ms
    return [
        (f"{row.start_s:6.2f}-{row.end_s:6.2f} s", 0),
        (f"{format_rate(row.connections_per_s, 'conn/s'):>14}", 0),
        (f"p50 {format_ms(lat.get('p50')):>9}", 0),
        (f"p99 {format_ms(lat.get('p99')):>9}", 0),
        (f"errors {format_count(row.errors):>3}", 1),
        (f"max {format_ms(lat.get('max')):>9}", 2),
    ]


def connections_interval_line(row: ConnectionsInterval, *, width: int | None = None) -> str:
    """One plain per-second line; on a terminal of ``width`` columns the least important fields are
    left out until it fits (the time, conn/s, p50 and p99 always stay)."""
    fields = _interval_fields(row)
    keep = list(range(len(fields)))
    if width is not None:
        for i in sorted(range(len(fields)), key=lambda i: (-fields[i][1], -i)):
            if len(_GAP.join(fields[k][0] for k in keep)) <= width:
                break
            if fields[i][1] > 0:
                keep.remove(i)
    return _GAP.join(fields[k][0] for k in keep).rstrip()


# ----- the live view (stderr, a terminal) --------------------------------------------------------

LIVE_COLUMNS = (Col("time", "right"), Col("rate", "right"), Col("p50", "right"), Col("p99", "right"),
                Col("errors", "right", drop=1), Col("max", "right", drop=2))


def connections_live_table(rows: Sequence[ConnectionsInterval], *, width: int | None) -> Table:
    """The last :data:`LIVE_ROWS` intervals as a table fitted to ``width``."""
    cells = [[f"{r.end_s:.1f} s", format_rate(r.connections_per_s, "conn/s"), format_ms(r.connect_ms.get("p50")),
              format_ms(r.connect_ms.get("p99")), format_count(r.errors), format_ms(r.connect_ms.get("max"))]
             for r in rows[-LIVE_ROWS:]]
    return fitted_table(LIVE_COLUMNS, cells, width=width, title="measure connections (live)")


class ConnectionsProgress(IntervalProgress[ConnectionsInterval]):
    """Where intervals go while the run lasts: jsonl events, the live view, or plain lines.

    ``with ConnectionsProgress(out) as progress: measure_connections(cfg, sink=progress.add)``.
    """

    live_rows = LIVE_ROWS

    def live_table(self, rows: Sequence[ConnectionsInterval], width: int | None) -> Table:
        return connections_live_table(rows, width=width)

    def line(self, row: ConnectionsInterval, width: int | None) -> str:
        return connections_interval_line(row, width=width)


# ----- the summary ------------------------------------------------------------------------------

RATE_COLUMNS = (Col("connections", "right", drop=1), Col("rate", "right"), Col("errors", "right"),
                Col("concurrency", "right", drop=3), Col("close", "right", drop=4),
                Col("time-wait", "right", drop=2))
LATENCY_COLUMNS = (Col("min", "right", drop=3), Col("avg", "right", drop=2), Col("p50", "right"),
                   Col("p90", "right", drop=2), Col("p99", "right"), Col("p99.9", "right", drop=1),
                   Col("max", "right", drop=1))


def _latency_row(la: LatencyMs) -> list[str]:
    return [format_ms(v) for v in (la.min, la.avg, la.p50, la.p90, la.p99, la.p99_9, la.max)]


def connections_summary_table(result: ConnectionsResult, *, width: int | None = None) -> RenderableType:
    """The run's summary, fitted to ``width`` columns (None: every column)."""
    from rich.console import Group
    from rich.text import Text

    doc = result.to_json()
    rate = result.connections_per_s
    rates = fitted_table(
        RATE_COLUMNS,
        [[format_count(result.connections), "-" if rate is None else format_rate(rate, "conn/s"),
          format_count(result.errors_total), format_count(result.concurrency), result.close.value,
          "-" if result.time_wait is None else format_count(result.time_wait)]],
        width=width, title=f"measure connections {safe_text(result.target)}"
        + (" (stopped early)" if result.interrupted else ""))
    parts: list[RenderableType] = [
        rates, Text(""),
        fitted_table(LATENCY_COLUMNS, [_latency_row(result.connect)], width=width,
                     title="connect latency"),
    ]
    if result.transaction is not None:
        parts += [Text(""), fitted_table(LATENCY_COLUMNS, [_latency_row(result.transaction)], width=width,
                                         title=f"transaction latency ({format_count(result.send)} B sent, "
                                               f"{format_count(result.expect)} B back)")]
    errs = {k: v for k, v in doc["errors"].items() if k != "total" and v}
    if errs:
        parts.append(Text("errors: " + ", ".join(f"{k} {format_count(v)}" for k, v in errs.items()),
                          style="yellow"))
    if result.error and errs:
        parts.append(Text.assemble(("last error: ", "bold"), cell(result.error, style="yellow")))
    if errs.get("eaddrnotavail"):
        parts.append(Text("hint: eaddrnotavail is local port exhaustion: every ephemeral port toward the "
                          "target is in use or in TIME_WAIT (--close rst leaves none; see "
                          "net.ipv4.ip_local_port_range)", style="yellow"))
    if result.abandoned:
        parts.append(Text(f"still under way at the end (not counted): {format_count(result.abandoned)}",
                          style="dim"))
    th = result.thresholds
    if th.given:
        parts.extend(verdict_lines(th.passed, th.failed))
    return Group(*parts)


def render_connections(out: Output, result: ConnectionsResult) -> None:
    """The summary in the chosen format on stdout; failed checks on stderr."""
    from netkit.render.output import flatten

    doc = result.to_json()
    if out.format == "json":
        out.json(result.to_json(intervals=True))
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", **doc})
    elif out.format == "csv":
        row = flatten(doc)
        row["thresholds.failed"] = ";".join(result.thresholds.failed)
        out.csv_rows([row])
    else:
        out.print(connections_summary_table(result, width=out.width))
    if not (out.table_on_screen and result.thresholds.given):
        for f in result.thresholds.failed:
            out.info(f"netkit: check failed: {f}")
