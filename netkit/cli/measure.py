"""``netkit measure``: the meter. Each method lives in its own module, loaded on use."""

from __future__ import annotations

import click

from netkit.cli.lazy import LazyGroup

MEASURE_COMMANDS: dict[str, tuple[str, str]] = {
    "latency": ("netkit.cli.measure_latency:latency", "Round-trip time: tcp-connect, tcp-echo, udp, icmp."),
    "loss": ("netkit.cli.measure_loss:loss", "Packet loss with a paced UDP probe stream."),
    "throughput": ("netkit.cli.measure_throughput:throughput", "Bandwidth, like iperf3."),
    "requests": ("netkit.cli.measure_requests:requests", "Request/response load over persistent connections."),
    "connections": ("netkit.cli.measure_connections:connections", "New TCP connections per second."),
    "responsiveness": ("netkit.cli.measure_responsiveness:responsiveness",
                       "Responsiveness under load (RPM), the IETF way."),
    "http": ("netkit.cli.measure_http:http", "HTTP request phases: DNS, connect, TLS, TTFB."),
    "dns": ("netkit.cli.measure_dns:dns", "DNS servers: answers, RTT percentiles, loss."),
}


# Shells show at most 45 characters of a command's summary: this one fits whole.
@click.group(cls=LazyGroup, lazy_subcommands=MEASURE_COMMANDS,
             short_help="Latency, loss, throughput, RPM, HTTP, DNS.")
def measure() -> None:
    """Measure latency, loss, throughput, requests, connections."""
