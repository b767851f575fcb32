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
@timeout_option("--connect-timeout", default="5s", max_s=600.0,
                help="Timeout for each connect and the server's answers.")
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
    view = ThroughputView(out, duration + omit, multi=len(cfg.directions()) > 1)
    with StopSignal() as signals, view:  # SIGINT, SIGTERM or SIGHUP: the streams stop, the summary still prints
        result = measure_throughput(cfg, view.interval, on_progress=view.progress, stop=signals.flag,
                                    on_info=out.debug)
    print_notes(out, result)
    emit_result(out, result, streamed=view.streamed)
    if signals.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if result.thresholds.passed else ExitCode.CHECK_FAILED
