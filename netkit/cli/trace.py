"""``netkit trace``: the path to each target, hop by hop, like mtr, without privileges.

Options -> ``TraceConfig`` -> ``netkit.io.measure.trace.run_trace`` -> ``TraceResult`` ->
``netkit.render.trace`` (live view, jsonl events, table / json / jsonl / csv) -> exit code.
Heavy imports (asyncio, rich) happen inside the function so ``netkit --help`` stays fast.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.options import family_options, threshold_options, timeout_option
from netkit.cli.params import DURATION, Count, Duration, Size, usage_error
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.targets import Target
    from netkit.render.output import Output

DEFAULT_COUNT = 10
METHOD_WORDS = ("udp", "icmp", "tcp")  # netkit.core.trace_models.TraceMethod, unimported
MAX_TTL = 255
#: The IP header and the probe's own header: the smallest whole packet each method can send.
IP_HEADER: dict[int, int] = {socket.AF_INET: 20, socket.AF_INET6: 40}
PROBE_HEADER = {"udp": 8, "icmp": 8, "tcp": 20}
MAX_PACKET = 65535


def _is_v6_literal(host: str) -> bool:
    return ":" in host


def parse_targets(out: Output, texts: tuple[str, ...], method: str, port: int | None) -> tuple[list[Target],
                                                                                                int | None]:
    """``HOST`` (or ``HOST:PORT`` for udp and tcp, the port to probe) -> targets and the one port.

    Every target carries the port it is probed on. A trace has one destination port (the config's):
    ``HOST:PORT`` is a shorthand for ``--port``, so two different ports are a usage error.
    """
    from netkit.core.errors import InputError
    from netkit.core.targets import Target, split_host_port, validate_host
    from netkit.core.targets import parse_port as parse_one_port

    if not texts:
        raise usage_error("no targets: give HOST (or HOST:PORT for --method udp or tcp)")
    hosts: list[str] = []
    given: dict[int, str] = {}
    for text in texts:
        try:
            host, port_s = split_host_port(text)
            validate_host(host)
            if port_s is not None:
                given.setdefault(parse_one_port(port_s), text)
        except InputError as exc:
            raise usage_error(f"invalid target {text!r}: {exc}" if str(text) not in str(exc) else str(exc)) \
                from None
        hosts.append(host)
    if method == "icmp":
        if given:
            shown = f":{next(iter(given))}" if len(given) == 1 else ":PORT"
            out.warn(f"--method icmp has no ports; ignoring {shown}")
        return [Target(h, 0) for h in hosts], None
    if port is not None and any(p != port for p in given):
        other = next(p for p in given if p != port)
        raise usage_error(f"{given[other]} names port {other} but --port is {port}: give one", "--port")
    if len(given) > 1:
        a, b = list(given)[:2]
        raise usage_error(f"{given[a]} and {given[b]} name different ports: one trace probes one port")
    chosen = port if port is not None else next(iter(given), None)
    default = (80 if method == "tcp" else 33434) if chosen is None else chosen
    return [Target(h, default) for h in hosts], chosen


def check_size(size: int, method: str, family: int, targets: list[Target]) -> None:
    """``--size`` is the whole IP packet: at least the IP and probe headers of every family that
    may be used (IPv6 when asked with -6, when a target is an IPv6 address, or when a name may
    resolve to one)."""
    families: set[int] = set()
    for t in targets:
        if family != socket.AF_UNSPEC:
            families.add(family)
        elif _is_v6_literal(t.host):
            families.add(socket.AF_INET6)
        elif all(part.isdigit() for part in t.host.split(".")):
            families.add(socket.AF_INET)
        else:  # a name: either family
            families.update((socket.AF_INET, socket.AF_INET6))
    need = max(IP_HEADER[f] for f in families) + PROBE_HEADER[method]
    if size < need:
        over = "IPv6" if need - PROBE_HEADER[method] == 40 else "IPv4"
        hint = " (-4 allows less)" if over == "IPv6" and family == socket.AF_UNSPEC else ""
        raise usage_error(f"{size} bytes is too small: the whole IP packet, at least {need} bytes for "
                          f"{method} over {over}{hint}", "--size")


@click.command(name="trace")
@click.argument("targets", nargs=-1, metavar="TARGET...")
@click.option("--method", type=click.Choice(METHOD_WORDS), default="udp", show_default=True,
              help="udp: datagrams to high ports, like traceroute (unprivileged); icmp: echo requests on an "
                   "ICMP datagram socket (where net.ipv4.ping_group_range allows); tcp: SYN to --port, like "
                   "tcptraceroute (unprivileged too).")
@click.option("-c", "--count", type=Count(min=1), default=None,
              help=f"Rounds: probes per hop (default {DEFAULT_COUNT} unless --duration is given).")
@click.option("-d", "--duration", type=Duration(min=0.0, min_open=True), default=None,
              help="Wall-clock time to trace for (with --count: whichever comes first).")
@click.option("-i", "--interval", type=DURATION, default="1s", show_default=True,
              help="Time between rounds (every hop is probed once a round).")
@timeout_option("-W", "--timeout", default="1s", help="How long one probe is waited for; later is lost.")
@click.option("-m", "--max-hops", type=Count(min=1, max=MAX_TTL), default=30, show_default=True,
              help="The largest TTL (hop limit) probed.")
@click.option("-f", "--first-hop", type=Count(min=1, max=MAX_TTL), default=1, show_default=True,
              help="The first TTL probed (skip the hops you know).")
@click.option("-p", "--port", type=Count(min=1, max=65535), default=None,
              help="Destination port: tcp default 80; udp default 33434 and up, one more per probe, or "
                   "every probe to this port when given (HOST:PORT says the same). Not for icmp.")
@click.option("-s", "--size", type=Size(min=0, max=MAX_PACKET), default=None,
              help="Probe size in bytes: the whole IP packet, headers included (default: the method's).")
@family_options
@click.option("-n", "--numeric", is_flag=True, help="Show addresses only: no reverse DNS lookups.")
@click.option("--pmtu", is_flag=True,
              help="Find the path MTU and the hops where it drops (tracepath's job); a PMTU black hole "
                   "(no 'fragmentation needed' answer) is found by search and flagged.")
@threshold_options
@output_options
def trace(targets: tuple[str, ...], method: str, count: int | None, duration: float | None, interval: float,
          timeout: float, max_hops: int, first_hop: int, port: int | None, size: int | None, family: int,
          numeric: bool, pmtu: bool, max_loss: float | None, max_rtt: float | None) -> ExitCode:
    """Trace the path to one or more targets, hop by hop, like mtr (several targets at once,
    one table each).

    Each round probes every hop at once; over the rounds each hop shows who answered (several
    addresses with their shares for ECMP or a route change), loss and RTT figures. A hop that
    never answers shows ???. Loss at a hop that does not carry on to later hops is the router
    limiting its ICMP answers, marked * and not held against the path: --max-loss and
    --max-rtt (p95) are judged on the destination.

    On a terminal a live view shows the rounds as they come; off one, the report when done.
    Ctrl-C stops early and prints the report so far. --format jsonl streams one object per
    probe as it completes, then one summary per target.
    Exit status: 0 every target reached within the thresholds, 1 not reached or a threshold
    breached, 2 usage, 3 runtime (e.g. no permission for the method).

    \b
    Examples:
      netkit trace example.test
      netkit trace -n -c 1 198.18.0.9
      netkit trace --method icmp 198.18.0.9 2001:db8::9 -c 20 -i 100ms
      netkit trace --pmtu -n 198.18.0.9
      netkit trace --format jsonl -c 100 -i 10ms 198.18.0.9 --max-loss 1
    """
    from netkit.core.trace_models import TraceConfig, TraceMethod
    from netkit.io.measure.trace import run_trace
    from netkit.render.trace import TraceLiveView, event_sink, print_trace

    out = get_output()
    if first_hop > max_hops:
        raise usage_error(f"{first_hop} is beyond --max-hops {max_hops}", "--first-hop")
    if port is not None and method == "icmp":
        raise usage_error("not with --method icmp (ICMP echo has no ports)", "--port")
    parsed, common_port = parse_targets(out, targets, method, port)
    if size is not None:
        check_size(size, method, family, parsed)
    if count is None and duration is None:
        count = DEFAULT_COUNT
    cfg = TraceConfig(method=TraceMethod(method), count=count, duration_s=duration, interval_s=interval,
                      timeout_s=timeout, max_hops=max_hops, first_hop=first_hop, port=common_port, size=size,
                      family=family, resolve_names=not numeric, pmtu=pmtu)
    with TraceLiveView(out, cfg.count) as view:
        result = run_trace(parsed, cfg, max_loss_pct=max_loss,
                           max_rtt_ms=None if max_rtt is None else max_rtt * 1000.0,
                           on_event=event_sink(out, view), on_start=view.attach)
    print_trace(out, result)
    return ExitCode.OK if result.thresholds.passed else ExitCode.CHECK_FAILED
