"""Request/response sessions on ``netkit serve tcp`` (``measure requests --netkit-header``).

A client opens with the netkit session header of kind ``KIND_REQUESTS`` (see
:mod:`netkit.core.request_models`); the server answers with the usual 8-byte ack and then, for
every request frame ``body_len | reply_len | seq | body``, writes a reply frame
``body_len | seq | body`` with ``reply_len`` bytes of body. The client thus recognises each reply
by its header and may ask for any reply size, whatever the request size.

``netkit.io.tcp_sessions.open_session`` hands a connection here when ``wants(first_bytes)`` is
True (a one-line dispatch there; the throughput sessions are untouched).
"""

from __future__ import annotations

import asyncio
from typing import Any

from netkit.core import session_header as sh
from netkit.core.request_models import REP_HEADER, FramingError, RequestParser, is_requests_header, pattern
from netkit.core.serve_models import close_reason

REPLY_CACHE_MAX = 16 * 1024 * 1024


def wants(first_bytes: bytes) -> bool:
    """True when the session header asks for request/response (kind ``KIND_REQUESTS``)."""
    return bool(is_requests_header(first_bytes))


def open_session(transport: asyncio.BaseTransport, first_bytes: bytes, server: Any) -> asyncio.BaseProtocol:
    proto = RequestSession(transport, server)  # type: ignore[arg-type]
    transport.set_protocol(proto)
    proto.data_received(first_bytes)
    return proto


class RequestSession(asyncio.Protocol):
    """Answers header-framed requests in order; backpressure pauses reading."""

    def __init__(self, transport: asyncio.Transport, server: Any) -> None:
        self.transport = transport
        self.server = server
        self.head = bytearray()
        self.in_header = True
        self.parser = RequestParser()
        self.body = b""
        self.requests = 0

    def _body(self, n: int) -> bytes:
        if len(self.body) != n:
            self.body = pattern(n)
        return self.body

    def data_received(self, data: bytes) -> None:
        if not data:
            return
        t = self.transport
        if not self.server.add_bytes(t, bytes_in=len(data)):
            t.close()
            return
        if self.in_header:
            self.head += data
            if len(self.head) < sh.HEADER_LEN:
                return
            if not is_requests_header(bytes(self.head)):
                self.server.error("request session: bad session header")
                t.write(sh.encode_ack(sh.Ack(sh.STATUS_UNSUPPORTED)))
                t.close()
                return
            self.in_header = False
            t.write(sh.encode_ack(sh.Ack()))
            self.server.add_bytes(t, bytes_out=sh.ACK_LEN)
            data = bytes(self.head[sh.HEADER_LEN:])
            self.head = bytearray()
            if not data:
                return
        try:
            frames = self.parser.feed(data)
        except FramingError as exc:
            self.server.error(f"request session: {exc}")
            t.close()
            return
        out = 0
        for seq, _body_len, reply_len in frames:
            if reply_len > REPLY_CACHE_MAX:
                self.server.error("request session: reply too large")
                t.close()
                return
            t.writelines((REP_HEADER.pack(reply_len, seq), self._body(reply_len)))
            out += REP_HEADER.size + reply_len
        self.requests += len(frames)
        if out and not self.server.add_bytes(t, bytes_out=out):
            t.close()

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        rec = self.server.record(self.transport)
        self.server.emit("session", kind="requests", requests=self.requests,
                         **({"id": rec.id} if rec is not None else {}))
        # The server's own _lost would bypass a gate's ``closed`` (it frees the session slot).
        self.server.closed(self.transport, *close_reason(exc))
