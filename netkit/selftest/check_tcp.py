"""Selftest rows for ``serve tcp``/``send tcp``: echo integrity over 64 MiB, and reply mode."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

from netkit.core.escape import safe_text
from netkit.core.serve_models import TcpServerConfig
from netkit.core.units import format_bitrate, format_ms
from netkit.io.servers.tcp_server import TcpServer
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 10
ECHO_BYTES = 64 * 1024 * 1024
QUICK_BYTES = 8 * 1024 * 1024
CHUNK = 1024 * 1024


async def echo_integrity(host: str, port: int, total: int, ssl_ctx: Any = None,
                         server_hostname: str | None = None) -> tuple[bool, float, str]:
    """Send ``total`` random bytes through an echo server; compare SHA-256 of both directions.

    Returns (digests equal, elapsed seconds, digest prefix). Sends and reads concurrently so the
    server's backpressure never deadlocks the transfer.
    """
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=server_hostname)
    sent_hash, recv_hash = hashlib.sha256(), hashlib.sha256()
    start = time.perf_counter()

    async def produce() -> None:
        left = total
        while left > 0:
            block = os.urandom(min(CHUNK, left))
            sent_hash.update(block)
            writer.write(block)
            left -= len(block)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def consume() -> int:
        got = 0
        while got < total:
            data = await reader.read(CHUNK)
            if not data:
                break
            recv_hash.update(data)
            got += len(data)
        return got

    try:
        _, got = await asyncio.gather(produce(), consume())
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2.0)
        except (asyncio.TimeoutError, OSError):
            pass
    elapsed = time.perf_counter() - start
    ok = got == total and sent_hash.digest() == recv_hash.digest()
    return ok, elapsed, recv_hash.hexdigest()[:16]


def rate_text(nbytes: int, seconds: float) -> str:
    """Bits per second through the one formatter (``2.28 Gbit/s``, ``512 Mbit/s`` on a slow box)."""
    return format_bitrate(nbytes * 8 / seconds) if seconds > 0 else "-"


async def run(env: SelftestEnv) -> list[CheckResult]:
    from netkit.core.send_models import TcpSendConfig
    from netkit.io.clients.tcp_client import send_tcp

    rows: list[CheckResult] = []
    total = QUICK_BYTES if env.quick else ECHO_BYTES
    server = TcpServer(TcpServerConfig(host=env.host, port=0, mode="echo"))
    host, port = await server.start()
    try:
        ok, elapsed, digest = await echo_integrity(host, port, total)
        rows.append(CheckResult(
            "tcp echo integrity", ok, f"{total >> 20} MiB, {rate_text(2 * total, elapsed)}",
            f"sha256 {'matches' if ok else 'DIFFERS'} ({digest}…)",
        ))
    finally:
        await server.stop()

    server = TcpServer(TcpServerConfig(host=env.host, port=0, mode="reply", reply=b"Message received"))
    host, port = await server.start()
    try:
        result = await send_tcp(TcpSendConfig(host=host, port=port, wait=2.0), b"hello")
        ok = result.reply == "Message received"
        # the reply as text (control bytes escaped), not a Python repr; times as every table shows them
        reply = f'"{safe_text(result.reply, limit=40)}"'
        rows.append(CheckResult("tcp reply", ok, format_ms(result.elapsed_ms),
                                f"reply {reply}, connect {format_ms(result.connect_ms)}"))
    finally:
        await server.stop()
    return rows
