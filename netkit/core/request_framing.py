"""Reply framing for ``netkit measure requests`` and its server side (pure: bytes in, replies out).

No sockets, no clock reads. A framer turns the bytes a connection receives into whole replies, so
the same code serves the load generator, the pool's generic ``request()``, the server's request
session and the tests (which feed them bytes split at every position).

Three ways to recognise a reply (:class:`FramingKind`):

- ``length``: every reply is exactly ``reply_size`` bytes (echo services: the request size).
- ``delimiter``: a reply ends with ``delimiter`` (line-based services: ``\\n``, ``\\r\\n``).
- ``header``: against ``netkit serve tcp``: the connection opens with the netkit session header
  (kind ``KIND_REQUESTS``) and every request/reply carries a small frame header of its own::

      request: body_len u32 | reply_len u32 | seq u32 | body          (REQ_HEADER_LEN = 12)
      reply:   body_len u32 | seq u32 | body (reply_len bytes)         (REP_HEADER_LEN = 8)

  so the server can answer with any reply size and the client checks that replies come back in
  order (``seq``).
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from typing import TYPE_CHECKING

from netkit.core import session_header as sh

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.keyed import Key


class FramingKind(str, enum.Enum):
    """How a reply is recognised; the value is what results publish as ``framing``."""

    LENGTH = "length"
    DELIMITER = "delimiter"
    HEADER = "header"

    def __str__(self) -> str:
        return self.value


#: Session kind for request/response on ``netkit serve tcp`` (throughput is kind 1).
KIND_REQUESTS = 2
REQ_HEADER = struct.Struct("!III")
REP_HEADER = struct.Struct("!II")
REQ_HEADER_LEN = REQ_HEADER.size
REP_HEADER_LEN = REP_HEADER.size
#: The largest body a header-framed request or reply may carry (a bound for the server).
MAX_FRAME_BODY = 16 * 1024 * 1024
#: A delimiter-framed reply longer than this is a framing error (bounds the buffer).
MAX_DELIMITED_REPLY = 1024 * 1024


class FramingError(ValueError):
    """The peer sent bytes that are not a valid reply for the chosen framing."""


# ----- framers ---------------------------------------------------------------------------------

class LengthFramer:
    """Replies of exactly ``size`` bytes."""

    __slots__ = ("buf", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("reply size must be at least 1 byte")
        self.size = size
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Whole replies completed by ``data`` (bytes past the last whole reply are kept)."""
        self.buf += data
        n = len(self.buf) // self.size
        if n == 0:
            return []
        cut = n * self.size
        replies = [bytes(self.buf[i : i + self.size]) for i in range(0, cut, self.size)]
        del self.buf[:cut]
        return replies

    @property
    def pending(self) -> int:
        return len(self.buf)


class DelimiterFramer:
    """Replies that end with ``delimiter`` (the delimiter is part of the reply returned)."""

    __slots__ = ("buf", "delimiter", "max_len")

    def __init__(self, delimiter: bytes, max_len: int = MAX_DELIMITED_REPLY) -> None:
        if not delimiter:
            raise ValueError("empty delimiter")
        self.delimiter = delimiter
        self.max_len = max_len
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        replies: list[bytes] = []
        d = self.delimiter
        start = 0
        while True:
            i = self.buf.find(d, start)
            if i < 0:
                break
            end = i + len(d)
            replies.append(bytes(self.buf[start:end]))
            start = end
        if start:
            del self.buf[:start]
        if len(self.buf) > self.max_len:
            raise FramingError(f"no delimiter within {self.max_len} bytes")
        return replies

    @property
    def pending(self) -> int:
        return len(self.buf)


class HeaderFramer:
    """Replies framed by the netkit reply header; checks that ``seq`` arrives in order.

    ``ack=True``: the stream starts with the server's session ack (``serve tcp`` answers the
    session header with it); it is checked and skipped before the first reply.
    """

    __slots__ = ("ack", "buf", "next_seq")

    def __init__(self, first_seq: int = 0, *, ack: bool = False) -> None:
        self.buf = bytearray()
        self.next_seq = first_seq
        self.ack = ack

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        replies: list[bytes] = []
        pos = 0
        buf = self.buf
        if self.ack:
            if len(buf) < sh.ACK_LEN:
                return replies
            ack = sh.decode_ack(bytes(buf[: sh.ACK_LEN]))
            if ack is None:
                raise FramingError("the server did not answer the netkit session header (not netkit serve tcp?)")
            if not ack.ok:
                raise FramingError("the server does not support request sessions (netkit serve tcp too old?)")
            self.ack = False
            pos = sh.ACK_LEN
        while len(buf) - pos >= REP_HEADER_LEN:
            body_len, seq = REP_HEADER.unpack_from(buf, pos)
            if body_len > MAX_FRAME_BODY:
                raise FramingError(f"reply body of {body_len} bytes is over the {MAX_FRAME_BODY} limit")
            end = pos + REP_HEADER_LEN + body_len
            if len(buf) < end:
                break
            if seq != self.next_seq:
                raise FramingError(f"reply seq {seq}, expected {self.next_seq}")
            self.next_seq = (self.next_seq + 1) & 0xFFFFFFFF
            replies.append(bytes(buf[pos + REP_HEADER_LEN : end]))
            pos = end
        if pos:
            del buf[:pos]
        return replies

    @property
    def pending(self) -> int:
        return len(self.buf)


Framer = LengthFramer | DelimiterFramer | HeaderFramer


def session_preamble(key: Key | None = None, *, now_ms: int = 0, nonce: bytes = b"") -> bytes:
    """The netkit session header a header-framed client sends first (kind ``KIND_REQUESTS``).

    With a measurement ``key`` (a keyed ``netkit serve tcp`` accepts nothing else) the header
    carries ``FLAG_KEYED`` and the 32-byte trailer (time, nonce, HMAC tag); ``now_ms`` and ``nonce``
    must be fresh for every connection, since a keyed server rejects a replayed header.
    """
    header = sh.Header(kind=KIND_REQUESTS, direction=sh.SINK, duration_ms=0, block_size=1)
    if key is None:
        return sh.encode_header(header)
    from netkit.core import keyed

    raw = sh.encode_header(dataclasses.replace(header, flags=header.flags | keyed.FLAG_KEYED))
    return raw + keyed.encode_header_trailer(key, raw, now_ms, nonce)


def is_requests_header(data: bytes) -> bool | None:
    """True when ``data`` starts with a netkit session header of kind requests; None: too short."""
    if len(data) < 7:
        return None
    return data[:5] == sh.MAGIC and data[5] == sh.VERSION and data[6] == KIND_REQUESTS


def encode_request(seq: int, body: bytes, reply_len: int) -> bytes:
    return REQ_HEADER.pack(len(body), reply_len, seq & 0xFFFFFFFF) + body


def encode_reply(seq: int, body: bytes) -> bytes:
    return REP_HEADER.pack(len(body), seq & 0xFFFFFFFF) + body


class RequestParser:
    """Server side of header framing: bytes in, ``(seq, body_len, reply_len)`` out."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, int]]:
        self.buf += data
        out: list[tuple[int, int, int]] = []
        pos = 0
        buf = self.buf
        while len(buf) - pos >= REQ_HEADER_LEN:
            body_len, reply_len, seq = REQ_HEADER.unpack_from(buf, pos)
            if body_len > MAX_FRAME_BODY or reply_len > MAX_FRAME_BODY:
                raise FramingError("request frame over the size limit")
            end = pos + REQ_HEADER_LEN + body_len
            if len(buf) < end:
                break
            out.append((seq, body_len, reply_len))
            pos = end
        if pos:
            del buf[:pos]
        return out



def pattern(n: int) -> bytes:
    """``n`` printable bytes (never starting with NUL, so ``serve tcp`` sees a plain client at once)."""
    base = b"netkit-requests-0123456789abcdefghijklmnopqrstuvwxyz"
    return (base * (n // len(base) + 1))[:n]
