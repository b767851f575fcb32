"""``netkit measure throughput``: bandwidth like iperf3, against netkit, iperf3 or any TCP service.

Options -> ``ThroughputConfig`` -> ``netkit.io.measure.throughput`` (threads, blocking sockets) or
``netkit.io.measure.iperf3`` -> ``ThroughputResult`` -> live view / interval lines / table / json /
jsonl / csv -> exit code. Heavy imports happen inside the command so ``netkit --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.guard_options import key_options, load_key_option
from netkit.cli.params import BITRATE, TARGET, Count, Duration, Size, usage_error
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    from netkit.core.targets import Target
    from netkit.core.throughput_models import IntervalRow, StreamInterval, ThroughputResult
    from netkit.render.output import Output

RECENT_ROWS = 12


def _gb(n: int | None) -> str:
    from netkit.core.units import format_bytes

    return "-" if n is None else format_bytes(n)


def _rate(bps: float | None) -> str:
    from netkit.core.units import format_bitrate

    return "-" if bps is None else format_bitrate(bps)


def interval_lines(row: IntervalRow, multi: bool) -> list[str]:
    """iperf3-like text lines for one interval: one per stream when there are several, then SUM."""
    span = f"{row.start_s:6.2f}-{row.end_s:<6.2f} s"
    tag = " (omitted)" if row.omitted else ""
    lines = []
    if multi:
        for s in row.streams:
            lines.append(f"[{s.id:>3} {s.direction}] {span} {_gb(s.bytes):>12} {_rate(s.bits_per_second):>14}{tag}")
    if row.tx_bytes is not None and row.rx_bytes is not None:
        # --bidir: each direction is a throughput; their sum is not
        lines.append(f"[SUM send] {span} {_gb(row.tx_bytes):>12} {_rate(row.tx_bits_per_second):>14}{tag}")
        lines.append(f"[SUM recv] {span} {_gb(row.rx_bytes):>12} {_rate(row.rx_bits_per_second):>14}{tag}")
        return lines
    label = "[SUM     ]" if multi else "[  0 " + (row.streams[0].direction if row.streams else "") + "]"
    lines.append(f"{label} {span} {_gb(row.bytes):>12} {_rate(row.bits_per_second):>14}{tag}")
    return lines


def intervals_table(rows: list[IntervalRow] | tuple[IntervalRow, ...], title: str | None = "intervals") -> Any:
    from netkit.render.tables import add_row, make_table

    t = make_table(["interval (s)", ("bytes", "right"), ("rate", "right"), "streams", ""], title=title, compact=True)

    def per_stream(streams: Sequence[StreamInterval]) -> str:
        # A no-break space holds each "id:rate unit" together: a narrow terminal wraps the
        # column between streams, never between a figure and its unit.
        if len(streams) < 2:
            return ""
        return "  ".join(f"{s.id}:{_rate(s.bits_per_second)}".replace(" ", "\u00a0") for s in streams)

    for r in rows:
        per = per_stream(r.streams)
        if r.tx_bytes is not None and r.rx_bytes is not None:  # --bidir: each direction apart
            for label, n, rate in (("send", r.tx_bytes, r.tx_bits_per_second),
                                   ("recv", r.rx_bytes, r.rx_bits_per_second)):
                # a direction's row lists only its own streams: the other direction's rates
                # beside this sum would read as parts of it
                per_dir = per_stream([s for s in r.streams if s.direction == label])
                add_row(t, f"{r.start_s:.2f}-{r.end_s:.2f} {label}", _gb(n), _rate(rate), per_dir,
                        "omitted" if r.omitted else "")
            continue
        add_row(t, f"{r.start_s:.2f}-{r.end_s:.2f}", _gb(r.bytes), _rate(r.bits_per_second), per,
                "omitted" if r.omitted else "")
    return t


def summary_table(result: ThroughputResult) -> Any:
    from rich.console import Group
    from rich.text import Text

    from netkit.render.tables import add_row, make_table

    s = result.summary
    # Who counted is said once under the table; a column repeating it would push the table past
    # 80 columns (its rows then wrap in two), so it shows only when the streams differ.
    mixed = len({st.counted_by for st in s.streams}) > 1
    columns: list[str | tuple[str, str]] = [
        "stream", "dir", ("sent", "right"), ("sent rate", "right"), ("received", "right"),
        ("recv rate", "right"), ("retr", "right"), ("rtt ms", "right")]
    t = make_table(columns + (["counted by"] if mixed else []),
                   title=f"throughput {result.target} ({result.server} server, {result.protocol})",
                   compact=True)
    for st in s.streams:
        add_row(t, st.id, st.direction, _gb(st.sent_bytes), _rate(st.sent_bits_per_second), _gb(st.received_bytes),
                _rate(st.received_bits_per_second), st.retransmits, st.rtt_ms, *([st.counted_by] if mixed else []))
    if result.bidir and s.tx is not None and s.rx is not None:
        for d in (s.tx, s.rx):  # each direction is a throughput; their sum is not
            add_row(t, "SUM", d.direction, _gb(d.sent_bytes), _rate(d.sent_bits_per_second), _gb(d.received_bytes),
                    _rate(d.received_bits_per_second), d.retransmits, "", *([result.counted_by] if mixed else []))
    else:
        add_row(t, "SUM", "", _gb(s.sent_bytes), _rate(s.sent_bits_per_second), _gb(s.received_bytes),
                _rate(s.received_bits_per_second), s.retransmits, s.rtt_ms, *([result.counted_by] if mixed else []))
    cpu = "-" if s.cpu_percent is None else f"{s.cpu_percent:.1f}%"
    parts: list[Any] = [t, Text(f"client CPU {cpu}; counted by {result.counted_by}", style="dim")]
    if result.udp is not None:
        u = result.udp
        loss = "-" if u.lost_percent is None else f"{u.lost_percent:.2f}%"
        jitter = "-" if u.jitter_ms is None else f"{u.jitter_ms:.3f} ms"
        local = "" if not u.local_drops else f", {u.local_drops} dropped by this host's socket buffer"
        parts.append(Text(f"udp: {u.packets_sent} sent, {u.packets_received} received, {u.lost_packets} lost "
                          f"({loss}){local}, {u.reordered} reordered, {u.duplicates} duplicates, jitter {jitter}"))
    th = result.thresholds
    if th.min_rate_bps is not None or not th.passed:
        parts.append(Text(f"thresholds: {'PASS' if th.passed else 'FAIL'}", style="green" if th.passed else "red bold"))
        for f in th.failed:
            parts.append(Text(f"  {f}", style="red"))
    return Group(*parts)  # the note goes to stderr once (see the command), not here as well


def jsonable(result: ThroughputResult, *, intervals: bool = True) -> dict[str, Any]:
    from netkit.render.output import to_jsonable

    d = to_jsonable(result)
    if not intervals:
        d.pop("intervals", None)
    return d


class _View:
    """Per-interval output while running: live view on a terminal, else lines or jsonl."""

    def __init__(self, out: Output, total_s: float, multi: bool) -> None:
        self.out = out
        self.total_s = total_s
        self.multi = multi
        self.rows: list[IntervalRow] = []
        self.live: Any = None
        self.elapsed = 0.0
        self.stream_lines = out.format == "table" and not out.live_ok and not out.quiet

    def __enter__(self) -> _View:
        if self.out.format == "table" and self.out.live_ok:
            from rich.live import Live

            self.live = Live(self._render(), console=self.out.err_console, refresh_per_second=8,
                             transient=True, redirect_stdout=False, redirect_stderr=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=max(self.total_s, 1e-9), completed=min(self.elapsed, self.total_s), width=40),
                    Text(f"{self.elapsed:5.1f}/{self.total_s:.1f} s"))
        return Group(bar, intervals_table(self.rows[-RECENT_ROWS:], title=None))

    def interval(self, row: IntervalRow) -> None:
        self.rows.append(row)
        if self.out.format == "jsonl":
            self.out.jsonl({"event": "interval", **_row_dict(row)})
        elif self.stream_lines:
            for line in interval_lines(row, self.multi):
                self.out.line(line)
        if self.live is not None:
            self.elapsed = row.end_s
            self.live.update(self._render())

    def progress(self, elapsed: float) -> None:
        if self.live is not None:
            self.elapsed = elapsed
            self.live.update(self._render())


def _row_dict(row: IntervalRow) -> dict[str, Any]:
    from netkit.render.output import to_jsonable

    return to_jsonable(row)


def csv_rows(result: ThroughputResult) -> list[dict[str, Any]]:
    """One row per interval, then the summary; with --bidir each direction has its own rows
    (``interval-send``/``interval-recv``, ``summary-send``/``summary-recv``): a sum of both
    directions is not a throughput of either."""
    rows: list[dict[str, Any]] = []
    for r in result.intervals:
        if result.bidir and r.tx_bytes is not None and r.rx_bytes is not None:
            for label, n, rate in (("send", r.tx_bytes, r.tx_bits_per_second),
                                   ("recv", r.rx_bytes, r.rx_bits_per_second)):
                rows.append({"kind": f"interval-{label}", "start_s": r.start_s, "end_s": r.end_s, "bytes": n,
                             "bits_per_second": rate, "omitted": r.omitted})
            continue
        rows.append({"kind": "interval", **{k: v for k, v in _row_dict(r).items() if k != "streams"}})
    s = result.summary
    if result.bidir and s.tx is not None and s.rx is not None:
        for label, d in (("send", s.tx), ("recv", s.rx)):
            counted = d.received_bytes is not None
            rows.append({"kind": f"summary-{label}", "start_s": 0.0, "end_s": result.duration_s,
                         "bytes": d.received_bytes if counted else d.sent_bytes,
                         "bits_per_second": d.received_bits_per_second if counted else d.sent_bits_per_second,
                         "omitted": False})
        return rows
    rows.append({"kind": "summary", "start_s": 0.0, "end_s": result.duration_s,
                 "bytes": s.received_bytes if s.received_bytes is not None else s.sent_bytes,
                 "bits_per_second": result.rate_bps, "omitted": False})
    return rows


def emit_result(out: Output, result: ThroughputResult, streamed: bool) -> None:
    """The final result in the chosen format (intervals already streamed for jsonl/lines)."""
    if out.format == "json":
        out.json(jsonable(result))
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", **jsonable(result, intervals=False)})
    elif out.format == "csv":
        out.csv_rows(csv_rows(result), fields=["kind", "start_s", "end_s", "bytes", "bits_per_second", "omitted"])
    else:
        if not streamed:
            out.print(intervals_table(result.intervals))
        out.print(summary_table(result))


@click.command(name="throughput")
@click.argument("target", type=TARGET)
@click.option("-t", "--duration", type=Duration(min=0.0, min_open=True, max=24 * 3600.0), default="10s",
              show_default=True, help="How long to send (after --omit).")
@click.option("-P", "--parallel", type=Count(min=1, max=128), default=1, show_default=True,
              help="Parallel streams.")
@click.option("-R", "--reverse", is_flag=True, help="The server sends, the client receives.")
@click.option("--bidir", is_flag=True, help="Both directions at once (--parallel streams each way).")
@click.option("-l", "--size", type=Size(min=1, max=64 * 1024 * 1024), default=None,
              help="Block size of each write (iperf3's -l; default 128K); UDP: datagram size (default 1400).")
@click.option("-i", "--interval", type=Duration(min=0.01), default="1s", show_default=True,
              help="Reporting interval.")
@click.option("-O", "--omit", type=Duration(min=0.0, max=3600.0), default="0s", show_default=True,
              help="Leave out the first part (TCP slow start) from the summary.")
@click.option("-u", "--udp", is_flag=True,
              help="UDP: paced datagrams through `netkit serve udp --mode echo`, or iperf3's UDP test.")
@click.option("-b", "--rate", type=BITRATE, default=None, help="UDP send rate, e.g. 500M (needs --udp).")
@click.option("--iperf3", "iperf3_", is_flag=True, help="The server is `iperf3 -s` (detected by default).")
@click.option("--plain", is_flag=True, help="The server is a plain TCP service: no header, sender-side counting.")
@click.option("--min-rate", type=BITRATE, default=None,
              help="Check: exit 1 when the measured rate is below this (bits/s, e.g. 1G; --bidir: each way).")
@click.option("--connect-timeout", type=Duration(min=0.0, min_open=True, max=600.0), default="5s",
              show_default=True, help="Timeout for each connect and the server's answers.")
@key_options(with_key=True)
@output_options
def throughput(target: Target, duration: float, parallel: int, reverse: bool, bidir: bool, size: int | None,
               interval: float, omit: float, udp: bool, rate: float | None, iperf3_: bool, plain: bool,
               min_rate: float | None, connect_timeout: float, key: str | None = None,
               key_file: str | None = None) -> int:
    """Measure bandwidth to TARGET (HOST:PORT), like iperf3.

    Against `netkit serve tcp` the server reports what it received, so rates count bytes that
    arrived (counted by the receiver). Against `iperf3 -s` netkit speaks iperf3's protocol
    (detected, or --iperf3). Against any other TCP service it counts what it sent and says so.

    \b
    Examples:
      netkit serve tcp --port 5000 &
      netkit measure throughput 127.0.0.1:5000 -t 5s -P 4
      netkit measure throughput 127.0.0.1:5201 --reverse          # an iperf3 -s
      netkit measure throughput 127.0.0.1:5201 --udp -b 100M      # iperf3's UDP test
      netkit measure throughput 127.0.0.1:5000 --min-rate 1G -q   # a check: exit 1 below 1 Gbit/s
      netkit --format jsonl measure throughput 127.0.0.1:5000     # one line per interval
    """
    import dataclasses

    from netkit.core.throughput_models import ThroughputConfig, check_thresholds
    from netkit.io.aio import StopSignal

    out = get_output()
    if reverse and bidir:
        raise usage_error("use either --reverse or --bidir, not both")
    if iperf3_ and plain:
        raise usage_error("use either --iperf3 or --plain, not both")
    if rate is not None and not udp:
        raise usage_error("--rate paces UDP only: add --udp", "--rate")
    if udp and (plain or bidir or reverse):
        raise usage_error("--udp works with `netkit serve udp --mode echo` or `iperf3 -s` only "
                          "(no --plain/--bidir/--reverse)")
    if udp and rate is None:
        rate = 1_000_000.0  # iperf3's UDP default: 1 Mbit/s
    if size is None:
        size = 1400 if udp else 128 * 1024
    if udp and not 56 <= size <= 65507:
        raise usage_error("a UDP datagram must be 56..65507 bytes (the probe header is 56)", "--size")
    mkey = load_key_option(key, key_file)  # issue 10: keyed headers/probes (--key, NETKIT_KEY)
    if mkey is not None and (iperf3_ or plain):
        if key is not None or key_file is not None:  # NETKIT_KEY alone: just not used here
            raise usage_error("--key needs a netkit server (not --iperf3/--plain)", "--key")
        mkey = None
    if mkey is not None and udp and size < 72:
        raise usage_error("a keyed UDP datagram must be at least 72 bytes (header + 16-byte tag)", "--size")
    server = "iperf3" if iperf3_ else ("plain" if plain else ("netkit" if mkey is not None else "auto"))
    cfg = ThroughputConfig(
        host=target.host, port=target.port, duration_s=duration, parallel=parallel, reverse=reverse,
        bidir=bidir, block_size=size, interval_s=interval, omit_s=omit, server=server, udp=udp,
        rate_bps=rate, connect_timeout_s=connect_timeout, key=mkey,
    )
    signals = StopSignal()  # SIGINT, SIGTERM or SIGHUP: the streams stop, the summary still prints
    stop = signals.flag
    view = _View(out, duration + omit, multi=len(cfg.directions()) > 1)
    with signals:
        with view:
            if udp:
                from netkit.io.measure.throughput_udp import measure_udp_throughput

                result = measure_udp_throughput(cfg, view.interval, on_progress=view.progress, stop=stop,
                                                on_info=out.debug)
            else:
                from netkit.io.measure.throughput import measure_throughput

                result = measure_throughput(cfg, view.interval, on_progress=view.progress, stop=stop,
                                            on_info=out.debug)
    result = dataclasses.replace(result, thresholds=check_thresholds(result, min_rate))
    if result.note:
        # sender-side counting and failed streams change what the figures mean: always say so
        if result.counted_by == "sender" or "stream " in result.note:
            out.warn(result.note)
        else:
            out.info(f"netkit: {result.note}")
    for warning in result.warnings:
        out.warn(warning)
    emit_result(out, result, streamed=view.stream_lines or out.format == "jsonl")
    for f in result.thresholds.failed:
        out.info(f"netkit: check failed: {f}")
    if signals.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if result.thresholds.passed else ExitCode.CHECK_FAILED
