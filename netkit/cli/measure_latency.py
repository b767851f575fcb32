"""``netkit measure latency``: round-trip time by tcp-connect, tcp-echo, udp or icmp.

Options -> ``LatencyConfig`` -> ``netkit.io.measure.latency.run_latency`` -> ``LatencyResult`` ->
``netkit.render.latency`` (live view, per-reply lines, table / json / jsonl / csv) -> exit code.
Heavy imports (asyncio, rich) happen inside the function so ``netkit --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.guard_options import key_options, load_key_option
from netkit.cli.options import family_options, threshold_options, timeout_option
from netkit.cli.params import DURATION, Count, Duration, Size, usage_error
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.latency_models import Method
    from netkit.core.targets import Target
    from netkit.render.output import Output

DEFAULT_COUNT = 10
METHOD_WORDS = ("tcp-connect", "tcp-echo", "udp", "icmp")  # netkit.core.latency_models.Method, unimported


def parse_targets(out: Output, texts: tuple[str, ...], method: Method) -> list[Target]:
    """``HOST:PORT`` for every method but ICMP, which takes a host alone (a port is ignored, once said)."""
    from netkit.core.errors import InputError
    from netkit.core.targets import parse_target

    if not texts:
        raise usage_error("no targets: give HOST:PORT (HOST for --method icmp)")
    if not method.has_ports:
        targets = [parse_target(t, default_port=0) for t in texts]
        with_port = [t for t, parsed in zip(texts, targets, strict=True) if parsed.port]
        if with_port:
            port = f":{targets[texts.index(with_port[0])].port}" if len(with_port) == 1 else ":PORT"
            out.warn(f"--method icmp has no ports; ignoring {port}")
        return targets
    parsed: list[Target] = []
    for text in texts:
        try:
            parsed.append(parse_target(text))
        except InputError as exc:
            if "no port" in str(exc):
                raise usage_error(f"{text}: no port: give HOST:PORT, or --method icmp for ICMP echo") from None
            raise
    return parsed


@click.command(name="latency")
@click.argument("targets", nargs=-1, metavar="TARGET...")
@click.option("-m", "--method", type=click.Choice(METHOD_WORDS), default="tcp-connect", show_default=True,
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
@timeout_option("-W", "--timeout", default="1s", help="A reply later than this counts as late, not received.")
@click.option("-s", "--size", type=Size(min=0, max=65000), default=None,
              help="Probe size in bytes: UDP payload / TCP message (min 56, default 64), ICMP payload "
                   "(default 56, as ping -s).")
@family_options
@threshold_options
@click.option("--samples", is_flag=True, help="Include every RTT sample (samples_ms) in JSON.")
@click.option("--no-kernel-timestamps", is_flag=True,
              help="Time replies when Python reads them, not when the kernel received them.")
@key_options(with_key=True)  # a keyed reflector answers --method udp only when the probes are signed
@output_options
def latency(targets: tuple[str, ...], method: str, count: int | None, duration: float | None, interval: float,
            timeout: float, size: int | None, family: int, max_loss: float | None, max_rtt: float | None,
            samples: bool, no_kernel_timestamps: bool, key: str | None = None,
            key_file: str | None = None) -> ExitCode:
    """Measure round-trip time to one or more targets, concurrently (one row each, like fping).

    Off a terminal each reply prints one plain line, as ping does; with -q nothing is printed
    and the exit status tells.
    Exit status: 0 ok, 1 no reply from a target or a threshold breached, 2 usage, 3 runtime.
    Ctrl-C stops early and prints the summary of what was measured.

    \b
    Examples:
      netkit measure latency example.test:443
      netkit measure latency --method udp -c 100 -i 10ms 127.0.0.1:9000
      netkit measure latency --method icmp 127.0.0.1 ::1 --max-rtt 5ms --format json
    """
    from netkit.core import packet
    from netkit.core.latency_models import LatencyConfig, Method
    from netkit.io.measure.latency import run_latency
    from netkit.render.latency import LatencyLiveView, print_latency, reply_printer

    out = get_output()
    how = Method(method)
    parsed = parse_targets(out, targets, how)
    if size is None:
        size = 56 if how is Method.ICMP else 64
    if how in (Method.UDP, Method.TCP_ECHO) and size < packet.HEADER_SIZE:
        raise usage_error(f"--size must be at least {packet.HEADER_SIZE} bytes for --method {how}", "--size")
    if how is Method.ICMP and size > 65507 - 8:
        raise usage_error("--size too large for ICMP", "--size")
    if count is None and duration is None:
        count = DEFAULT_COUNT
    if how is not Method.UDP and (key is not None or key_file is not None):
        raise usage_error("--key works with --method udp (a keyed `netkit serve udp --mode echo`)", "--key")
    # NETKIT_KEY in the environment must not break the other methods: only udp loads it.
    mkey = load_key_option(key, key_file) if how is Method.UDP else None
    cfg = LatencyConfig(method=how, count=count, duration_s=duration, interval_s=interval, timeout_s=timeout,
                        size=size, family=family, kernel_timestamps=not no_kernel_timestamps, key=mkey)
    with LatencyLiveView(out, how, cfg.count) as view:
        result = run_latency(parsed, cfg, max_loss_pct=max_loss,
                             max_rtt_ms=None if max_rtt is None else max_rtt * 1000.0,
                             on_reply=reply_printer(out, how, live=view.active), on_start=view.attach)
    print_latency(out, result, cfg, samples=samples)
    return ExitCode.OK if result.thresholds.passed else ExitCode.CHECK_FAILED
