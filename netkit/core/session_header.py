"""The netkit stream header: how a throughput client tells ``netkit serve tcp`` what it wants.

Pure wire format (no sockets, no clock). Three messages, all fixed-size and big-endian:

``Header`` (client -> server, first bytes of the connection, ``HEADER_LEN`` = 37 bytes)::

    magic "\\x00NKTS" (5) | version u8 | kind u8 | direction u8 | stream_id u16 | flags u16 |
    duration_ms u32 | omit_ms u32 | block_size u32 | cookie (12) | reserved u8

  ``kind`` picks the session: 1 throughput (this module's messages), 2 request/response
  (``measure requests``, framed by :mod:`netkit.core.request_framing`).

  The length is 37 on purpose: an ``iperf3 -s`` reads exactly 37 bytes as its cookie and answers
  with one state byte (PARAM_EXCHANGE), so a single probe tells a netkit server, an iperf3 server
  and a plain TCP service apart without a second connection.

``Ack`` (server -> client, ``ACK_LEN`` = 8 bytes): ``"\\x00NKTA" | version | status | reserved``.
  For ``direction == SOURCE`` the server then waits for one ``GO`` byte before it sends data, so
  every stream starts when the client starts its clock, not when it connected.

``Report`` (server -> client, ``REPORT_LEN`` = 40 bytes), sent once after the client half-closes:
  ``"\\x00NKTR" | version | pad(2) | bytes u64 | omitted_bytes u64 | elapsed_ns u64 |
  retransmits u32 | rtt_us u32``. In sink mode ``bytes`` is what the server *received*; in source
  mode what it *sent* (and the report is the last 40 bytes of the stream). ``0xFFFFFFFF`` in
  ``retransmits``/``rtt_us`` means "not known" (no TCP_INFO).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"\x00NKTS"
ACK_MAGIC = b"\x00NKTA"
REPORT_MAGIC = b"\x00NKTR"
VERSION = 1

KIND_THROUGHPUT = 1

SINK = 0  # the client sends, the server counts what arrives
SOURCE = 1  # the server sends (``--reverse``), the client counts what arrives
DIRECTIONS = {SINK: "sink", SOURCE: "source"}

GO = b"G"

STATUS_OK = 0
STATUS_UNSUPPORTED = 1
STATUS_REFUSED = 2  # over a server limit (--max-sessions)

UNKNOWN_U32 = 0xFFFFFFFF

_HEADER = struct.Struct("!5sBBBHHIII12sB")
_ACK = struct.Struct("!5sBBB")
_REPORT = struct.Struct("!5sB2xQQQII")

HEADER_LEN = _HEADER.size
ACK_LEN = _ACK.size
REPORT_LEN = _REPORT.size
COOKIE_LEN = 12

#: How many bytes :func:`sniff` needs at most to decide.
MAGIC_LEN = len(MAGIC)
#: Where the session kind sits in a header: after the magic and the version byte.
KIND_OFFSET = MAGIC_LEN + 1


def sniff(prefix: bytes) -> bool | None:
    """Do the first bytes of a connection open a netkit session?

    True when ``prefix`` begins with the session magic, False when it cannot, None when more bytes
    are needed to tell (a prefix of the magic). A plain client's bytes are never consumed by this.
    """
    n = min(len(prefix), MAGIC_LEN)
    if prefix[:n] != MAGIC[:n]:
        return False
    return True if n == MAGIC_LEN else None


def session_kind(head: bytes | bytearray) -> int | None:
    """The kind byte of a header that begins ``head``; None until that byte has arrived."""
    return head[KIND_OFFSET] if len(head) > KIND_OFFSET else None

assert HEADER_LEN == 37, HEADER_LEN  # iperf3's COOKIE_SIZE, see the module docstring
assert REPORT_LEN == 40, REPORT_LEN


class HeaderError(ValueError):
    """Bytes that are not a valid netkit header, ack or report."""


@dataclass(frozen=True, slots=True)
class Header:
    """What the client asks of one stream."""

    direction: int = SINK
    stream_id: int = 0
    duration_ms: int = 10_000  # the server's own bound; the client ends the stream itself
    omit_ms: int = 0  # bytes in the first omit_ms are reported apart (``omitted_bytes``)
    block_size: int = 128 * 1024  # the server's write size in source mode
    cookie: bytes = b"\x00" * COOKIE_LEN
    flags: int = 0
    kind: int = KIND_THROUGHPUT
    version: int = VERSION


@dataclass(frozen=True, slots=True)
class Ack:
    status: int = STATUS_OK
    version: int = VERSION

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


@dataclass(frozen=True, slots=True)
class Report:
    """The server's own count for one stream."""

    bytes: int
    omitted_bytes: int = 0
    elapsed_ns: int = 0  # from the end of the omit period to the end of the stream
    retransmits: int | None = None
    rtt_us: int | None = None
    version: int = VERSION


def _u32_or_none(v: int) -> int | None:
    return None if v == UNKNOWN_U32 else v


def _none_to_u32(v: int | None) -> int:
    if v is None:
        return UNKNOWN_U32
    return max(0, min(int(v), UNKNOWN_U32 - 1))


def encode_header(h: Header) -> bytes:
    if h.direction not in DIRECTIONS:
        raise HeaderError(f"bad direction {h.direction}")
    cookie = h.cookie[:COOKIE_LEN].ljust(COOKIE_LEN, b"\x00")
    return _HEADER.pack(MAGIC, h.version, h.kind, h.direction, h.stream_id & 0xFFFF, h.flags & 0xFFFF,
                        h.duration_ms, h.omit_ms, h.block_size, cookie, 0)


def decode_header(data: bytes) -> Header:
    """Parse the first ``HEADER_LEN`` bytes of ``data``; raise ``HeaderError`` when invalid."""
    if len(data) < HEADER_LEN:
        raise HeaderError(f"short header: {len(data)} of {HEADER_LEN} bytes")
    magic, version, kind, direction, sid, flags, dur, omit, block, cookie, _ = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise HeaderError("bad magic")
    if version != VERSION:
        raise HeaderError(f"unsupported version {version}")
    if kind != KIND_THROUGHPUT:
        raise HeaderError(f"unsupported session kind {kind}")
    if direction not in DIRECTIONS:
        raise HeaderError(f"bad direction {direction}")
    if block == 0:
        raise HeaderError("block size 0")
    return Header(direction, sid, dur, omit, block, cookie, flags, kind, version)


def encode_ack(a: Ack) -> bytes:
    return _ACK.pack(ACK_MAGIC, a.version, a.status, 0)


def decode_ack(data: bytes) -> Ack | None:
    """The ack, or None when ``data`` is not one (the peer is not a netkit server)."""
    if len(data) < ACK_LEN:
        return None
    magic, version, status, _ = _ACK.unpack_from(data)
    if magic != ACK_MAGIC:
        return None
    return Ack(status, version)


def encode_report(r: Report) -> bytes:
    return _REPORT.pack(REPORT_MAGIC, r.version, r.bytes, r.omitted_bytes, r.elapsed_ns,
                        _none_to_u32(r.retransmits), _none_to_u32(r.rtt_us))


def decode_report(data: bytes) -> Report:
    """Parse a report from exactly its ``REPORT_LEN`` bytes; raise ``HeaderError`` when invalid."""
    if len(data) != REPORT_LEN:
        raise HeaderError(f"report of {len(data)} bytes, expected {REPORT_LEN}")
    magic, version, nbytes, omitted, elapsed, retrans, rtt = _REPORT.unpack(data)
    if magic != REPORT_MAGIC:
        raise HeaderError("bad report magic")
    return Report(nbytes, omitted, elapsed, _u32_or_none(retrans), _u32_or_none(rtt), version)
