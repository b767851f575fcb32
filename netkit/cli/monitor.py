"""``netkit monitor``: probe targets every interval and export Prometheus metrics.

Options -> ``CliSettings`` -> ``netkit.core.monitor_config`` (with ``--config`` TOML) ->
``MonitorConfig`` -> ``netkit.io.measure.monitor.run_monitor`` (rounds, metrics endpoint, textfile,
stop signals) -> ``MonitorOutcome`` -> ``netkit.render.monitor`` (per-round output, the live
dashboard on a terminal's stderr, the totals when stopped) -> exit code. Heavy imports happen
inside functions.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.params import POSITIVE_DURATION, Count, usage_error
from netkit.core.exitcodes import ExitCode
from netkit.core.monitor_models import METHODS as METHOD_CHOICES

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.monitor_models import MonitorConfig


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


def mesh_usage(mesh_path: str | None, self_name: str | None, targets: tuple[str, ...], config_path: str | None,
               method: str | None) -> None:
    """--mesh and --self go together, and replace TARGETs, --config and --method (the mesh file's probes)."""
    if mesh_path is None:
        raise usage_error("--self names this host in a mesh file: give --mesh FILE too", "--self")
    if self_name is None:
        raise usage_error("--mesh needs --self NAME (this host's name in the mesh file)", "--self")
    if config_path is not None:
        raise usage_error("give either --mesh or --config, not both", "--config")
    if targets:
        raise usage_error("--mesh probes the hosts of the mesh file: give no TARGET arguments", "TARGET")
    if method is not None:
        raise usage_error("--mesh probes with the mesh file's [[probes]] methods: give no --method", "--method")


@click.command(name="monitor")
@click.argument("targets", nargs=-1, metavar="TARGET...")
@click.option("--interval", type=POSITIVE_DURATION, default=None,
              help="Time between rounds.  [default: 10s]")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default=None,
              help="How to probe: TCP connect, UDP probe packets (a reflector answers), ICMP echo, "
                   "or trace the path hop by hop (TARGET is HOST).  [default: tcp-connect]")
@click.option("--timeout", type=POSITIVE_DURATION, default=None,
              help="Per attempt and per packet.  [default: 1s or interval/4, the shorter]")
@click.option("--packets", type=Count(min=1, max=1000), default=None,
              help="Latency packets per round.  [default: 3]")
@click.option("--packet-interval", type=POSITIVE_DURATION, default=None,
              help="Spacing of a round's latency packets.  [default: 100ms or interval/10, the shorter]")
@click.option("--retries", type=Count(min=0, max=100), default=None,
              help="Reachability retries within a round.  [default: 0]")
@click.option("--max-hops", type=Count(min=1, max=255), default=None,
              help="trace: the highest TTL probed.  [default: 30]")
@click.option("--listen", type=ListenAddress(), default=None,
              help="Serve /metrics here (port 0: any free port).  [default: 127.0.0.1:9464, "
                   "none when only --textfile is given]")
@click.option("--textfile", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics atomically to this file after every round "
                   "(node_exporter's textfile collector; name it *.prom).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML file with targets and settings; SIGHUP re-reads it.")
@click.option("--mesh", "mesh_path", type=click.Path(dir_okay=False), default=None,
              help="Mesh file (TOML): probe every other host of it (with --self); SIGHUP re-reads it.")
@click.option("--self", "self_name", metavar="NAME", default=None,
              help="With --mesh: this host's name in the mesh file.")
@click.option("--rounds", type=Count(min=1), default=None,
              help="Stop after N rounds (exit 1 if a target failed its last round).  [default: run until stopped]")
@click.option("--window", type=Count(min=1, max=10000), default=None,
              help="Rounds the dashboard's loss column covers.  [default: 10]")
@output_options
def monitor(targets: tuple[str, ...], interval: float | None, method: str | None, timeout: float | None,
            packets: int | None, packet_interval: float | None, retries: int | None, max_hops: int | None,
            listen: tuple[str, int] | None, textfile: str | None, config_path: str | None,
            mesh_path: str | None, self_name: str | None, rounds: int | None, window: int | None) -> ExitCode:
    """Probe TARGETs every interval and export Prometheus metrics.

    Each round checks reachability (with --retries), then sends --packets latency packets and
    counts the lost ones. Metrics: netkit_probe_success, netkit_probe_duration_seconds,
    netkit_rtt_seconds (histogram), netkit_packets_sent_total, netkit_packets_lost_total,
    netkit_probe_attempts_total, labelled by target and method (plus --config labels).

    --method trace traces the path once per round (udp probes, no privilege needed) and adds
    netkit_trace_hops (the destination's hop count, 0 when not reached) and per hop (label ttl)
    netkit_trace_hop_loss_ratio, netkit_trace_hop_rtt_seconds, netkit_trace_hop_rate_limited,
    netkit_trace_hop_sent_total, netkit_trace_hop_lost_total, and
    netkit_trace_hop_responses_total by responding address (a route change shows as a new one).

    --mesh FILE --self NAME runs this host's part of a mesh: every probe of the file to every
    other host, each series labelled source (NAME), target (the peer's name) and mesh, serving
    /metrics on NAME's address at the file's metrics_port (--listen overrides it). udp probes
    are signed with the file's key (key_file or key_env) for the peers' keyed reflectors
    (netkit serve udp --mode echo --key-file F). Other options override the file's settings.

    On a terminal a live dashboard runs on stderr; with --format jsonl each round is one JSON
    line on stdout. SIGHUP re-reads --config or --mesh (a host added or removed is an edit and
    a SIGHUP); SIGTERM stops cleanly (exit 0), SIGINT exits 130.

    \b
    Examples:
      netkit monitor 127.0.0.1:22 127.0.0.1:5432 --interval 5s
      netkit monitor --config monitor.toml --listen 0.0.0.0:9464
      netkit monitor 127.0.0.1:22 --textfile /var/lib/node_exporter/netkit.prom --rounds 1
      netkit monitor --method trace 198.18.0.1 --interval 30s
      netkit monitor --mesh mesh.toml --self fra1
    """
    from netkit.core.errors import InputError
    from netkit.core.monitor_config import CliSettings
    from netkit.io.aio import run
    from netkit.io.measure.monitor import Monitor, load_config, load_mesh_config, run_monitor
    from netkit.render.live import LiveScreen
    from netkit.render.monitor import RoundPrinter, dashboard_on, emit_outcome, monitor_dashboard, textfile_name_warning

    out = get_output()
    overrides = {"interval": interval, "method": method, "timeout": timeout, "packets": packets,
                 "packet_interval": packet_interval, "retries": retries, "max_hops": max_hops, "listen": listen,
                 "textfile": textfile, "window": window}
    cli = CliSettings(tuple(targets), {k: v for k, v in overrides.items() if v is not None})
    loader: Callable[[], MonitorConfig] | None = None
    if mesh_path is not None or self_name is not None:
        mesh_usage(mesh_path, self_name, targets, config_path, method)
        assert mesh_path is not None and self_name is not None
        config_path = mesh_path  # what SIGHUP re-reads
        loader = partial(load_mesh_config, mesh_path, self_name, cli)
    elif config_path is not None:
        loader = partial(load_config, config_path, cli)
    try:
        config = loader() if loader is not None else load_config(None, cli)
    except InputError as exc:
        if loader is not None:  # the file's content: its own line names the file and key; --help won't fix it
            raise
        raise usage_error(exc.message) from None  # all from the command line: with the "Try" hint
    if config.textfile and (warning := textfile_name_warning(config.textfile)):
        out.warn(warning)
    monitor = Monitor(config, on_round=RoundPrinter(out).on_round, on_warning=out.warn, on_info=out.info)

    def view() -> AbstractContextManager[object]:
        if not dashboard_on(out):
            return nullcontext()
        screen = LiveScreen(out, lambda: monitor_dashboard(monitor.state, monitor.lock, screen.width))
        return screen

    outcome = run(run_monitor(monitor, rounds=rounds, config_path=config_path, view=view, loader=loader))
    emit_outcome(out, outcome)
    if outcome.interrupted:
        return ExitCode.INTERRUPTED
    if outcome.rounds_limited:
        return ExitCode.OK if outcome.all_up else ExitCode.CHECK_FAILED
    return ExitCode.OK
