"""Selftest rows for ``measure requests``: load against ``serve tcp`` echo, and the pool's recovery
when the server restarts mid-run (drops counted, the run completes)."""

from __future__ import annotations

import asyncio

from netkit.core.backoff import Backoff
from netkit.core.requests_config import RequestsConfig
from netkit.core.serve_models import TcpServerConfig
from netkit.core.units import format_count, format_ms, format_rate
from netkit.io.measure.request_load import run_requests
from netkit.io.servers.tcp_server import TcpServer
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 75
FAST_BACKOFF = Backoff(50_000_000, 2.0, 200_000_000)


async def run(env: SelftestEnv) -> list[CheckResult]:
    rows: list[CheckResult] = []
    seconds = 0.5 if env.quick else 1.5
    server = TcpServer(TcpServerConfig(host=env.host, port=0, mode="echo"))
    host, port = await server.start()
    try:
        r = await run_requests(RequestsConfig(host=host, port=port, connections=10, duration_s=seconds))
        errors = sum(r.errors.values())
        ok = r.requests > 0 and errors == 0 and r.bytes_received >= r.requests * 64
        rps = r.requests_per_s or 0.0
        rows.append(CheckResult("requests closed loop", ok,
                                f"{format_rate(rps, 'req/s')}, p99 {format_ms(r.latency.p99)}",
                                f"10 connections, {format_count(r.requests)} requests, {format_count(errors)} errors"))

        # The server goes away and comes back on the same port: the pool must reconnect.
        cfg = RequestsConfig(host=host, port=port, connections=4, duration_s=1.5, backoff=FAST_BACKOFF,
                             timeout_s=1.0)
        task = asyncio.ensure_future(run_requests(cfg))
        await asyncio.sleep(0.4)
        await server.stop()
        await asyncio.sleep(0.1)
        server = TcpServer(TcpServerConfig(host=env.host, port=port, mode="echo"))
        await server.start()
        r = await task
        last = r.intervals[-1] if r.intervals else None
        recovered = last is not None and last.open_connections == 4 and last.requests > 0
        ok = r.drops >= 4 and r.reconnects >= 4 and recovered
        rows.append(CheckResult("requests reconnect", ok, f"{r.drops} drops, {r.reconnects} reconnects",
                                f"server restarted mid-run; {format_count(r.requests)} requests completed"))
    finally:
        await server.stop()
    return rows
