"""Request/response sessions on ``netkit serve tcp`` (``measure requests --netkit-header``).

A client opens with the netkit session header of kind ``KIND_REQUESTS`` (see
:mod:`netkit.core.request_framing`); the server answers with the usual 8-byte ack and then, for
every request frame ``body_len | reply_len | seq | body``, writes a reply frame
``body_len | seq | body`` with ``reply_len`` bytes of body. The client thus recognises each reply
by its header and may ask for any reply size up to the server's ``--max-request``.

What a client can make the session spend is the server's choice, never the client's:

- Input: request bodies are skipped, not buffered (:class:`netkit.core.limits.RequestFrameReader`);
  a frame announcing a body or a reply over ``--max-request`` closes the session. At most
  ``MAX_PENDING`` parsed requests wait for their reply; beyond that reading pauses.
- Output: replies are generated piece by piece, only while the connection's write buffer is under
  its high-water mark, so a client that does not read costs at most that buffer. Each piece is
  cut to what ``--max-bytes`` still allows (checked before the bytes exist, so the session ends
  with exactly ``--max-bytes`` in + out), and a reply starts only when it fits the amplification
  bound ``out <= REQUEST_AMPLIFICATION x in + --max-request + 16``.
- Accounting: bytes out are counted when the kernel has taken them (queued minus what still
  waits in the write buffer), so ``--idle-timeout`` sees a client that stopped reading.

``netkit.io.servers.tcp_sessions.start_session`` hands a connection here when ``wants(first_bytes)`` is
True; the session talks to the server through :class:`netkit.io.servers.session_host.SessionHost`.
"""

from __future__ import annotations

import asyncio
from collections import deque

from netkit.core import session_header as sh
from netkit.core.limits import FrameTooLarge, RequestFrameReader
from netkit.core.request_framing import REP_HEADER, is_requests_header, pattern
from netkit.core.serve_models import close_reason, output_room, reply_credit
from netkit.io.servers.session_host import SessionHost

#: Parsed requests waiting for their reply; beyond this the session stops reading.
MAX_PENDING = 64
#: Largest single write of a reply body (a reply is written in pieces of at most this).
PIECE = 64 * 1024
_SAMPLE = pattern(4096)
#: The pattern's period: a body's bytes from offset i are the pattern's bytes from i mod period.
_PERIOD = next(p for p in range(1, 2048) if _SAMPLE[p:] == _SAMPLE[:-p])
#: Reply bodies are slices of one shared pattern, whatever their size: no allocation per reply.
_PATTERN = pattern(PIECE + _PERIOD)


def wants(first_bytes: bytes) -> bool:
    """True when the session header asks for request/response (kind ``KIND_REQUESTS``)."""
    return bool(is_requests_header(first_bytes))


def open_session(transport: asyncio.Transport, first_bytes: bytes, server: SessionHost) -> asyncio.BaseProtocol:
    proto = RequestSession(transport, server)
    transport.set_protocol(proto)
    proto.data_received(first_bytes)
    return proto


class RequestSession(asyncio.Protocol):
    """Answers header-framed requests in order, within the connection's budget (module docstring)."""

    def __init__(self, transport: asyncio.Transport, server: SessionHost) -> None:
        self.transport = transport
        self.server = server
        config = server.config
        self.max_request = config.max_request
        self.max_bytes: int | None = config.max_bytes
        self.high_water = config.high_water
        self.head = bytearray()
        self.in_header = True
        self.reader = RequestFrameReader(self.max_request)
        self.pending: deque[tuple[int, int]] = deque()
        self.rest = b""  # input not yet parsed (at most one read) while MAX_PENDING replies wait
        self.reply_head = b""  # the current reply: header bytes not yet written ...
        self.reply_left = 0  # ... and body bytes not yet written
        self.body_pos = 0
        self.bytes_in = 0
        self.queued = 0  # bytes handed to the transport
        self.counted = 0  # bytes reported to the server as sent (taken by the kernel)
        self.out_full = False
        self.reading = True
        self.ended = False
        self.requests = 0

    # ----- input ----------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if not data or self.ended:
            return
        t = self.transport
        self.bytes_in += len(data)
        if not self.server.add_bytes(t, bytes_in=len(data)):
            self._end()
            return
        if self.in_header:
            self.head += data
            if len(self.head) < sh.HEADER_LEN:
                return
            if not is_requests_header(bytes(self.head)):
                self.server.error("request session: bad session header")
                t.write(sh.encode_ack(sh.Ack(sh.STATUS_UNSUPPORTED)))
                self._end()
                return
            self.in_header = False
            self.reply_head = sh.encode_ack(sh.Ack())  # the ack is the first bytes out
            data = bytes(self.head[sh.HEADER_LEN:])
            self.head = bytearray()
        self.rest = self.rest + data if self.rest else data
        self._parse()
        self._produce()

    def _parse(self) -> None:
        room = MAX_PENDING - len(self.pending)
        if room <= 0 or not self.rest:
            self._flow()
            return
        try:
            frames, used = self.reader.feed(self.rest, room)
        except FrameTooLarge:
            # A limit the client ran into, like --max-bytes: the ``limit`` event names it and
            # ``limits_hit`` counts it; it is not the server's error.
            self._limit("max_request")
            return
        self.rest = self.rest[used:]
        self.pending.extend(frames)
        self.requests += len(frames)
        self._flow()

    def _flow(self) -> None:
        """Read only while replies can be queued: pending requests and the write buffer bounded."""
        want = not self.out_full and len(self.pending) < MAX_PENDING and not self.rest
        t = self.transport
        if want != self.reading and not t.is_closing():
            self.reading = want
            if want:
                t.resume_reading()
            else:
                t.pause_reading()

    # ----- output -----------------------------------------------------------------------------------
    def _produce(self) -> None:
        t = self.transport
        while not self.ended and not t.is_closing():
            buffered = t.get_write_buffer_size()
            if buffered >= self.high_water:
                break  # pause_writing has been (or will be) called; resume_writing goes on
            if not self.reply_head and not self.reply_left:
                if not self.pending:
                    if self.rest:
                        self._parse()
                        if self.pending:
                            continue
                    break
                seq, size = self.pending.popleft()
                whole = REP_HEADER.size + size
                if whole > reply_credit(self.bytes_in, self.queued, self.max_request):
                    self._limit("amplification")
                    return
                self.reply_head, self.reply_left, self.body_pos = REP_HEADER.pack(size, seq), size, 0
            room = output_room(self.max_bytes, self.bytes_in, self.queued)
            if room is not None and room <= 0:
                self._limit("max_bytes")
                return
            if self.reply_head:
                piece: bytes | memoryview = self.reply_head
                if room is not None and room < len(piece):
                    piece = piece[:room]
                self.reply_head = self.reply_head[len(piece):]
            else:
                n = min(self.reply_left, PIECE, self.high_water - buffered)
                if room is not None:
                    n = min(n, room)
                start = self.body_pos % _PERIOD
                piece = memoryview(_PATTERN)[start:start + n]
                self.reply_left -= n
                self.body_pos += n
            t.write(piece)
            self.queued += len(piece)
        self._count_sent()
        self._flow()

    def _count_sent(self) -> None:
        """Report the bytes the kernel has taken since last time (queued minus still buffered)."""
        t = self.transport
        sent = self.queued - t.get_write_buffer_size()
        if sent > self.counted:
            self.server.add_bytes(t, bytes_out=sent - self.counted)
            self.counted = sent

    def _limit(self, which: str) -> None:
        rec = self.server.record(self.transport)
        if rec is not None and rec.reason is None:
            self.server.hit_limit(rec, which)
        self._end()

    def _end(self) -> None:
        self.ended = True
        self.pending.clear()
        self.rest = b""
        self.transport.close()  # what is queued is flushed, then the connection closes

    # ----- flow control -----------------------------------------------------------------------------
    def pause_writing(self) -> None:
        self.out_full = True
        self._flow()

    def resume_writing(self) -> None:
        self.out_full = False
        self._produce()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        if exc is None and self.queued > self.counted:  # flushed by the close
            self.server.add_bytes(self.transport, bytes_out=self.queued - self.counted)
            self.counted = self.queued
        rec = self.server.record(self.transport)
        self.server.emit("session", kind="requests", requests=self.requests,
                         **({"id": rec.id} if rec is not None else {}))
        # The server's own _lost would bypass a gate's ``closed`` (it frees the session slot).
        self.server.closed(self.transport, *close_reason(exc))
