"""What ``netkit measure requests`` shows: per-second intervals while it runs, then the summary.

- On a terminal (stderr), the intervals are a live table (:class:`RequestsProgress` through
  :class:`netkit.render.live.LiveScreen`), erased when the run ends so the summary is the clean
  last screen. Off a terminal, ``--format table`` prints one plain line per interval
  (:func:`requests_interval_line`, like iperf3's interval lines); ``--format jsonl`` one ``interval`` event.
- The summary (:func:`requests_summary_table`) is two fitted tables: the rates (req/s always whole) and the
  latency percentiles (p50 and p99 always whole), each with its unit in every cell; columns that do
  not fit the terminal are dropped, least important first.

Nothing here reads a socket or a clock: it formats a :class:`netkit.core.requests_result.RequestsResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from netkit.core.escape import safe_text
from netkit.core.pacing import fell_behind
from netkit.core.requests_result import RequestsInterval, RequestsResult
from netkit.core.units import format_bitrate, format_count, format_ms, format_rate, three_digits
from netkit.render.live import IntervalProgress
from netkit.render.tables import Col, cell, fitted_table, verdict_lines

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType
    from rich.table import Table

    from netkit.render.output import Output

#: Interval rows the live view keeps on screen.
LIVE_ROWS = 10
#: A closed loop whose max is this far above p99 (and at least STALL_MIN_MS) may hide a stall.
STALL_FACTOR = 20.0
STALL_MIN_MS = 50.0
_GAP = "  "


def _ms(value: float | None) -> str:
    return format_ms(value)


# ----- interval lines (table format off a terminal) ---------------------------------------------

def _interval_fields(row: RequestsInterval) -> list[tuple[str, int]]:
    """The pieces of one interval line with how readily each is left out (0: never)."""
    lat = row.latency_ms
    return [
        (f"{row.start_s:6.2f}-{row.end_s:6.2f} s", 0),
        (f"{format_rate(row.requests_per_s, 'req/s'):>13}", 0),
        (f"p50 {_ms(lat.get('p50')):>9}", 0),
        (f"p99 {_ms(lat.get('p99')):>9}", 0),
        (f"max {_ms(lat.get('max')):>9}", 2),
        (f"errors {format_count(row.errors):>3}", 1),
        (f"reconnects {format_count(row.reconnects):>2}", 3),
        (f"conns {format_count(row.open_connections):>3}", 4),
    ]


def requests_interval_line(row: RequestsInterval, *, width: int | None = None) -> str:
    """One plain per-second line; on a terminal of ``width`` columns the least important fields are
    left out until it fits (the time, req/s, p50 and p99 always stay)."""
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
                Col("errors", "right", drop=1), Col("max", "right", drop=2), Col("reconnects", "right", drop=3),
                Col("conns", "right", drop=4))


def requests_live_table(rows: Sequence[RequestsInterval], *, width: int | None) -> Table:
    """The last :data:`LIVE_ROWS` intervals as a table fitted to ``width``."""
    cells = [[f"{r.end_s:.1f} s", format_rate(r.requests_per_s, "req/s"), _ms(r.latency_ms.get("p50")),
              _ms(r.latency_ms.get("p99")), format_count(r.errors), _ms(r.latency_ms.get("max")),
              format_count(r.reconnects), format_count(r.open_connections)] for r in rows[-LIVE_ROWS:]]
    return fitted_table(LIVE_COLUMNS, cells, width=width, title="measure requests (live)")


class RequestsProgress(IntervalProgress[RequestsInterval]):
    """Where intervals go while the run lasts: jsonl events, the live view, or plain lines.

    ``with RequestsProgress(out) as progress: measure_requests(cfg, sink=progress.add)``.
    """

    live_rows = LIVE_ROWS

    def live_table(self, rows: Sequence[RequestsInterval], width: int | None) -> Table:
        return requests_live_table(rows, width=width)

    def line(self, row: RequestsInterval, width: int | None) -> str:
        return requests_interval_line(row, width=width)


# ----- the summary ------------------------------------------------------------------------------

RATE_COLUMNS = (Col("requests", "right", drop=1), Col("rate", "right"), Col("errors", "right", drop=2),
                Col("conns", "right", drop=3), Col("sent", "right", drop=4), Col("received", "right", drop=4),
                Col("reconnects", "right", drop=5))
LATENCY_COLUMNS = (Col("min", "right", drop=3), Col("avg", "right", drop=2), Col("p50", "right"),
                   Col("p90", "right", drop=2), Col("p99", "right"), Col("p99.9", "right", drop=1),
                   Col("max", "right", drop=1))


def stall_hint(result: RequestsResult) -> str | None:
    """A closed loop whose max is far above its p99: a stall may hide behind coordinated omission."""
    lat = result.latency
    if result.open_loop or lat.max is None or lat.p99 is None:
        return None
    if lat.max < max(STALL_MIN_MS, STALL_FACTOR * lat.p99):
        return None
    return (f"hint: max {_ms(lat.max)} is far above p99: a stall may be hidden by coordinated omission; "
            "an open loop (--rate) counts it for every request it delayed")


def requests_summary_table(result: RequestsResult, *, width: int | None = None) -> RenderableType:
    """The run's summary, fitted to ``width`` columns (None: every column)."""
    from rich.console import Group
    from rich.text import Text

    doc = result.to_json()
    target = safe_text(result.target) + (", tls" if result.tls else "")
    rps = result.requests_per_s
    bps = doc["bytes_per_s"]
    rates = fitted_table(
        RATE_COLUMNS,
        [[format_count(result.requests), "-" if rps is None else format_rate(rps, "req/s"),
          format_count(result.errors_total), format_count(result.connections),
          # in bits per second, as every rate netkit shows (JSON keeps bytes_per_s)
          "-" if bps["sent"] is None else format_bitrate(bps["sent"] * 8),
          "-" if bps["received"] is None else format_bitrate(bps["received"] * 8),
          format_count(result.reconnects)]],
        width=width, title=f"measure requests {target} ({result.mode.value}"
        + (", stopped early)" if result.interrupted else ")"))
    la = result.latency
    latency = fitted_table(
        LATENCY_COLUMNS, [[_ms(v) for v in (la.min, la.avg, la.p50, la.p90, la.p99, la.p99_9, la.max)]],
        width=width, title="latency (from the " + ("scheduled time)" if result.open_loop else "send)"))
    parts: list[RenderableType] = [rates, Text(""), latency]
    errs = {k: v for k, v in doc["errors"].items() if k != "total" and v}
    if errs:
        parts.append(Text("errors: " + ", ".join(f"{k} {format_count(v)}" for k, v in errs.items()),
                          style="yellow"))
    if result.drops:
        parts.append(Text(f"connections dropped: {format_count(result.drops)}, "
                          f"reconnected: {format_count(result.reconnects)}"))
    if result.error and errs:
        parts.append(Text.assemble(("last error: ", "bold"), cell(result.error, style="yellow")))
    parts.append(Text(f"note: {result.note}", style="dim"))
    hint = stall_hint(result)
    if hint is not None:
        parts.append(Text(hint, style="yellow"))
    th = result.thresholds
    if th.given:  # without a threshold the exit status and the one stderr line say it
        parts.extend(verdict_lines(th.passed, th.failed))
    return Group(*parts)


def rate_shortfall(result: RequestsResult) -> str | None:
    """Why an open loop sent less than it was asked (one warning), or None when it kept up."""
    if result.rate_rps is None or result.elapsed_ns <= 0:
        return None
    sent_rate = result.sent / result.elapsed_s
    if not fell_behind(result.rate_rps, sent_rate):
        return None
    if result.unsent:
        why = (f"the sender could not keep up: {format_count(result.unsent)} scheduled requests never left "
               "this host (a shortfall of this client, not errors of the server)")
    else:
        why = (f"all {format_count(result.connections)} connections were busy: "
               f"{format_count(result.errors.get('overload', 0))} requests found none within --timeout "
               "(counted as overload; more --connections offer more load)")
    return (f"{safe_text(result.target)}: {format_rate(sent_rate, 'requests/s')} sent of "
            f"{three_digits(result.rate_rps)} asked: {why}")


def render_requests(out: Output, result: RequestsResult) -> None:
    """The summary in the chosen format on stdout; the shortfall warning and failed checks on stderr."""
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
        out.print(requests_summary_table(result, width=out.width))
    shortfall = rate_shortfall(result)
    if shortfall is not None:
        out.warn(shortfall)
    if not (out.table_on_screen and result.thresholds.given):  # the table lists each failed check
        for f in result.thresholds.failed:
            out.info(f"netkit: check failed: {f}")
