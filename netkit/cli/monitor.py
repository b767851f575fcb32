"""``netkit monitor``: probe targets every interval and export Prometheus metrics.

Options -> ``CliSettings`` -> ``netkit.core.monitor_config`` (with ``--config`` TOML) ->
``MonitorConfig`` -> ``netkit.io.measure.monitor.Monitor`` (rounds, metrics endpoint, textfile) ->
per-round output (live dashboard on a terminal's stderr; jsonl/csv/plain lines on stdout) ->
a summary when stopped -> exit code. Heavy imports happen inside functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.params import POSITIVE_DURATION, Count
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.monitor_config import CliSettings
    from netkit.core.monitor_models import MonitorConfig, TargetRound
    from netkit.io.measure.monitor import GroupRound, Monitor
    from netkit.render.output import Output

METHOD_CHOICES = ("tcp-connect", "udp", "icmp")
CSV_FIELDS = ("time", "round", "target", "method", "address", "success", "state", "attempts", "duration_s", "sent",
              "received", "lost", "loss_pct", "rtt_ms.min", "rtt_ms.avg", "rtt_ms.max", "rtt_ms.last", "error")


class ListenAddress(click.ParamType):
    """``HOST:PORT`` for the metrics endpoint (port 0: any free port, printed at start)."""

    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        from netkit.core.errors import InputError
        from netkit.core.monitor_config import parse_listen

        try:
            return parse_listen(value)
        except InputError as exc:
            self.fail(str(exc), param, ctx)


@click.command(name="monitor")
@click.argument("targets", nargs=-1, metavar="TARGET...")
@click.option("--interval", type=POSITIVE_DURATION, default=None,
              help="Time between rounds.  [default: 10s]")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default=None,
              help="How to probe: TCP connect, UDP probe packets (a reflector answers), ICMP echo.  "
                   "[default: tcp-connect]")
@click.option("--timeout", type=POSITIVE_DURATION, default=None,
              help="Per attempt and per packet.  [default: 1s or interval/4, the shorter]")
@click.option("--packets", type=Count(min=1, max=1000), default=None,
              help="Latency packets per round.  [default: 3]")
@click.option("--packet-interval", type=POSITIVE_DURATION, default=None,
              help="Spacing of a round's latency packets.  [default: 100ms or interval/10, the shorter]")
@click.option("--retries", type=Count(min=0, max=100), default=None,
              help="Reachability retries within a round.  [default: 0]")
@click.option("--listen", type=ListenAddress(), default=None,
              help="Serve /metrics here (port 0: any free port).  [default: 127.0.0.1:9464, "
                   "none when only --textfile is given]")
@click.option("--textfile", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics atomically to this file after every round "
                   "(node_exporter's textfile collector; name it *.prom).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML file with targets and settings; SIGHUP re-reads it.")
@click.option("--rounds", type=Count(min=1), default=None,
              help="Stop after N rounds (exit 1 if a target failed its last round).  [default: run until stopped]")
@click.option("--window", type=Count(min=1, max=10000), default=None,
              help="Rounds the dashboard's loss column covers.  [default: 10]")
@output_options
def monitor(targets: tuple[str, ...], interval: float | None, method: str | None, timeout: float | None,
            packets: int | None, packet_interval: float | None, retries: int | None,
            listen: tuple[str, int] | None, textfile: str | None, config_path: str | None, rounds: int | None,
            window: int | None) -> ExitCode:
    """Probe TARGETs every interval and export Prometheus metrics.

    Each round checks reachability (with --retries), then sends --packets latency packets and
    counts the lost ones. Metrics: netkit_probe_success, netkit_probe_duration_seconds,
    netkit_rtt_seconds (histogram), netkit_packets_sent_total, netkit_packets_lost_total,
    netkit_probe_attempts_total, labelled by target and method (plus --config labels).

    On a terminal a live dashboard runs on stderr; with --format jsonl each round is one JSON
    line on stdout. SIGHUP re-reads --config; SIGTERM stops cleanly (exit 0), SIGINT exits 130.

    \b
    Examples:
      netkit monitor 127.0.0.1:22 127.0.0.1:5432 --interval 5s
      netkit monitor --config monitor.toml --listen 0.0.0.0:9464
      netkit monitor 127.0.0.1:22 --textfile /var/lib/node_exporter/netkit.prom --rounds 1
    """
    from netkit.core.monitor_config import CliSettings
    from netkit.io.aio import run
    from netkit.io.measure.monitor import load_config

    out = get_output()
    overrides = {"interval": interval, "method": method, "timeout": timeout, "packets": packets,
                 "packet_interval": packet_interval, "retries": retries, "listen": listen, "textfile": textfile,
                 "window": window}
    cli = CliSettings(tuple(targets), {k: v for k, v in overrides.items() if v is not None})
    config = load_config(config_path, cli)
    return run(_main(out, config, config_path, cli, rounds))


async def _main(out: Output, config: MonitorConfig, config_path: str | None, cli: CliSettings,
                rounds: int | None) -> ExitCode:
    import signal

    from netkit.io.aio import StopSignal
    from netkit.io.measure.monitor import MetricsServer, Monitor, load_config

    renderer = RoundRenderer(out)
    monitor = Monitor(config, on_round=renderer.on_round, on_warning=out.warn, on_info=out.info)
    renderer.monitor = monitor
    if config.textfile and not config.textfile.endswith(".prom"):
        out.warn(f"{config.textfile}: node_exporter's textfile collector reads only files named *.prom")
    loader = (lambda: load_config(config_path, cli)) if config_path else None
    # Signals first: a SIGTERM that arrives right after the ready line is already a clean stop.
    # SIGHUP is not among them: it re-reads the configuration (Monitor.run handles it).
    async with StopSignal(signals=(signal.SIGINT, signal.SIGTERM)) as stop:
        monitor.write_textfile(strict=True)
        server = MetricsServer(monitor.registry, *config.listen) if config.listen else None
        try:
            if server is not None:
                out.info(f"netkit monitor: listening on {server.address} (http://{server.address}/metrics)")
            if config.textfile:
                out.info(f"netkit monitor: writing metrics to {config.textfile}")
            n = len(config.targets)
            out.info(f"netkit monitor: {n} target{'s' if n != 1 else ''}; SIGHUP reloads"
                     + (f" {config_path}" if config_path else " (no --config)") + ", SIGTERM stops")
            with Dashboard(out, monitor) if dashboard_on(out) else _Null():
                await monitor.run(stop, loader=loader, rounds=rounds)
        finally:
            if server is not None:
                server.close()
    emit_summary(out, monitor)
    if stop.interrupted:
        return ExitCode.INTERRUPTED
    if rounds is not None:
        ok = all(t.success for t in monitor.state.totals.values())
        return ExitCode.OK if ok else ExitCode.CHECK_FAILED
    return ExitCode.OK


# ----- rendering ------------------------------------------------------------------------------
def dashboard_on(out: Output) -> bool:
    """The live view runs when stderr is a terminal, unless per-round lines (jsonl, csv) go to
    that same terminal on stdout, where the two would overwrite each other."""
    return out.live_ok and not (out.format in ("jsonl", "csv") and out.stdout_is_tty)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def round_line(r: TargetRound) -> str:
    """A plain line per target per round (a pipe or a file with the default format)."""
    rtt = f" rtt={r.rtts_ns[-1] / 1e6:.3f}ms" if r.rtts_ns else ""
    loss = f" loss={r.lost}/{r.sent}" if r.sent else ""
    err = f" ({r.error})" if r.error else ""
    return f"{r.target} {r.method} {r.state}{rtt}{loss} attempts={r.attempts}{err}"


class RoundRenderer:
    """What each round writes to stdout, by format (the dashboard is separate, on stderr)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.monitor: Monitor | None = None

    def on_round(self, gr: GroupRound) -> None:
        from netkit.core.escape import safe_text
        from netkit.core.monitor_models import round_record
        from netkit.render.output import flatten

        out = self.out
        if out.format == "jsonl":
            out.jsonl(round_record(gr.round, gr.time_iso, gr.interval_s, gr.results))
        elif out.format == "csv":
            out.csv_rows([flatten({"time": gr.time_iso, "round": gr.round, **r.to_json()}) for r in gr.results],
                         CSV_FIELDS)
        elif out.format == "table" and not (dashboard_on(out) and out.stdout_is_tty):
            for r in gr.results:
                out.line(f"{gr.time_iso} " + safe_text(round_line(r)))


def summary_records(monitor: Monitor) -> list[dict[str, Any]]:
    from netkit.core.monitor_models import summary_record

    with monitor.lock:
        return [summary_record(t, monitor.state.totals[t.key]) for t in monitor.config.targets
                if t.key in monitor.state.totals]


def emit_summary(out: Output, monitor: Monitor) -> None:
    """When stopped: one row per target with its totals (json: the document; jsonl: one line)."""
    records = summary_records(monitor)
    if out.format == "json":
        out.json({"targets": records})
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", "targets": records})
    elif out.format == "table":
        from netkit.render.tables import add_row, make_table, state_cell

        table = make_table(["target", "method", ("rounds", "right"), ("up", "right"), "last",
                            ("sent", "right"), ("lost", "right"), ("loss %", "right"), ("avg rtt ms", "right")],
                           title="netkit monitor", compact=True)
        for rec in records:
            last = "-" if rec["success"] is None else ("ok" if rec["success"] else "fail")
            add_row(table, rec["target"], rec["method"], rec["rounds"], rec["up_rounds"], state_cell(last),
                    rec["sent"], rec["lost"], "-" if rec["loss_pct"] is None else f"{rec['loss_pct']:.2f}",
                    "-" if rec["rtt_avg_ms"] is None else f"{rec['rtt_avg_ms']:.3f}")
        out.print(table)


class Dashboard:
    """The live view on stderr: one row per target, refreshed four times a second."""

    def __init__(self, out: Output, monitor: Monitor) -> None:
        self.out = out
        self.monitor = monitor
        self.live: Any = None

    def render(self) -> Any:
        from netkit.render.latency import sparkline
        from netkit.render.tables import add_row, cell, make_table, state_cell

        table = make_table(["target", "method", "state", ("rtt ms", "right"), ("loss %", "right"),
                            ("up", "right"), "recent RTTs", "error"], compact=True,
                           title=f"netkit monitor (loss % and up over the last {self.monitor.config.window} rounds)")
        with self.monitor.lock:
            rows = []
            for t in self.monitor.config.targets:
                win = self.monitor.state.windows.get(t.key)
                if win is None:
                    continue
                last = win.last
                rows.append((t, last, win.loss_pct, win.up_rounds, len(win.rounds), list(win.rtts_ns)))
        # Names are what tell the rows apart: they keep their width, and the sparkline and the
        # error give way on a narrow terminal ("127.0.0.…" could be any of several targets).
        for col, width in ((0, max((len(r[0].name) for r in rows), default=0)),
                           (1, max((len(r[0].method) for r in rows), default=0))):
            table.columns[col].min_width = min(width, 40)
        # The sparkline shows the most recent RTTs that fit (the newest at the right): 6 on an
        # 80-column terminal, up to its 40 on a wide one; cut by the table it would show the oldest.
        points = max(6, min(40, self.out.err_console.width - 74))
        table.columns[6].max_width = points
        table.columns[7].min_width = 10  # "connection" / "refused": an error read in words, not letters
        for t, last, loss, up, n, rtts in rows:
            add_row(table, t.name, t.method, state_cell(last.state if last else "-"),
                    f"{rtts[-1] / 1e6:.3f}" if rtts and last and last.rtts_ns else "-",
                    "-" if loss is None else f"{loss:.1f}", f"{up}/{n}", cell(sparkline(rtts[-points:]), style="cyan"),
                    cell(last.error if last and last.error else None, style="yellow"))
        return table

    def __enter__(self) -> Dashboard:
        from rich.live import Live

        self.live = Live(get_renderable=self.render, console=self.out.err_console, refresh_per_second=4,
                         transient=False, redirect_stdout=False, redirect_stderr=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
