"""``netkit send udp``: send datagrams on a connected UDP socket and collect the replies.

A connected socket only accepts datagrams from the target, and it reports ICMP port
unreachable as ``ConnectionRefusedError`` (``error_received``): "port unreachable".
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

from netkit.core.escape import safe_text
from netkit.core.send_models import UDP_REPLIES_KEEP, UdpReply, UdpSendConfig, UdpSendResult
from netkit.core.serve_models import ms
from netkit.core.targets import format_host_port
from netkit.io.resolve import PORT_UNREACHABLE, resolve
from netkit.io.tcp_client import ConnectFailed

ReplySink = Callable[[bytes, Any], None]


class _Client(asyncio.DatagramProtocol):
    def __init__(self, start_ns: int, on_reply: ReplySink | None) -> None:
        self.start_ns = start_ns
        self.on_reply = on_reply
        self.replies: list[UdpReply] = []
        self.count = 0
        self.bytes = 0
        self.error: str | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.count += 1
        self.bytes += len(data)
        if len(self.replies) < UDP_REPLIES_KEEP:
            peer = format_host_port(str(addr[0]), int(addr[1])) if isinstance(addr, tuple) else str(addr)
            self.replies.append(UdpReply(peer, len(data), ms(time.perf_counter_ns() - self.start_ns),
                                         safe_text(data, limit=4096)))
        if self.on_reply is not None:
            self.on_reply(data, addr)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self.error = PORT_UNREACHABLE
        else:
            self.error = f"{type(exc).__name__}: {exc}"


async def send_udp(config: UdpSendConfig, data: bytes, *, on_reply: ReplySink | None = None) -> UdpSendResult:
    """Send ``config.count`` copies of ``data``, ``config.interval`` apart; listen ``config.wait``."""
    target = format_host_port(config.host, config.port)
    addr = await resolve(config.host, config.port, family=config.family, timeout=5.0, type=socket.SOCK_DGRAM)
    loop = asyncio.get_running_loop()
    start = time.perf_counter_ns()
    proto = _Client(start, on_reply)
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: proto, remote_addr=addr.sockaddr[:2], family=addr.family,  # uvloop: (host, port) only
        )
    except OSError as exc:
        raise ConnectFailed(f"{target}: cannot send: {exc.strerror or exc}") from None
    sent = sent_bytes = 0
    try:
        for i in range(config.count):
            if i:
                await asyncio.sleep(config.interval)
            transport.sendto(data)
            sent += 1
            sent_bytes += len(data)
        if config.wait > 0:
            deadline = time.perf_counter_ns() + int(config.wait * 1e9)
            while time.perf_counter_ns() < deadline and proto.error is None:
                if proto.count >= config.count:
                    # every datagram answered: a short grace for duplicates, then stop
                    await asyncio.sleep(min(0.05, max((deadline - time.perf_counter_ns()) / 1e9, 0)))
                    break
                await asyncio.sleep(min(0.01, max((deadline - time.perf_counter_ns()) / 1e9, 0)))
    finally:
        transport.close()
    return UdpSendResult(
        target=target, datagrams_sent=sent, sent_bytes=sent_bytes, datagrams_received=proto.count,
        received_bytes=proto.bytes, elapsed_ms=ms(time.perf_counter_ns() - start),
        replies=list(proto.replies), error=proto.error,
    )


def send_udp_sync(config: UdpSendConfig, data: bytes, *, on_reply: ReplySink | None = None) -> UdpSendResult:
    from netkit.io.aio import run

    return run(send_udp(config, data, on_reply=on_reply))
