"""``netkit send tcp``: connect, send, half-close, read the reply (like nc, with timings).

The reply is read while sending (a large upload to an echo server would otherwise deadlock
once both socket buffers fill). After the last byte is sent the write side is shut down, so an
echo server sees EOF; reading stops when the peer closes or after ``wait`` seconds of silence.
TLS cannot half-close: with TLS only the silence or the peer's close ends the read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import IO, TYPE_CHECKING

from netkit.core.errors import CheckFailed
from netkit.core.escape import safe_text
from netkit.core.send_models import REPLY_KEEP_BYTES, TcpSendConfig, TcpSendResult
from netkit.core.serve_models import ms
from netkit.core.targets import format_host_port
from netkit.io.resolve import failure_reason, resolve

if TYPE_CHECKING:  # pragma: no cover
    from netkit.io.aio import StopSignal

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
    data: bytes | IO[bytes],
    *,
    on_reply: ReplySink | None = None,
    stop: StopSignal | None = None,
) -> TcpSendResult:
    """Send ``data`` (bytes, or a binary file read in chunks) and collect the reply.

    ``stop`` (SIGINT/SIGTERM/SIGHUP) ends sending and reading at once; the result then holds what
    was sent and received so far, with ``interrupted`` set.
    """
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
    sent = 0
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

    async def write_all() -> None:
        nonlocal sent
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                writer.write(bytes(data))
                sent = len(data)
                await writer.drain()
            else:
                async for chunk in _chunks(data):
                    writer.write(chunk)
                    sent += len(chunk)
                    await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the peer stopped listening; still report what it answered

    reading = asyncio.ensure_future(read_all())
    writing = asyncio.ensure_future(write_all())
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    watched = {writing} if stopper is None else {writing, stopper}
    try:
        # A reply that fails to reach stdout (``| head -c 10``) ends the run as well.
        while not writing.done() and not (stopper and stopper.done()) and not _failed(reading):
            await asyncio.wait(watched | {reading}, return_when=asyncio.FIRST_COMPLETED)
        sent_done = time.perf_counter_ns()
        wait_ns = int(config.wait * 1e9)
        while not reading.done() and not (stopper and stopper.done()):
            quiet_since = max(last_rx[0], sent_done)
            remaining = (quiet_since + wait_ns - time.perf_counter_ns()) / 1e9
            if remaining <= 0:
                break
            # FIRST_COMPLETED: the default (all) would sit out the whole quiet wait for a stop
            # that never comes after the peer has already closed.
            await asyncio.wait({reading} if stopper is None else {reading, stopper}, timeout=remaining,
                               return_when=asyncio.FIRST_COMPLETED)
        if _failed(reading):
            raise reading.exception()  # type: ignore[misc]  # on_reply failed (stdout closed)
    finally:
        # Every task is awaited or has its outcome read, whatever ended the run (Ctrl-C while a
        # reply is being written into a closed pipe included): nothing is left "never retrieved".
        for task in (writing, reading, stopper):
            if task is None:
                continue
            if not task.done():
                task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (asyncio.TimeoutError, OSError, ssl.SSLError):
            pass
    return TcpSendResult(
        target=target, sent_bytes=sent, received_bytes=received, connect_ms=ms(connect_ns),
        elapsed_ms=ms(time.perf_counter_ns() - start), reply=safe_text(bytes(kept), keep_newlines=False),
        error=error, interrupted=stop is not None and stop.signum is not None,
    )


def _failed(task: asyncio.Future[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


async def _chunks(stream: IO[bytes]) -> AsyncIterator[bytes]:
    """Chunks of ``stream`` read by a daemon thread, at most a few chunks ahead.

    Not the loop's default executor: a read from a terminal or an idle pipe blocks until input
    comes, and the executor's shutdown would wait for it after a Ctrl-C. A daemon thread is
    abandoned at exit instead.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=4)
    # The file descriptor itself where there is one: a thread blocked in a buffered read holds the
    # buffer's lock, and the interpreter's exit (flushing stdin) would abort on it.
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    read1 = (lambda n: os.read(fd, n)) if fd is not None else getattr(stream, "read1", stream.read)

    def put(item: bytes | BaseException) -> bool:
        try:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
            return True
        except (RuntimeError, asyncio.CancelledError, concurrent.futures.CancelledError):
            return False  # the loop is gone (the run ended): stop reading

    def pump() -> None:
        while True:
            try:
                chunk = read1(CHUNK)
            except (OSError, ValueError) as exc:
                put(exc)
                return
            if not put(chunk) or not chunk:
                return

    threading.Thread(target=pump, name="netkit-stdin", daemon=True).start()
    while True:
        item = await queue.get()
        if isinstance(item, BaseException):
            raise item
        if not item:
            return
        yield item


def send_tcp_sync(config: TcpSendConfig, data: bytes | IO[bytes], *, on_reply: ReplySink | None = None,
                  stop: StopSignal | None = None) -> TcpSendResult:
    """Blocking twin of :func:`send_tcp`; with ``stop``, SIGINT/SIGTERM/SIGHUP end it gracefully."""
    from netkit.io.aio import run_until_stopped

    return run_until_stopped(lambda signal_stop: send_tcp(config, data, on_reply=on_reply, stop=signal_stop), stop)


__all__ = ["ConnectFailed", "connect_error", "send_tcp", "send_tcp_sync"]
