"""Selftest rows for ``measure connections``: new connections per second against ``serve tcp`` on
loopback (every one completes, closed with a reset so no TIME_WAIT is left on this host), and a
port bound but not listening, whose every attempt must be counted as refused."""

from __future__ import annotations

import asyncio
import socket
import threading

from netkit.core.connections_config import CloseMode, ConnectionsConfig
from netkit.core.serve_models import TcpServerConfig
from netkit.core.units import format_count, format_ms, format_rate
from netkit.io.measure.connection_rate import run_connections
from netkit.io.servers.tcp_server import TcpServer
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 76
REFUSED_ATTEMPTS = 20


async def run(env: SelftestEnv) -> list[CheckResult]:
    rows: list[CheckResult] = []
    seconds = 0.5 if env.quick else 1.0
    stop = threading.Event()  # set when the check is cancelled, so the thread's loop ends
    server = TcpServer(TcpServerConfig(host=env.host, port=0, mode="echo"))
    host, port = await server.start()
    try:
        # The loop blocks, and the server runs in this event loop: the loop runs in a thread.
        cfg = ConnectionsConfig(host=host, port=port, concurrency=4, duration_s=seconds, close=CloseMode.RST)
        r = await asyncio.to_thread(run_connections, cfg, stop=stop)
        ok = r.connections > 0 and r.errors_total == 0
        rows.append(CheckResult("connections rate", ok,
                                f"{format_rate(r.connections_per_s or 0.0, 'conn/s')}, "
                                f"p99 {format_ms(r.connect.p99)}",
                                f"4 at a time, {format_count(r.connections)} connections, "
                                f"{format_count(r.errors_total)} errors"))
        # Bound, never listening: the kernel answers every SYN with a reset.
        with socket.socket(socket.AF_INET6 if ":" in env.host else socket.AF_INET) as closed:
            closed.bind((env.host, 0))
            cfg = ConnectionsConfig(host=host, port=closed.getsockname()[1], concurrency=2,
                                    count=REFUSED_ATTEMPTS, duration_s=5.0, timeout_s=1.0)
            r = await asyncio.to_thread(run_connections, cfg, stop=stop)
        refused = r.errors.get("refused", 0)
        rows.append(CheckResult("connections refused", refused == REFUSED_ATTEMPTS and r.connections == 0,
                                f"{refused} of {REFUSED_ATTEMPTS} refused",
                                "a port bound but not listening: every attempt counted as refused"))
    finally:
        stop.set()
        await server.stop()
    return rows
