"""How ``netkit measure throughput`` shows its result: tables, interval lines, the live view, CSV rows.

- On a terminal: a live view on stderr while the test runs (:class:`ThroughputView`, erased when it
  ends), then the intervals and the summary as tables fitted to the width.
- Off a terminal (``table`` format): iperf3-like interval lines as they come, then the summary as
  plain aligned text.
- ``json``: the result; ``jsonl``: one ``interval`` event per interval, then the ``summary`` event;
  ``csv``: one row per interval and the summary (each direction apart with ``--bidir``).

Every rate goes through :func:`format_bitrate` (SI bits, three significant digits), bytes through
:func:`format_bytes` (IEC), counts through :func:`format_count`: one column reads with one precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from netkit.core.throughput_models import (
    RECV,
    SEND,
    CountedBy,
    DirectionSum,
    StreamInterval,
    StreamResult,
    ThroughputInterval,
    ThroughputResult,
)
from netkit.core.units import format_bitrate, format_bytes, format_count, format_ms, format_percent, three_digits
from netkit.render.tables import Col, fitted_table

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

    from netkit.render.live import LiveScreen
    from netkit.render.output import Output

RECENT_ROWS = 12  # intervals the live view keeps on screen
BAR_WIDTH = 30
CSV_FIELDS = ["kind", "start_s", "end_s", "bytes", "bits_per_second", "omitted"]


def _bytes(n: int | None) -> str:
    return "-" if n is None else format_bytes(n)


def _rate(bps: float | None) -> str:
    return "-" if bps is None else format_bitrate(bps)


def _count(n: int | None) -> str:
    return "-" if n is None else format_count(n)


# ----- interval lines (off a terminal) -----------------------------------------------------------

def interval_lines(row: ThroughputInterval, multi: bool) -> list[str]:
    """iperf3-like text lines for one interval: one per stream when there are several, then SUM."""
    span = f"{row.start_s:.2f}-{row.end_s:.2f} s".rjust(15)
    tag = " (omitted)" if row.omitted else ""
    lines = []
    if multi:
        for s in row.streams:
            lines.append(f"[{s.id:>3} {s.direction}] {span} {_bytes(s.bytes):>11} {_rate(s.bits_per_second):>12}{tag}")
    if row.tx_bytes is not None and row.rx_bytes is not None:
        # --bidir: each direction is a throughput; their sum is not
        lines.append(f"[SUM send] {span} {_bytes(row.tx_bytes):>11} {_rate(row.tx_bits_per_second):>12}{tag}")
        lines.append(f"[SUM recv] {span} {_bytes(row.rx_bytes):>11} {_rate(row.rx_bits_per_second):>12}{tag}")
        return lines
    one = row.streams[0] if len(row.streams) == 1 else None
    label = f"[{one.id:>3} {one.direction}]" if one is not None and not multi else "[SUM     ]"
    lines.append(f"{label} {span} {_bytes(row.bytes):>11} {_rate(row.bits_per_second):>12}{tag}")
    return lines


# ----- tables ------------------------------------------------------------------------------------

INTERVAL_COLS = (
    Col("interval", drop=0),
    Col("dir", drop=0),
    Col("bytes", "right", drop=2),
    Col("rate", "right", drop=0),
    Col("", drop=1),  # "omitted"
    Col("streams", drop=3),
)
_GAP = 2  # spaces between columns (and between streams in the streams column)


def _stream_rates(streams: Sequence[StreamInterval]) -> list[str]:
    """``id:rate`` of each stream (none for a single stream: its rate is the row's)."""
    if len(streams) < 2:
        return []
    return [f"{s.id}:{_rate(s.bits_per_second)}" for s in streams]


def _per_line(entries: list[str], room: int | None) -> int:
    """How many streams' rates fit on one line of ``room`` characters (all of them: ``room`` None)."""
    if room is None or not entries:
        return max(1, len(entries))
    return max(1, (room + _GAP) // (max(len(e) for e in entries) + _GAP))


def _lay_out(entries: list[str], room: int | None) -> Text:
    """The streams' rates in lines of ``room`` characters, broken between streams, never inside one
    (a figure keeps its unit); ``room`` None: one line."""
    from rich.text import Text

    if not entries:
        return Text("")
    per_line = _per_line(entries, room)
    width = max(len(e) for e in entries)
    lines = []
    for i in range(0, len(entries), per_line):
        chunk = entries[i:i + per_line]
        lines.append((" " * _GAP).join(e.ljust(width) for e in chunk).rstrip())
    return Text("\n".join(lines))  # a Text: the line breaks are ours (a plain cell would escape them)


def intervals_table(rows: Sequence[ThroughputInterval], *, width: int | None,
                    title: str | None = "intervals", one_line: bool = False) -> Table:
    """One row per interval (two with ``--bidir``: each direction apart), with the streams' rates.

    ``one_line``: every row on one line (the live view), leaving out the streams' rates when they
    would need more."""
    body: list[list[str | Text]] = []
    rates: list[list[str]] = []
    for r in rows:
        span = f"{r.start_s:.2f}-{r.end_s:.2f} s"
        omitted = "omitted" if r.omitted else ""
        if r.tx_bytes is not None and r.rx_bytes is not None:
            for label, n, rate in ((SEND, r.tx_bytes, r.tx_bits_per_second),
                                   (RECV, r.rx_bytes, r.rx_bits_per_second)):
                # a direction's row lists only its own streams: the other direction's rates
                # beside this sum would read as parts of it
                body.append([span, f"{label}", _bytes(n), _rate(rate), omitted])
                rates.append(_stream_rates([s for s in r.streams if s.direction == label]))
            continue
        direction = f"{r.streams[0].direction}" if r.streams else ""
        body.append([span, direction, _bytes(r.bytes), _rate(r.bits_per_second), omitted])
        rates.append(_stream_rates(r.streams))
    cols = list(INTERVAL_COLS[:5])
    if not any(row[4] for row in body):  # no omit period: no empty column
        cols, body = cols[:4], [row[:4] for row in body]
    if any(rates):
        room = None
        if width is not None:
            used = sum(max([len(c.name)] + [len(str(row[i])) for row in body]) for i, c in enumerate(cols))
            room = width - used - _GAP * len(cols)
        if not one_line or all(_per_line(entries, room) >= len(entries) for entries in rates):
            cols.append(INTERVAL_COLS[5])
            body = [[*row, _lay_out(entries, room)] for row, entries in zip(body, rates, strict=True)]
    return fitted_table(cols, body, width=width, title=title)


def _summary_row(label: str, direction: str, sent: int | None, sent_bps: float | None, received: int | None,
                 received_bps: float | None, retransmits: int | None, rtt_ms: float | None,
                 counted_by: str) -> list[str]:
    return [label, direction, _bytes(sent), _rate(sent_bps), _bytes(received), _rate(received_bps),
            _count(retransmits), format_ms(rtt_ms), counted_by]


def _stream_row(st: StreamResult) -> list[str]:
    return _summary_row(f"{st.id}", f"{st.direction}", st.sent_bytes, st.sent_bits_per_second, st.received_bytes,
                        st.received_bits_per_second, st.retransmits, st.rtt_ms, f"{st.counted_by}")


def _direction_row(d: DirectionSum, counted_by: CountedBy) -> list[str]:
    return _summary_row("SUM", f"{d.direction}", d.sent_bytes, d.sent_bits_per_second, d.received_bytes,
                        d.received_bits_per_second, d.retransmits, None, f"{counted_by}")


SUMMARY_COLS = (
    Col("stream", drop=0),
    Col("dir", drop=0),
    Col("sent", "right", drop=3),
    Col("sent rate", "right", drop=0),
    Col("received", "right", drop=2),
    Col("recv rate", "right", drop=0),
    Col("retr", "right", drop=4),
    Col("rtt", "right", drop=5),
    Col("counted by", drop=1),
)


def summary_table(result: ThroughputResult, *, width: int | None) -> RenderableType:
    """Each stream, then the sum (each direction apart with ``--bidir``), and the notes under it."""
    from rich.console import Group

    s = result.summary
    rows = [_stream_row(st) for st in s.streams]
    if result.bidir and s.tx is not None and s.rx is not None:
        rows += [_direction_row(d, result.counted_by) for d in (s.tx, s.rx)]  # a sum of both is no throughput
    else:
        rows.append(_summary_row("SUM", "", s.sent_bytes, s.sent_bits_per_second, s.received_bytes,
                                 s.received_bits_per_second, s.retransmits, s.rtt_ms, f"{result.counted_by}"))
    cols = list(SUMMARY_COLS)
    # Who counted is said once under the table; the column shows only when the streams differ.
    if len({st.counted_by for st in s.streams}) <= 1:
        cols, rows = cols[:-1], [r[:-1] for r in rows]
    if all(r[7] == "-" for r in rows):  # no RTT known (UDP through iperf3, plain reverse)
        cols, rows = cols[:7] + cols[8:], [r[:7] + r[8:] for r in rows]
    if all(r[6] == "-" for r in rows):  # no retransmit count (UDP)
        cols, rows = cols[:6] + cols[7:], [r[:6] + r[7:] for r in rows]
    table = fitted_table(cols, rows, width=width,
                         title=f"throughput {result.target} ({result.server} server, {result.protocol}"
                               + (", stopped early)" if result.interrupted else ")"))
    parts: list[RenderableType] = [table, *notes_under(result)]
    return Group(*parts)


def notes_under(result: ThroughputResult) -> list[Text]:
    """The lines under the summary table: CPU and who counted, UDP loss, the threshold verdict."""
    from rich.text import Text

    s = result.summary
    # CPU time over wall time: above 100 % when the streams' threads ran on several cores
    cpu = "-" if s.cpu_percent is None else f"{three_digits(s.cpu_percent)} %"
    lines = [Text(f"client CPU {cpu}; counted by {result.counted_by}", style="dim")]
    if result.udp is not None:
        # three short lines rather than one that an 80-column terminal would break inside a figure
        u = result.udp
        jitter = "-" if u.jitter_ms is None else format_ms(u.jitter_ms)
        lines.append(Text(f"udp: {format_count(u.packets_sent)} sent, {format_count(u.packets_received)} received, "
                          f"{format_count(u.lost_packets)} lost ({format_percent(u.lost_percent)}), jitter {jitter}"))
        lines.append(Text(f"udp: {format_count(u.reordered)} reordered, {format_count(u.duplicates)} duplicates"))
        if u.local_drops:
            lines.append(Text(f"udp: {format_count(u.local_drops)} dropped by this host's socket buffer (not loss)"))
    th = result.thresholds
    if th.min_rate_bps is not None or not th.passed:
        lines.append(Text(f"thresholds: {'PASS' if th.passed else 'FAIL'}", style="green" if th.passed else "red bold"))
        lines += [Text(f"  {f}", style="red") for f in th.failed]
    return lines


# ----- machine formats ---------------------------------------------------------------------------

def jsonable(result: ThroughputResult, *, intervals: bool = True) -> dict[str, Any]:
    from netkit.render.output import to_jsonable

    d: dict[str, Any] = to_jsonable(result)
    if not intervals:
        d.pop("intervals", None)
    return d


def interval_event(row: ThroughputInterval) -> dict[str, Any]:
    """One ``--format jsonl`` line for an interval."""
    from netkit.render.output import to_jsonable

    return {"event": "interval", **to_jsonable(row)}


def csv_rows(result: ThroughputResult) -> list[dict[str, Any]]:
    """One row per interval, then the summary; with --bidir each direction has its own rows
    (``interval-send``/``interval-recv``, ``summary-send``/``summary-recv``): a sum of both
    directions is not a throughput of either."""
    rows: list[dict[str, Any]] = []
    # a run stopped early ends where its last interval did, not at -t: the summary row's span is
    # what its bytes were counted over
    end_s = result.intervals[-1].end_s if result.interrupted and result.intervals else result.duration_s
    for r in result.intervals:
        if result.bidir and r.tx_bytes is not None and r.rx_bytes is not None:
            for label, n, rate in (("send", r.tx_bytes, r.tx_bits_per_second),
                                   ("recv", r.rx_bytes, r.rx_bits_per_second)):
                rows.append({"kind": f"interval-{label}", "start_s": r.start_s, "end_s": r.end_s, "bytes": n,
                             "bits_per_second": rate, "omitted": r.omitted})
            continue
        rows.append({"kind": "interval", "start_s": r.start_s, "end_s": r.end_s, "bytes": r.bytes,
                     "bits_per_second": r.bits_per_second, "omitted": r.omitted})
    s = result.summary
    if result.bidir and s.tx is not None and s.rx is not None:
        for label, d in (("send", s.tx), ("recv", s.rx)):
            counted = d.received_bytes is not None
            rows.append({"kind": f"summary-{label}", "start_s": 0.0, "end_s": end_s,
                         "bytes": d.received_bytes if counted else d.sent_bytes,
                         "bits_per_second": d.received_bits_per_second if counted else d.sent_bits_per_second,
                         "omitted": False})
        return rows
    rows.append({"kind": "summary", "start_s": 0.0, "end_s": end_s,
                 "bytes": s.received_bytes if s.received_bytes is not None else s.sent_bytes,
                 "bits_per_second": result.rate_bps, "omitted": False})
    return rows


# ----- while it runs, and at the end -------------------------------------------------------------

class ThroughputView:
    """Per-interval output while running: a live view on a terminal, else lines or jsonl events.

    ``with ThroughputView(out, total_s, multi) as view:`` and hand ``view.interval`` and
    ``view.progress`` to the measurement as its sinks.
    """

    def __init__(self, out: Output, total_s: float, multi: bool) -> None:
        self.out = out
        self.total_s = total_s
        self.multi = multi
        self.rows: list[ThroughputInterval] = []
        self.elapsed = 0.0
        #: off a terminal, interval lines go to stdout as they come (iperf3's way)
        self.stream_lines = out.format == "table" and not out.live_ok and not out.quiet
        self.screen: LiveScreen | None = None

    @property
    def streamed(self) -> bool:
        """The intervals went out while running (lines or jsonl): the final output leaves them out."""
        return self.stream_lines or self.out.format == "jsonl"

    def __enter__(self) -> ThroughputView:
        if self.out.format == "table":
            from netkit.render.live import LiveScreen

            self.screen = LiveScreen(self.out, self.draw, refresh_per_second=4).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        screen, self.screen = self.screen, None
        if screen is not None:
            screen.__exit__(*exc)

    def draw(self, width: int | None = None, height: int | None = None) -> RenderableType:
        """The live view: a progress bar with the elapsed time, and the latest intervals, one line
        each, fitted to ``width`` and ``height`` (default: the terminal's)."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        if width is None:
            width = self.screen.width if self.screen is not None else 80
        if height is None:
            height = self.out.err_console.height
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=max(self.total_s, 1e-9), completed=min(self.elapsed, self.total_s),
                                width=BAR_WIDTH),
                    Text(f"{self.elapsed:5.1f}/{self.total_s:.1f} s"))
        # as many recent intervals as the screen holds below the bar and the table's header
        per_interval = 2 if self.rows and self.rows[-1].tx_bytes is not None else 1
        recent = max(1, min(RECENT_ROWS, (height - 4) // per_interval))
        return Group(bar, intervals_table(self.rows[-recent:], width=width, title=None, one_line=True))

    def interval(self, row: ThroughputInterval) -> None:
        self.rows.append(row)
        self.elapsed = max(self.elapsed, row.end_s)
        if self.out.format == "jsonl":
            self.out.jsonl(interval_event(row))
        elif self.stream_lines:
            for line in interval_lines(row, self.multi):
                self.out.line(line)
        if self.screen is not None:
            self.screen.refresh()

    def progress(self, elapsed: float) -> None:
        self.elapsed = elapsed


def print_notes(out: Output, result: ThroughputResult) -> None:
    """What the figures must be read with, on stderr: sender-side counting and failed streams
    always (they change what the figures mean), other notes unless ``-q``."""
    if result.note:
        if result.counted_by == CountedBy.SENDER or "stream " in result.note:
            out.warn(result.note)
        else:
            out.info(f"netkit: {result.note}")
    for warning in result.warnings:
        out.warn(warning)


def emit_result(out: Output, result: ThroughputResult, *, streamed: bool) -> None:
    """The final result in the chosen format (``streamed``: the intervals already went out)."""
    if out.format == "json":
        out.json(jsonable(result))
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", **jsonable(result, intervals=False)})
    elif out.format == "csv":
        out.csv_rows(csv_rows(result), fields=CSV_FIELDS)
    else:
        if not streamed:
            out.print(intervals_table(result.intervals, width=out.width))
        out.print(summary_table(result, width=out.width))
    if not out.table_on_screen:  # the table under the figures already lists each failed check
        for f in result.thresholds.failed:
            out.info(f"netkit: check failed: {f}")
