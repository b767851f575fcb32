"""Selftest rows for ``measure throughput``: netkit client against netkit's own TCP server.

Forward and reverse, each briefly; the row passes when the server's own count (counted by the
receiver) equals what the client sent, and the rate is above a floor no working loopback misses.
"""

from __future__ import annotations

import asyncio
import functools

from netkit.core.serve_models import TcpServerConfig
from netkit.core.throughput_models import CountedBy, ServerKind, ThroughputConfig, ThroughputResult
from netkit.core.units import format_bitrate, format_count
from netkit.io.measure.throughput import measure_throughput
from netkit.io.servers.tcp_server import TcpServer
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 70
FLOOR_BPS = 100e6  # loopback moves tens of Gbit/s; below 100 Mbit/s something is broken


def _row(name: str, r: ThroughputResult) -> CheckResult:
    s = r.summary
    ok = (r.server == ServerKind.NETKIT and r.counted_by == CountedBy.RECEIVER and s.received_bytes is not None
          and s.received_bytes == s.sent_bytes and (r.rate_bps or 0) >= FLOOR_BPS)
    figure = format_bitrate(r.rate_bps) if r.rate_bps else ""
    got = "-" if s.received_bytes is None else format_count(s.received_bytes)
    detail = f"{got} bytes counted by the {r.counted_by} ({r.server} server)"
    return CheckResult(name, ok, figure, detail)


async def run(env: SelftestEnv) -> list[CheckResult]:
    server = TcpServer(TcpServerConfig(host=env.host, port=0, mode="discard"))
    await server.start()
    loop = asyncio.get_running_loop()
    duration = 0.3 if env.quick else 1.0
    rows = []
    try:
        for name, reverse in (("throughput", False), ("throughput reverse", True)):
            cfg = ThroughputConfig(server.host, server.port, duration_s=duration, interval_s=duration,
                                   reverse=reverse, server=ServerKind.NETKIT)
            result = await loop.run_in_executor(None, functools.partial(measure_throughput, cfg))
            rows.append(_row(name, result))
    finally:
        await server.stop()
    return rows
