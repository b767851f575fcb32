"""Measurement sessions on ``netkit serve tcp``, entered by the netkit stream header.

The server (``netkit.io.tcp_server``) calls ``sniff(prefix)`` on the first bytes of every
connection; on True it calls ``open_session(transport, first_bytes, server)`` and stops touching
the transport. The wire format lives in :mod:`netkit.core.session_header`.

- ``sniff(prefix: bytes) -> bool | None``: True when ``prefix`` begins with the session magic,
  False when it cannot, None when more bytes are needed to tell.
- ``MAGIC_LEN``: how many bytes ``sniff`` needs at most to decide.
- ``open_session(...)``: installs the session protocol (``transport.set_protocol``), feeds it
  ``first_bytes`` and returns it. The header's kind byte picks the session: throughput here,
  request/response (``measure requests``) in :mod:`netkit.io.request_session`, handed over as soon
  as the kind byte has arrived.

Throughput session, sink (the client sends): an ``asyncio.BufferedProtocol`` reads straight into
one preallocated buffer (no bytes object per read; uvloop supports it) and counts. When the
client half-closes, the server answers with a :class:`~netkit.core.session_header.Report` of what
*it* received, so the client reports bytes that arrived rather than bytes queued.

Throughput session, source (``--reverse``): after the client's GO byte the server writes one
preallocated block again and again, paced by transport flow control (``pause_writing`` /
``resume_writing``) and a bounded burst per loop turn; the client's half-close stops it and the
last ``REPORT_LEN`` bytes of the stream are the report (what the server sent, its retransmits and
smoothed RTT from TCP_INFO).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

from netkit.core import session_header as sh
from netkit.core.throughput_models import parse_tcp_info

MAGIC = sh.MAGIC
MAGIC_LEN = len(MAGIC)

RECV_BUF = 1024 * 1024  # large reads: fewer loop turns per GB, and iperf3 -l 1M clients write 1 MiB at a time
SOURCE_BURST = 32  # writes per loop turn when the kernel keeps accepting (bounded loop)
GO_WAIT_S = 30.0  # a source stream whose client never says GO is closed after this
WRITE_HIGH_WATER = 1024 * 1024
_KIND_OFFSET = len(sh.MAGIC) + 1  # magic, version, then the session kind


def sniff(prefix: bytes) -> bool | None:
    n = min(len(prefix), MAGIC_LEN)
    if prefix[:n] != MAGIC[:n]:
        return False
    return True if n == MAGIC_LEN else None


def open_session(transport: asyncio.BaseTransport, first_bytes: bytes, server: Any) -> asyncio.BaseProtocol:
    """Take over ``transport`` (see module docstring); ``server`` is netkit's TcpServer."""
    # Dispatch added for issue 9 (measure requests --netkit-header): session kind 2 is
    # request/response, served by netkit.io.request_session; every other kind is throughput.
    from netkit.io import request_session

    if request_session.wants(first_bytes):
        return request_session.open_session(transport, first_bytes, server)
    proto = ThroughputSession(transport, server)  # type: ignore[arg-type]
    transport.set_protocol(proto)
    proto.feed(first_bytes)
    return proto


def _tcp_info(transport: asyncio.BaseTransport) -> tuple[int | None, int | None]:
    sock = transport.get_extra_info("socket")
    opt = getattr(socket, "TCP_INFO", None)
    if sock is None or opt is None:
        return None, None
    try:
        info = parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, opt, 256))
    except (OSError, AttributeError, TypeError):
        return None, None
    if info is None:
        return None, None
    return info.retransmits, info.rtt_us


class ThroughputSession(asyncio.BufferedProtocol):
    """One stream of ``measure throughput``: header, then sink or source, then the report."""

    def __init__(self, transport: asyncio.Transport, server: Any) -> None:
        self.transport = transport
        self.server = server
        self.state = "header"  # header -> sink | wait-go -> source -> done
        self.head = bytearray()
        self.header: sh.Header | None = None
        self._buf = bytearray(RECV_BUF)
        self._view = memoryview(self._buf)
        self.count = 0  # bytes received (sink) or sent (source)
        self.omitted = 0
        self.omit_ns = 0
        self.t0 = 0  # first data byte (sink) / GO (source)
        self.paused = False
        self.scheduled = False
        self.chunk = b""
        self.timer: asyncio.TimerHandle | None = None
        self.omit_timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    # ----- asyncio plumbing ---------------------------------------------------------------------
    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self.state == "sink":  # the hot path: count and go
            if self.t0 == 0:
                self._first_data()
            self.count += nbytes
            if not self.server.add_bytes(self.transport, bytes_in=nbytes):
                self._abort_session()
            return
        self.feed(bytes(self._view[:nbytes]))

    def eof_received(self) -> bool:
        if self.state == "sink":
            self._finish_sink()
            return True  # we close after the report is written
        if self.state in ("source", "wait-go"):
            self._finish_source()
            return True
        self._close()  # EOF before a whole header
        return True

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.state == "source" and not self.scheduled:
            self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = "done"
        self._cancel_timers()
        if exc is None:
            self.server.closed(self.transport, "eof")
        elif isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            self.server.closed(self.transport, "reset")
        else:
            self.server.closed(self.transport, "error", error=f"{type(exc).__name__}: {exc}")

    # ----- state machine --------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes outside the sink hot path: the header, the GO byte, stray client bytes."""
        if not data:
            return
        if self.state == "header":
            self.head += data
            if len(self.head) > _KIND_OFFSET and self.head[_KIND_OFFSET] != sh.KIND_THROUGHPUT:
                self._other_kind()
                return
            if len(self.head) < sh.HEADER_LEN:
                return
            self.server.add_bytes(self.transport, bytes_in=len(self.head))
            rest = bytes(self.head[sh.HEADER_LEN:])
            try:
                self.header = sh.decode_header(bytes(self.head[: sh.HEADER_LEN]))
            except sh.HeaderError as exc:
                self.server.error(f"bad session header: {exc}")
                self.transport.write(sh.encode_ack(sh.Ack(sh.STATUS_UNSUPPORTED)))
                self._close()
                return
            self.omit_ns = self.header.omit_ms * 1_000_000
            self.transport.write(sh.encode_ack(sh.Ack()))
            self.server.add_bytes(self.transport, bytes_out=sh.ACK_LEN)
            bound = self.header.duration_ms / 1000 + (GO_WAIT_S if self.header.direction == sh.SOURCE else 0)
            self.timer = self.loop.call_later(bound, self._deadline)
            if self.header.direction == sh.SINK:
                self.state = "sink"
                if rest:
                    self._first_data()
                    self.count += len(rest)
                    self.server.add_bytes(self.transport, bytes_in=len(rest))
            else:
                self.state = "wait-go"
                self.transport.set_write_buffer_limits(high=max(WRITE_HIGH_WATER, 4 * self.header.block_size))
                self.feed_go(rest)
            return
        if self.state == "wait-go":
            self.server.add_bytes(self.transport, bytes_in=len(data))
            self.feed_go(data)
            return
        # source or done: the client should be silent; count and drop
        self.server.add_bytes(self.transport, bytes_in=len(data))

    def _other_kind(self) -> None:
        """Another session kind (``measure requests``): hand the connection and its bytes over."""
        self.state = "done"
        head = bytes(self.head)
        self.head = bytearray()
        try:
            from netkit.io import request_session
        except ImportError:  # pragma: no cover - part of the package
            request_session = None  # type: ignore[assignment]
        if request_session is not None and request_session.wants(head):
            request_session.open_session(self.transport, head, self.server)  # counts the bytes itself
            return
        self.server.add_bytes(self.transport, bytes_in=len(head))
        self.server.error(f"unsupported session kind {head[_KIND_OFFSET]}")
        self.transport.write(sh.encode_ack(sh.Ack(sh.STATUS_UNSUPPORTED)))
        self.transport.close()

    def feed_go(self, data: bytes) -> None:
        if not data:
            return
        assert self.header is not None
        if data[:1] != sh.GO:
            self.server.error("throughput session: expected GO from the client")
            self._close()
            return
        block = max(1, min(self.header.block_size, 16 * 1024 * 1024))
        self.chunk = os.urandom(min(block, 4096)) * (block // 4096 + 1)
        self.chunk = self.chunk[:block]
        self.state = "source"
        self._first_data()
        self._pump()

    def _first_data(self) -> None:
        self.t0 = time.perf_counter_ns()
        if self.omit_ns:
            self.omit_timer = self.loop.call_later(self.omit_ns / 1e9, self._omit_end)

    def _omit_end(self) -> None:
        self.omit_timer = None
        self.omitted = self.count

    def _pump(self) -> None:
        self.scheduled = False
        t = self.transport
        chunk = self.chunk
        n = len(chunk)
        for _ in range(SOURCE_BURST):
            if self.paused or self.state != "source" or t.is_closing() or self.server.stopping:
                return
            t.write(chunk)
            self.count += n
            if not self.server.add_bytes(t, bytes_out=n):
                self._abort_session()
                return
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._pump)

    def _report(self) -> bytes:
        elapsed = time.perf_counter_ns() - self.t0 if self.t0 else 0
        if self.omit_ns:
            elapsed = max(0, elapsed - self.omit_ns)
        retrans, rtt = _tcp_info(self.transport)
        if self.state == "sink":
            retrans, rtt = None, None  # a receiver's TCP_INFO says nothing about the sender's path
        return sh.encode_report(sh.Report(self.count, self.omitted, elapsed, retrans, rtt))

    def _finish_sink(self) -> None:
        if self.omit_ns and self.omit_timer is not None:  # stream shorter than the omit period
            self.omitted = self.count
        data = self._report()
        self._end(data)

    def _finish_source(self) -> None:
        if self.omit_ns and self.omit_timer is not None:
            self.omitted = self.count
        data = self._report()
        self._end(data)

    def _end(self, report: bytes) -> None:
        assert self.header is not None
        self.server.emit(
            "session", kind="throughput", direction=sh.DIRECTIONS[self.header.direction],
            stream=self.header.stream_id, bytes=self.count,
            **({"id": rec.id} if (rec := self.server.record(self.transport)) is not None else {}),
        )
        self.state = "done"
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.write(report)
            self.server.add_bytes(self.transport, bytes_out=len(report))
            self.transport.close()

    def _deadline(self) -> None:
        """The client never ended the stream: end it ourselves (a bound, not the normal path)."""
        self.timer = None
        if self.state == "source":
            self._finish_source()
        elif self.state == "sink":
            self._finish_sink()
        else:
            self._close()

    def _cancel_timers(self) -> None:
        for t in (self.timer, self.omit_timer):
            if t is not None:
                t.cancel()
        self.timer = self.omit_timer = None

    def _abort_session(self) -> None:
        self.state = "done"
        self._cancel_timers()
        self.transport.close()

    def _close(self) -> None:
        self.state = "done"
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.close()
