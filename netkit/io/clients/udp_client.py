"""``netkit send udp``: send datagrams on a connected UDP socket and collect the replies.

A connected socket only accepts datagrams from the target, and it reports ICMP port
unreachable as ``ConnectionRefusedError`` (``error_received``): "port unreachable".
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netkit.core.escape import safe_text
from netkit.core.send_models import UDP_REPLIES_KEEP, UdpReply, UdpSendConfig, UdpSendResult
from netkit.core.serve_models import ms
from netkit.core.targets import format_host_port
from netkit.io.clients.tcp_client import ConnectFailed
from netkit.io.resolve import PORT_UNREACHABLE, resolve

if TYPE_CHECKING:  # pragma: no cover
    from netkit.io.aio import StopSignal

ReplySink = Callable[[bytes, Any], None]


class _Client(asyncio.DatagramProtocol):
    def __init__(self, start_ns: int, on_reply: ReplySink | None) -> None:
        self.start_ns = start_ns
        self.on_reply = on_reply
        self.replies: list[UdpReply] = []
        self.count = 0
        self.bytes = 0
        self.error: str | None = None
        #: Writing a reply failed because the reader went away (``| head -c 1``): ends the run.
        self.stdout_gone: BrokenPipeError | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.count += 1
        self.bytes += len(data)
        if len(self.replies) < UDP_REPLIES_KEEP:
            peer = format_host_port(str(addr[0]), int(addr[1])) if isinstance(addr, tuple) else str(addr)
            self.replies.append(UdpReply(peer, len(data), ms(time.perf_counter_ns() - self.start_ns),
                                         safe_text(data, limit=4096)))
        if self.on_reply is not None and self.stdout_gone is None:
            try:
                self.on_reply(data, addr)
            except BrokenPipeError as exc:  # raised from a loop callback it would only be logged
                self.stdout_gone = exc

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self.error = PORT_UNREACHABLE
        else:
            self.error = f"{type(exc).__name__}: {exc}"


async def send_udp(config: UdpSendConfig, data: bytes, *, on_reply: ReplySink | None = None,
                   stop: StopSignal | None = None) -> UdpSendResult:
    """Send ``config.count`` copies of ``data``, ``config.interval`` apart; listen ``config.wait``.

    ``stop`` (SIGINT/SIGTERM/SIGHUP) ends sending and listening at once; the result then holds
    what was sent and received so far, with ``interrupted`` set.
    """
    target = format_host_port(config.host, config.port)
    addr = await resolve(config.host, config.port, family=config.family, timeout=5.0, type=socket.SOCK_DGRAM)
    loop = asyncio.get_running_loop()
    start = time.perf_counter_ns()
    proto = _Client(start, on_reply)
    # Our own connected socket: asyncio's and uvloop's transports drop an empty ``sendto``, and an
    # empty message is a real zero-length datagram (a valid probe that a server sees as 0 bytes).
    sock = socket.socket(addr.family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(addr.sockaddr)
        transport, _ = await loop.create_datagram_endpoint(lambda: proto, sock=sock)
    except OSError as exc:
        sock.close()
        raise ConnectFailed(f"{target}: cannot send: {exc.strerror or exc}") from None
    def stopped() -> bool:
        return proto.stdout_gone is not None or (stop is not None and stop.is_set())

    async def pause(seconds: float) -> None:
        if stop is None:
            await asyncio.sleep(seconds)
        else:
            try:
                await asyncio.wait_for(stop.wait(), max(seconds, 0))
            except asyncio.TimeoutError:
                pass

    sent = sent_bytes = 0
    try:
        for i in range(config.count):
            if i:
                await pause(config.interval)
            if stopped():
                break
            if data:
                transport.sendto(data)
            else:
                try:
                    sock.send(b"")
                except (BlockingIOError, InterruptedError):
                    continue  # not sent: not counted
                except OSError as exc:
                    proto.error_received(exc)
                    break
            sent += 1
            sent_bytes += len(data)
        if config.wait > 0:
            deadline = time.perf_counter_ns() + int(config.wait * 1e9)
            while time.perf_counter_ns() < deadline and proto.error is None and not stopped():
                if proto.count >= config.count:
                    # every datagram answered: a short grace for duplicates, then stop
                    await pause(min(0.05, max((deadline - time.perf_counter_ns()) / 1e9, 0)))
                    break
                await pause(min(0.01, max((deadline - time.perf_counter_ns()) / 1e9, 0)))
    finally:
        transport.close()
    if proto.stdout_gone is not None:
        raise proto.stdout_gone
    return UdpSendResult(
        target=target, datagrams_sent=sent, sent_bytes=sent_bytes, datagrams_received=proto.count,
        received_bytes=proto.bytes, elapsed_ms=ms(time.perf_counter_ns() - start),
        replies=list(proto.replies), error=proto.error, interrupted=stop is not None and stop.signum is not None,
    )


def send_udp_sync(config: UdpSendConfig, data: bytes, *, on_reply: ReplySink | None = None,
                  stop: StopSignal | None = None) -> UdpSendResult:
    """Blocking twin of :func:`send_udp`; with ``stop``, SIGINT/SIGTERM/SIGHUP end it gracefully."""
    from netkit.io.aio import run_until_stopped

    return run_until_stopped(lambda signal_stop: send_udp(config, data, on_reply=on_reply, stop=signal_stop), stop)
