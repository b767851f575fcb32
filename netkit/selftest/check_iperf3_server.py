"""Selftest row for ``serve iperf3``: netkit's iperf3 client against netkit's iperf3 server.

One short TCP test on loopback. The row passes when the bytes the client's result says were
received are the server's own count (its ``test`` event), the test ended normally, and the rate
is above a floor no working loopback misses.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from netkit.core.iperf3_server import Iperf3ServerConfig
from netkit.core.throughput_models import ServerKind, ThroughputConfig
from netkit.core.units import format_bitrate, format_count
from netkit.io.measure.throughput import measure_throughput
from netkit.io.servers.iperf3_server import Iperf3Server
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 72
FLOOR_BPS = 100e6


async def run(env: SelftestEnv) -> list[CheckResult]:
    events: list[dict[str, Any]] = []
    server = Iperf3Server(Iperf3ServerConfig(host=env.host, port=0), on_event=events.append)
    await server.start()
    loop = asyncio.get_running_loop()
    duration = 0.3 if env.quick else 1.0
    try:
        cfg = ThroughputConfig(server.host, server.port, duration_s=duration, interval_s=duration,
                               server=ServerKind.IPERF3)
        result = await loop.run_in_executor(None, functools.partial(measure_throughput, cfg))
        for _ in range(200):  # the server's summary follows the client's IPERF_DONE by a loop turn or two
            if any(e["event"] == "test" for e in events):
                break
            await asyncio.sleep(0.01)
    finally:
        await server.stop()
    tests = [e for e in events if e["event"] == "test"]
    got = result.summary.received_bytes
    counted = tests[0]["bytes_received"] if tests else None
    ok = (bool(tests) and tests[0]["outcome"] == "ok" and got is not None and got == counted
          and (result.rate_bps or 0) >= FLOOR_BPS)
    figure = format_bitrate(result.rate_bps) if result.rate_bps else ""
    detail = f"{format_count(got or 0)} bytes received, {format_count(counted or 0)} counted by the server"
    return [CheckResult("serve iperf3", ok, figure, detail)]
