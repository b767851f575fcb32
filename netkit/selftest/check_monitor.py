"""Selftest row for ``monitor``: one round against an open and a closed loopback port, scraped over HTTP.

The scrape is parsed with ``prometheus_client``'s own parser, so the row proves the exposition
format as Prometheus reads it, not just that netkit wrote something.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request

from netkit.core.serve_models import TcpServerConfig
from netkit.core.units import format_count
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 60


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5.0) as resp:  # loopback only
        return resp.read().decode("utf-8")


async def run(env: SelftestEnv) -> list[CheckResult]:
    from prometheus_client.parser import text_string_to_metric_families

    from netkit.core.monitor_config import CliSettings, build_config
    from netkit.io.measure.monitor import MetricsServer, Monitor
    from netkit.io.servers.tcp_server import TcpServer

    server = TcpServer(TcpServerConfig(host=env.host, port=0, mode="echo"))
    host, port = await server.start()
    # A bound socket that never listens: connects to it are refused, and nothing else can take it.
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    metrics: MetricsServer | None = None
    try:
        closed.bind((env.host, 0))
        closed_port = closed.getsockname()[1]
        open_t, closed_t = f"{host}:{port}", f"{env.host}:{closed_port}"
        config = build_config(None, CliSettings((open_t, closed_t), {"interval": 1.0, "timeout": 0.2,
                                                                     "listen": (env.host, 0)}))
        monitor = Monitor(config)
        metrics = MetricsServer(monitor.registry, env.host, 0)
        await monitor.run(asyncio.Event(), rounds=1)
        text = await asyncio.to_thread(_scrape, f"http://{metrics.address}/metrics")
    finally:
        if metrics is not None:
            metrics.close()
        closed.close()
        await server.stop()
    values: dict[tuple[str, str], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if "target" in s.labels:
                values[(s.name, s.labels["target"])] = s.value
    up = values.get(("netkit_probe_success", open_t))
    down = values.get(("netkit_probe_success", closed_t))
    sent = values.get(("netkit_packets_sent_total", open_t))
    lost = values.get(("netkit_packets_lost_total", open_t))
    ok = up == 1.0 and down == 0.0 and sent == 3.0 and lost == 0.0
    return [CheckResult(
        "monitor /metrics", ok, f"{format_count(len(text))} bytes scraped",
        f"success open={_sample(up)} closed={_sample(down)}, packets sent={_sample(sent)} lost={_sample(lost)}",
    )]


def _sample(value: float | None) -> str:
    """A scraped sample as a person reads it: ``1``, ``0``, ``3`` (``-`` when it was missing)."""
    return "-" if value is None else format_count(value)
