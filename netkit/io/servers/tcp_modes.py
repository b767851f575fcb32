"""The plain modes of ``netkit serve tcp`` (echo, discard, source, reply): the hot path.

After the first bytes were sniffed and are not a measurement session, the connection switches
(``set_protocol``) to the small protocol of its mode, whose ``data_received`` does the least
possible work: per-connection counters are plain attributes of the connection's
:class:`~netkit.io.servers.session_host.ConnRecord`. Backpressure: ``pause_writing`` pauses
reading from that client, ``resume_writing`` resumes it, so a client that sends but does not read
makes the server hold at most ``high_water`` bytes for it. ``--max-bytes`` closes the connection
(counted and logged by the server) before a byte over it is sent.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from netkit.core.serve_models import TcpMode, close_reason
from netkit.io.servers.session_host import ConnRecord

if TYPE_CHECKING:  # pragma: no cover
    from netkit.io.servers.tcp_server import TcpServer

SOURCE_CHUNK = bytes(range(256)) * 256  # 64 KiB pattern for --mode source
SOURCE_BURST = 16  # chunks written per loop turn before yielding (bounded loop)


class ModeProtocol(asyncio.Protocol):
    """Shared plumbing: backpressure, EOF, close bookkeeping, the max-bytes check."""

    def __init__(self, server: TcpServer, transport: asyncio.Transport, rec: ConnRecord) -> None:
        self.server = server
        self.transport = transport
        self.rec = rec
        self.limit = server.config.max_bytes

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # close once our writes are flushed

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.closed(self.transport, *close_reason(exc))

    def _over(self) -> None:
        self.server.hit_limit(self.rec, "max_bytes")
        self.transport.close()


class Echo(ModeProtocol):
    def data_received(self, data: bytes) -> None:
        n = len(data)
        rec = self.rec
        rec.bytes_in += n
        if self.limit is not None and rec.bytes_in + rec.bytes_out + n > self.limit:
            self._over()
            return
        self.transport.write(data)
        rec.bytes_out += n


class EchoUnlimited(ModeProtocol):
    """Echo without --max-bytes: the hottest path in netkit, kept to the bare minimum."""

    def __init__(self, server: TcpServer, transport: asyncio.Transport, rec: ConnRecord) -> None:
        super().__init__(server, transport, rec)
        self.write = transport.write

    def data_received(self, data: bytes) -> None:
        self.write(data)
        rec = self.rec
        n = len(data)
        rec.bytes_in += n
        rec.bytes_out += n


class Discard(ModeProtocol):
    def data_received(self, data: bytes) -> None:
        rec = self.rec
        rec.bytes_in += len(data)
        if self.limit is not None and rec.bytes_in + rec.bytes_out > self.limit:
            self._over()


class Reply(ModeProtocol):
    def data_received(self, data: bytes) -> None:
        rec = self.rec
        rec.bytes_in += len(data)
        reply = self.server.config.reply
        if self.limit is not None and rec.bytes_in + rec.bytes_out + len(reply) > self.limit:
            self._over()
            return
        self.transport.write(reply)
        rec.bytes_out += len(reply)


class Source(ModeProtocol):
    """Writes a pattern as fast as the client reads: produce until the buffer is full."""

    def __init__(self, server: TcpServer, transport: asyncio.Transport, rec: ConnRecord) -> None:
        super().__init__(server, transport, rec)
        self.paused = False
        self.scheduled = False

    def start(self) -> None:
        self._pump()

    def _pump(self) -> None:
        self.scheduled = False
        t = self.transport
        rec = self.rec
        for _ in range(SOURCE_BURST):
            if self.paused or t.is_closing() or self.server.stopping:
                return
            chunk = SOURCE_CHUNK
            if self.limit is not None:
                room = self.limit - rec.bytes_in - rec.bytes_out
                if room <= 0:
                    self._over()
                    return
                chunk = chunk[:room]
            t.write(chunk)
            rec.bytes_out += len(chunk)
        # The kernel took everything without filling our buffer: yield, then go on.
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if not self.scheduled:
            self._pump()

    def data_received(self, data: bytes) -> None:
        self.rec.bytes_in += len(data)  # read and drop what the client sends

    def eof_received(self) -> bool:
        # The client may half-close and keep reading; TLS has no half-close (asyncio would warn).
        return self.server.tls is None


MODE_PROTOCOLS: dict[TcpMode, type[ModeProtocol]] = {
    TcpMode.ECHO: Echo, TcpMode.DISCARD: Discard, TcpMode.REPLY: Reply, TcpMode.SOURCE: Source,
}
