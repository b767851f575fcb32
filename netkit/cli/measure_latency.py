"""``netkit measure latency``: round-trip time by tcp-connect, tcp-echo, udp or icmp.

Options -> ``LatencyConfig`` -> ``netkit.io.measure.latency`` (asyncio, kernel timestamps) ->
``LatencyResult`` -> live view / per-reply lines / table / json / jsonl / csv -> exit code.
The rendering helpers here are shared with ``measure loss``. Heavy imports (asyncio, rich)
happen inside functions so ``netkit --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.guard_options import key_options, load_key_option
from netkit.cli.params import DURATION, Count, Duration, Number, Size, usage_error
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    from netkit.core.latency_models import TargetResult, Thresholds
    from netkit.core.targets import Target
    from netkit.io.measure.latency import ProbeEvent, Prober
    from netkit.render.output import Output

DEFAULT_COUNT = 10
SPARK = "▁▂▃▄▅▆▇█"


# ----- shared rendering ------------------------------------------------------------------------
def ms(ns: float | None, digits: int = 3) -> str:
    return "-" if ns is None else f"{ns / 1e6:.{digits}f}"


def sparkline(values: Sequence[int]) -> str:
    """Recent RTTs as block characters scaled between their min and max."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo
    if span == 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) * len(SPARK) / span))] for v in values)


def _where(target: str, address: str | None) -> str:
    """The target as written, with the address it resolved to when that differs."""
    if not address or address in target:
        return target
    return f"{target} ({address})"


def summary_tables(results: list[TargetResult], thresholds: Thresholds, title: str, *, wide: bool = True) -> Any:
    """Two tables (loss accounting, RTT statistics) and the threshold verdict, as one renderable.

    ``wide=False`` (a terminal under 100 columns) leaves p90 and ipdv to the JSON output so the
    RTT table fits 80 columns without truncating numbers.
    """
    from rich.console import Group
    from rich.text import Text

    from netkit.core.latency_models import local_drops_note
    from netkit.render.tables import add_row, cell, make_table

    # Replies this host's socket buffer dropped: a column of their own, only when there were any,
    # so the 80-column layout stays as it was on a clean run.
    dropped_here = any(r.acc.local_drops for r in results)
    loss = make_table(["target", ("sent", "right"), ("recv", "right"), ("lost", "right"), ("loss%", "right"),
                       ("fwd", "right"), ("ret", "right"), ("dup", "right"), ("reord", "right"),
                       ("late", "right"), *((("local", "right"),) if dropped_here else ())], title=title)
    names = ["min", "avg", "max", "mdev", "p50", "p90", "p95", "p99", "jitter", "ipdv"]
    if not wide:
        names = [n for n in names if n not in ("p90", "ipdv")]
    rtt = make_table(["target", *((n, "right") for n in names)], title="RTT (ms)")
    # Fit 80 columns: one space between columns; the figures never cut. A long target wraps
    # at its space ("localhost:9000" over "(127.0.0.1)") and a single long word folds, so no
    # character of it is lost either.
    for table in (loss, rtt):
        table.collapse_padding = True
        table.pad_edge = False
        table.columns[0].overflow = "fold"
        for column in table.columns[1:]:
            column.no_wrap = True
    for r in results:
        a, s = r.acc, r.stats
        loss_pct = "-" if a.loss_pct is None else f"{a.loss_pct:.2f}"
        add_row(loss, _where(r.target, r.address), a.sent, a.received, a.lost, loss_pct, a.lost_forward,
                a.lost_return, a.duplicates, a.reordered, a.late, *((a.local_drops,) if dropped_here else ()))
        add_row(rtt, r.target, *(ms(getattr(s, n)) for n in names))
    legend = "  fwd/ret: lost on the way there / back (netkit's reflector only)"
    if dropped_here:
        legend += "\n  local: replies dropped by this host's socket buffer (not loss)"
    parts: list[Any] = [loss, Text(legend, style="dim"), rtt]
    for r in results:
        if r.acc.local_drops:
            parts.append(cell(local_drops_note(r.target, r.acc.local_drops), style="yellow"))
    for r in results:
        if r.error:
            parts.append(Text.assemble((f"{r.target}: ", "bold"), cell(r.error, style="yellow")))
    if thresholds.max_loss_pct is not None or thresholds.max_rtt_ms is not None or not thresholds.passed:
        verdict = "PASS" if thresholds.passed else "FAIL"
        parts.append(Text(f"thresholds: {verdict}", style="green" if thresholds.passed else "red bold"))
        for f in thresholds.failed:
            parts.append(cell(f"  {f}", style="red"))
    return Group(*parts)


def histogram_text(result: TargetResult, bins: int = 8, width: int = 30) -> Any:
    """A small RTT histogram for one target (equal-width bins, bars scaled to the largest)."""
    from rich.text import Text

    from netkit.core.stats import histogram

    rows = histogram(result.acc.rtts_ns, bins)
    text = Text()
    if len(result.acc.rtts_ns) < 2:
        return text
    text.append(f"RTT histogram {result.target} (ms)\n", style="bold")
    top = max(c for _, _, c in rows) or 1
    for lo, hi, c in rows:
        bar = "█" * max(1 if c else 0, round(c * width / top))
        text.append(f"  {lo / 1e6:9.3f} - {hi / 1e6:9.3f} | ")
        text.append(bar, style="cyan")
        text.append(f" {c}\n")
    return text


def emit_summary(out: Output, doc: dict[str, Any], results: list[TargetResult], thresholds: Thresholds,
                 title: str, *, histograms: bool = True) -> None:
    """The final result in the chosen format (jsonl: one ``summary`` object)."""
    from netkit.render.output import flatten

    if out.format == "json":
        out.json(doc)
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", **doc})
    elif out.format == "csv":
        # interrupted goes last, beside passed: the columns before it keep the places they had
        extra = {k: v for k, v in doc.items() if k not in ("targets", "thresholds", "interrupted")}
        rows = []
        for t in doc["targets"]:
            row = {**extra, **t, "interrupted": doc["interrupted"], "passed": doc["thresholds"]["passed"]}
            rows.append(flatten(row))
        out.csv_rows(rows)
    else:
        wide = not out.stdout_is_tty or out.console.width >= 100
        out.print(summary_tables(results, thresholds, title, wide=wide))
        if histograms and out.stdout_is_tty and not out.quiet:
            for r in results:
                out.print(histogram_text(r))
    if out.format != "table":  # the table carries this note itself: say it once, not twice
        from netkit.core.latency_models import local_drops_note

        for r in results:
            if r.acc.local_drops:
                out.info(f"netkit: {local_drops_note(r.target, r.acc.local_drops)}")
    # A target that failed outright (name not resolved, refused) reads as every command says it.
    failed_outright = {f"{r.target}: {r.error}" for r in results if r.acc.received == 0 and r.error}
    for f in thresholds.failed:
        out.info(f"netkit: {f}" if f in failed_outright else f"netkit: check failed: {f}")


def event_line(ev: ProbeEvent, method: str = "udp") -> str:
    """One ping-style line per reply (or timeout) for output off a terminal."""
    where = _where(ev.target, ev.address)
    if ev.kind == "timeout":
        return f"{where}: seq={ev.seq} no reply (timeout)"
    if ev.kind == "error":
        return f"{where}: seq={ev.seq} failed ({ev.error or 'error'})"
    rtt = "" if ev.rtt_ns is None else f" time={ev.rtt_ns / 1e6:.3f} ms"
    tags = {"duplicate": " (DUP!)", "late": " (late)"}.get(ev.kind, "")
    if ev.reordered:
        tags += " (reordered)"
    if method == "tcp-connect":
        return f"connected to {where}: seq={ev.seq}{rtt}{tags}"
    return f"{ev.size} bytes from {where}: seq={ev.seq}{rtt}{tags}"


def event_json(ev: ProbeEvent) -> dict[str, Any]:
    return {"event": "reply" if ev.kind not in ("timeout", "error") else ev.kind, "target": ev.target,
            "address": ev.address,
            "seq": ev.seq, "kind": ev.kind, "rtt_ms": None if ev.rtt_ns is None else ev.rtt_ns / 1e6,
            "reordered": ev.reordered, "error": ev.error}


class LiveView:
    """The terminal view on stderr while probes run: progress, running stats, a sparkline."""

    def __init__(self, out: Output, method: str, total: int | None) -> None:
        self.out = out
        self.method = method
        self.total = total
        self.probers: list[Prober] = []
        self.live: Any = None

    def attach(self, probers: list[Prober]) -> None:
        self.probers = probers

    def render(self) -> Any:
        from netkit.core.stats import percentile
        from netkit.render.tables import add_row, make_table

        table = make_table(["target", ("sent", "right"), ("recv", "right"), ("loss %", "right"),
                            ("last", "right"), ("avg", "right"), ("p95", "right"), "recent RTTs"],
                           title=f"measure latency --method {self.method}"
                           + (f" ({self.total} probes each)" if self.total else ""))
        for p in self.probers:
            a = p.acc
            rtts = a.rtts_ns
            done = a.received + a.late + a.expired
            loss = "-" if done == 0 else f"{100.0 * (done - a.received - a.late) / done:.1f}"
            avg = sum(rtts) / len(rtts) if rtts else None
            p95 = percentile(sorted(rtts[-1000:]), 95) if rtts else None
            add_row(table, p.label, a.sent, a.received, loss, ms(rtts[-1] if rtts else None), ms(avg), ms(p95),
                    sparkline(rtts[-40:]))
        return table

    def __enter__(self) -> LiveView:
        from rich.live import Live

        self.live = Live(get_renderable=self.render, console=self.out.err_console, refresh_per_second=4,
                         transient=True, redirect_stdout=False, redirect_stderr=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


# ----- the command -----------------------------------------------------------------------------
def parse_targets(texts: tuple[str, ...], method: str) -> list[Target]:
    from netkit.core.targets import parse_target

    if not texts:
        raise usage_error("no targets: give HOST:PORT (HOST for --method icmp)")
    # ICMP has no port: HOST alone is fine (a port, if written, is ignored).
    return [parse_target(t, default_port=0 if method == "icmp" else None) for t in texts]


def _label(t: Target, method: str) -> str:
    if method == "icmp":
        return f"[{t.host}]" if ":" in t.host else t.host
    return str(t)


@click.command(name="latency")
@click.argument("targets", nargs=-1, metavar="TARGET...")
@click.option("-m", "--method", type=click.Choice(["tcp-connect", "tcp-echo", "udp", "icmp"]),
              default="tcp-connect", show_default=True,
              help="tcp-connect: handshake time; tcp-echo: request/response on one connection to an echo "
                   "server; udp: probe packets to a reflector (netkit serve udp --mode echo or any UDP echo); "
                   "icmp: echo request.")
@click.option("-c", "--count", type=Count(min=1), default=None,
              help=f"Probes per target (default {DEFAULT_COUNT} unless --duration is given).")
@click.option("-d", "--duration", type=Duration(min=0.0, min_open=True), default=None,
              help="Wall-clock time to send for, whatever the interval (with --count: whichever comes "
                   "first); then wait at most --timeout for replies in flight.")
@click.option("-i", "--interval", type=DURATION, default="1s", show_default=True,
              help="Time between probes to one target (0: flood like ping -f, the next probe when the last "
                   "is answered or 10ms after it left; bounded by --count and/or --duration).")
@click.option("-W", "--timeout", type=Duration(min=0.0, min_open=True), default="1s", show_default=True,
              help="A reply later than this counts as late, not received.")
@click.option("-s", "--size", type=Size(min=0, max=65000), default=None,
              help="Probe size in bytes: UDP payload / TCP message (min 56, default 64), ICMP payload "
                   "(default 56, as ping -s).")
@click.option("-4", "ipv4", is_flag=True, help="IPv4 only.")
@click.option("-6", "ipv6", is_flag=True, help="IPv6 only.")
@click.option("--max-loss", type=Number(0, 100), default=None, metavar="PCT",
              help="Exit 1 when any target's loss exceeds PCT percent.")
@click.option("--max-rtt", type=Duration(min=0.0, min_open=True), default=None, metavar="DURATION",
              help="Exit 1 when any target's p95 RTT exceeds DURATION.")
@click.option("--samples", is_flag=True, help="Include every RTT sample (samples_ms) in JSON.")
@click.option("--no-kernel-timestamps", is_flag=True,
              help="Time replies when Python reads them, not when the kernel received them.")
@key_options(with_key=True)  # issue 10: --key/--key-file/NETKIT_KEY for a keyed reflector (--method udp)
@output_options
def latency(targets: tuple[str, ...], method: str, count: int | None, duration: float | None, interval: float,
            timeout: float, size: int | None, ipv4: bool, ipv6: bool, max_loss: float | None,
            max_rtt: float | None, samples: bool, no_kernel_timestamps: bool, key: str | None = None,
            key_file: str | None = None) -> ExitCode:
    """Measure round-trip time to one or more targets, concurrently (one row each, like fping).

    Off a terminal each reply prints one plain line, as ping does (-q: summary only).
    Exit status: 0 ok, 1 no reply from a target or a threshold breached, 2 usage, 3 runtime.
    Ctrl-C stops early and prints the summary of what was measured.

    \b
    Examples:
      netkit measure latency example.test:443
      netkit measure latency --method udp -c 100 -i 10ms 127.0.0.1:9000
      netkit measure latency --method icmp 127.0.0.1 ::1 --max-rtt 5ms --format json
    """
    from netkit.core import packet
    from netkit.core.latency_models import LatencyConfig
    from netkit.io.resolve import family_of

    out = get_output()
    parsed = parse_targets(targets, method)
    if size is None:
        size = 56 if method == "icmp" else 64
    if method in ("udp", "tcp-echo") and size < packet.HEADER_SIZE:
        raise usage_error(f"--size must be at least {packet.HEADER_SIZE} bytes for --method {method}", "--size")
    if method == "icmp" and size > 65507 - 8:
        raise usage_error("--size too large for ICMP", "--size")
    if ipv4 and ipv6:
        raise usage_error("-4 and -6 exclude each other")
    if count is None and duration is None:
        count = DEFAULT_COUNT
    mkey = load_key_option(key, key_file)  # issue 10
    if method != "udp":  # NETKIT_KEY in the environment must not break the other methods
        if key is not None or key_file is not None:
            raise usage_error("--key works with --method udp (a keyed `netkit serve udp --mode echo`)", "--key")
        mkey = None
    cfg = LatencyConfig(method=method, count=count, duration_s=duration, interval_s=interval, timeout_s=timeout,
                        size=size, family=family_of(ipv4, ipv6), kernel_timestamps=not no_kernel_timestamps,
                        key=mkey)
    return _run(out, parsed, cfg, max_loss, None if max_rtt is None else max_rtt * 1000.0, samples)


def _run(out: Output, targets: list[Target], cfg: Any, max_loss: float | None, max_rtt_ms: float | None,
         samples: bool) -> ExitCode:
    import asyncio
    import contextlib

    from netkit.core.latency_models import (
        REFLECTOR_NETKIT,
        LatencyResult,
        check_thresholds,
        shortfall_note,
        stall_probes,
    )
    from netkit.core.pacing import fell_behind
    from netkit.io.aio import StopSignal, run
    from netkit.io.measure import latency as lat

    labels = [_label(t, cfg.method) for t in targets]
    live = out.live_ok and out.stdout_is_tty and out.format == "table"
    # Ping-style lines whenever there is no live view (off a terminal, or stderr redirected).
    lines = out.format == "table" and not out.quiet and not live
    stream_json = out.format == "jsonl"
    view = LiveView(out, cfg.method, cfg.count) if live else None

    state: dict[str, Any] = {"broken": False, "stop": None}

    def sink(ev: lat.ProbeEvent) -> None:
        # Runs inside socket callbacks: an exception here would be logged by the loop, not raised.
        # A closed stdout (``| head -1``) stops the run; the exit status comes after the loop ends.
        if state["broken"]:
            return
        try:
            if stream_json:
                out.jsonl(event_json(ev))
            elif lines:
                out.line(event_line(ev, cfg.method))
        except BrokenPipeError:
            state["broken"] = True
            if state["stop"] is not None:
                state["stop"].set()

    async def main() -> tuple[list[TargetResult], bool]:
        stop = asyncio.Event()
        state["stop"] = stop
        async with StopSignal() as sig:
            watcher = asyncio.ensure_future(sig.wait())
            watcher.add_done_callback(lambda _f: stop.set())
            try:
                ctx = view if view is not None else contextlib.nullcontext()
                with ctx:
                    results = await lat.measure_latency(
                        targets, cfg, stop=stop, sink=sink, labels=labels,
                        on_start=view.attach if view is not None else None,
                    )
            finally:
                watcher.cancel()
            return results, sig.signum is not None

    results, interrupted = run(main())
    if state["broken"]:
        raise BrokenPipeError  # the reader went away: exit quietly (141), as the CLI maps it
    if getattr(cfg, "key", None) is not None and not interrupted and all(
            r.acc.sent and not r.acc.received and not r.error for r in results):
        from netkit.core.errors import CheckFailed
        from netkit.io.servers.server_guard import WRONG_KEY_MESSAGE

        raise CheckFailed(WRONG_KEY_MESSAGE)  # issue 10: a keyed reflector drops what it cannot verify
    for r in results:
        if r.detail:
            out.debug(f"{r.target}: measured by {r.detail}")
        if cfg.method == "udp" and r.reflector is not None:
            kind = ("netkit's reflector (per-direction loss)" if r.reflector == REFLECTOR_NETKIT
                    else "a plain echo (round trip only)")
            out.info(f"{r.target}: answered by {kind}")
    if cfg.interval_s > 0:
        for r in results:
            if fell_behind(1.0 / cfg.interval_s, r.achieved_pps):
                out.warn(shortfall_note(r.target, 1.0 / cfg.interval_s, r.achieved_pps or 0.0))
    thresholds = check_thresholds(results, max_loss, max_rtt_ms, stall_after=stall_probes(cfg.interval_s))
    result = LatencyResult(cfg.method, results, thresholds, interrupted)
    doc = result.to_json(samples=samples)
    emit_summary(out, doc, results, thresholds, f"measure latency --method {cfg.method}")
    return ExitCode.OK if thresholds.passed else ExitCode.CHECK_FAILED
