"""``netkit send tcp``: connect, send, half-close, read the reply (like nc, with timings).

The reply is read while sending (a large upload to an echo server would otherwise deadlock
once both socket buffers fill). After the last byte is sent the write side is shut down, so an
echo server sees EOF; reading stops when the peer closes or after ``wait`` seconds of silence.
TLS cannot half-close: with TLS only the silence or the peer's close ends the read.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import BinaryIO

from netkit.core.errors import CheckFailed
from netkit.core.escape import safe_text
from netkit.core.send_models import REPLY_KEEP_BYTES, TcpSendConfig, TcpSendResult
from netkit.core.serve_models import ms
from netkit.core.targets import format_host_port
from netkit.io.resolve import failure_reason, resolve

CHUNK = 64 * 1024
ReplySink = Callable[[bytes], None]


class ConnectFailed(CheckFailed):
    """The connection could not be made (refused, timed out, TLS): exit 1."""


def connect_error(target: str, exc: BaseException, timeout: float) -> ConnectFailed:
    """One line naming which failure it was."""
    from netkit.io.tls import tls_error_message

    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionRefusedError)):
        return ConnectFailed(f"{target}: {failure_reason(exc, timeout=timeout)}")
    if isinstance(exc, ssl.SSLError):
        return ConnectFailed(f"{target}: {tls_error_message(exc)}")
    if isinstance(exc, ConnectionResetError):
        return ConnectFailed(f"{target}: connection reset during connect")
    if isinstance(exc, OSError):
        return ConnectFailed(f"{target}: cannot connect: {exc.strerror or exc}")
    return ConnectFailed(f"{target}: cannot connect: {exc}")


async def send_tcp(
    config: TcpSendConfig,
    data: bytes | BinaryIO,
    *,
    on_reply: ReplySink | None = None,
) -> TcpSendResult:
    """Send ``data`` (bytes, or a binary file read in chunks) and collect the reply."""
    target = format_host_port(config.host, config.port)
    start = time.perf_counter_ns()
    addr = await resolve(config.host, config.port, family=config.family, timeout=config.timeout)
    ctx: ssl.SSLContext | None = None
    if config.tls:
        from netkit.io.tls import client_context

        ctx = client_context(insecure=config.insecure, cafile=config.cafile)
    t0 = time.perf_counter_ns()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                addr.address, config.port, family=addr.family, ssl=ctx,
                server_hostname=(config.server_name or config.host) if ctx else None,
                limit=CHUNK * 4,
            ),
            config.timeout,
        )
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
        raise connect_error(target, exc, config.timeout) from None
    connect_ns = time.perf_counter_ns() - t0

    kept = bytearray()
    received = 0
    last_rx = [time.perf_counter_ns()]
    error: str | None = None

    async def read_all() -> None:
        nonlocal received, error
        while True:
            try:
                chunk = await reader.read(CHUNK)
            except ConnectionResetError:
                # Not a normal end: say so (the caller exits 1), but keep what arrived.
                error = f"connection reset by peer after {received} bytes"
                return
            except (ssl.SSLError, OSError) as exc:
                error = f"connection failed after {received} bytes: {getattr(exc, 'strerror', None) or exc}"
                return
            if not chunk:
                return
            received += len(chunk)
            last_rx[0] = time.perf_counter_ns()
            if len(kept) < REPLY_KEEP_BYTES:
                kept.extend(chunk[: REPLY_KEEP_BYTES - len(kept)])
            if on_reply is not None:
                on_reply(chunk)

    reading = asyncio.ensure_future(read_all())
    sent = 0
    try:
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                writer.write(bytes(data))
                sent = len(data)
                await writer.drain()
            else:
                loop = asyncio.get_running_loop()
                read1 = getattr(data, "read1", data.read)
                while True:
                    chunk = await loop.run_in_executor(None, read1, CHUNK)
                    if not chunk:
                        break
                    writer.write(chunk)
                    sent += len(chunk)
                    await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the peer stopped listening; still report what it answered
        sent_done = time.perf_counter_ns()
        wait_ns = int(config.wait * 1e9)
        while not reading.done():
            quiet_since = max(last_rx[0], sent_done)
            remaining = (quiet_since + wait_ns - time.perf_counter_ns()) / 1e9
            if remaining <= 0:
                break
            await asyncio.wait({reading}, timeout=remaining)
        if reading.done() and not reading.cancelled() and reading.exception() is not None:
            raise reading.exception()  # type: ignore[misc]  # on_reply failed (stdout closed)
    finally:
        if not reading.done():
            reading.cancel()
            try:
                await reading
            except asyncio.CancelledError:
                pass
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (asyncio.TimeoutError, OSError, ssl.SSLError):
            pass
    return TcpSendResult(
        target=target, sent_bytes=sent, received_bytes=received, connect_ms=ms(connect_ns),
        elapsed_ms=ms(time.perf_counter_ns() - start), reply=safe_text(bytes(kept), keep_newlines=False),
        error=error,
    )


def send_tcp_sync(config: TcpSendConfig, data: bytes | BinaryIO, *, on_reply: ReplySink | None = None) -> TcpSendResult:
    """Blocking twin of :func:`send_tcp`."""
    from netkit.io.aio import run

    return run(send_tcp(config, data, on_reply=on_reply))


__all__ = ["ConnectFailed", "connect_error", "send_tcp", "send_tcp_sync"]
