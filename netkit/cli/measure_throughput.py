"""``netkit measure throughput``: bandwidth like iperf3, against netkit, iperf3 or any TCP service.

Options -> ``ThroughputConfig`` -> ``netkit.io.measure.throughput.measure_throughput`` (which
chooses netkit's or iperf3's protocol) -> ``ThroughputResult`` -> ``netkit.render.throughput``
(live view, interval lines, tables, json, jsonl, csv) -> exit code. Heavy imports happen inside the
command so ``netkit --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.guard_options import key_options, load_key_option
from netkit.cli.options import timeout_option
from netkit.cli.params import BITRATE, TARGET, Count, Duration, Size, usage_error
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.targets import Target
    from netkit.core.throughput_models import ThroughputConfig
    from netkit.render.output import Output


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
@click.option("--latency", is_flag=True,
              help="Also measure RTT under load: an idle phase, then each direction, probes throughout.")
@click.option("--directions", default=None, metavar="LIST",
              help="With --latency: loaded phases in order, e.g. down,up,bidir (each --duration long).")
@click.option("--latency-probe", type=click.Choice(["auto", "echo", "tcp-connect", "icmp"]), default="auto",
              show_default=True, help="With --latency: how RTT is taken (auto: the best the server allows).")
@click.option("--latency-interval", type=Duration(min=0.01, max=10.0), default="100ms", show_default=True,
              help="With --latency: time between probes.")
@click.option("--idle", "idle_time", type=Duration(min=0.5, max=600.0), default="2s", show_default=True,
              help="With --latency: the idle phase (probes only) before the load.")
@click.option("--max-added-latency", type=Duration(min=0.0), default=None, metavar="DURATION",
              help="Check: exit 1 when a phase's added latency (loaded p50 - idle p50) is above this, e.g. 30ms.")
@timeout_option("--connect-timeout", default="5s", max_s=600.0,
                help="Timeout for each connect and the server's answers.")
@key_options(with_key=True)
@output_options
def throughput(target: Target, duration: float, parallel: int, reverse: bool, bidir: bool, size: int | None,
               interval: float, omit: float, udp: bool, rate: float | None, iperf3_: bool, plain: bool,
               min_rate: float | None, latency: bool, directions: str | None, latency_probe: str,
               latency_interval: float, idle_time: float, max_added_latency: float | None,
               connect_timeout: float, key: str | None = None, key_file: str | None = None) -> int:
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
      netkit measure throughput 127.0.0.1:5000 --latency -P 4 -R  # RTT idle and loaded
    """
    from netkit.core.throughput_models import ServerKind, ThroughputConfig
    from netkit.io.aio import StopSignal
    from netkit.io.measure.throughput import measure_throughput
    from netkit.render.throughput import ThroughputView, emit_result, print_notes

    out = get_output()
    if reverse and bidir:
        raise usage_error("use either --reverse or --bidir, not both")
    if iperf3_ and plain:
        raise usage_error("use either --iperf3 or --plain, not both")
    if rate is not None and not udp:
        raise usage_error("-b/--rate paces UDP only: add --udp")  # said once, not "Invalid value for --rate: --rate"
    if udp and (plain or bidir or reverse):
        raise usage_error("--udp works with `netkit serve udp --mode echo` or `iperf3 -s` only "
                          "(no --plain/--bidir/--reverse)")
    if udp and rate is None:
        rate = 1_000_000.0  # iperf3's UDP default: 1 Mbit/s
    if size is None:
        size = 1400 if udp else 128 * 1024
    if udp and not 56 <= size <= 65507:
        raise usage_error("a UDP datagram must be 56..65507 bytes (the probe header is 56)", "--size")
    mkey = load_key_option(key, key_file)  # keyed headers and probes (--key, NETKIT_KEY) for a keyed server
    if mkey is not None and (iperf3_ or plain):
        if key is not None or key_file is not None:  # NETKIT_KEY alone: just not used here
            raise usage_error("--key needs a netkit server (not --iperf3/--plain)", "--key")
        mkey = None
    if mkey is not None and udp and size < 72:
        raise usage_error("a keyed UDP datagram must be at least 72 bytes (header + 16-byte tag)", "--size")
    server = (ServerKind.IPERF3 if iperf3_ else ServerKind.PLAIN if plain
              else ServerKind.NETKIT if mkey is not None else ServerKind.AUTO)
    cfg = ThroughputConfig(
        host=target.host, port=target.port, duration_s=duration, parallel=parallel, reverse=reverse,
        bidir=bidir, block_size=size, interval_s=interval, omit_s=omit, server=server, udp=udp,
        rate_bps=rate, connect_timeout_s=connect_timeout, key=mkey, min_rate_bps=min_rate,
    )
    if latency or directions is not None or max_added_latency is not None:
        return _with_latency(out, cfg, latency, directions, latency_probe, latency_interval, idle_time,
                             max_added_latency)
    view = ThroughputView(out, duration + omit, multi=len(cfg.directions()) > 1)
    with StopSignal() as signals, view:  # SIGINT, SIGTERM or SIGHUP: the streams stop, the summary still prints
        result = measure_throughput(cfg, view.interval, on_progress=view.progress, stop=signals.flag,
                                    on_info=out.debug)
    print_notes(out, result)
    emit_result(out, result, streamed=view.streamed)
    if signals.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if result.thresholds.passed else ExitCode.CHECK_FAILED


def _with_latency(out: Output, cfg: ThroughputConfig, latency: bool, directions: str | None, probe: str,
                  interval: float, idle_s: float, max_added: float | None) -> int:
    """``--latency``: an idle phase, then each direction, with RTT probes all along."""
    from netkit.core.loaded_latency import LoadedLatencyConfig, ProbeChoice, flag_phase, parse_directions
    from netkit.io.aio import StopSignal
    from netkit.io.measure.loaded_latency import measure_loaded_latency
    from netkit.render.loaded_latency import PhaseViews, emit_run

    if not latency:
        raise usage_error("--directions and --max-added-latency need --latency")
    if cfg.udp:
        raise usage_error("--latency measures TCP load only (no --udp)")
    if directions is not None:
        if cfg.reverse or cfg.bidir:
            raise usage_error("use either --directions or -R/--bidir, not both")
        try:
            phases = parse_directions(directions)
        except ValueError as exc:
            raise usage_error(str(exc), "--directions") from None
    else:
        phases = (flag_phase(cfg.reverse, cfg.bidir),)
    lcfg = LoadedLatencyConfig(probe=ProbeChoice(probe), interval_s=interval, idle_s=idle_s, phases=phases,
                               max_added_latency_ms=None if max_added is None else max_added * 1000.0)
    each = cfg.duration_s + cfg.omit_s
    out.info(f"netkit: about {lcfg.total_s(each):g} s: {idle_s:g} s idle, then "
             + ", ".join(f"{p} {each:g} s" for p in phases))
    views = PhaseViews(out, each, idle_s, cfg.parallel > 1, len(phases) > 1)
    with StopSignal() as signals:  # SIGINT, SIGTERM or SIGHUP: the phase stops, the summary still prints
        run = measure_loaded_latency(cfg, lcfg, views, stop=signals.flag, on_info=out.info, on_debug=out.debug,
                                     on_sample=views.probes.add)
    emit_run(out, run, streamed=views.streamed)
    if signals.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if run.passed else ExitCode.CHECK_FAILED
