"""The netkit probe packet: the wire format shared by ``measure latency/loss`` and the reflector.

Pure code: bytes in, a frozen :class:`ProbePacket` out, and back. No socket, no clock.

Layout (network byte order, 56 bytes of header, then padding up to the requested size)::

    offset size field
    0      4    magic            b"NKLP"
    4      1    version          1
    5      1    flags            bit 0 REFLECTED (set by netkit's reflector),
                                 bit 1 QUERY (a count query at the end of a run; not a probe)
    6      2    header_len       56 (lets a later version grow the header)
    8      8    session          random 64-bit id chosen by the client for one run
    16     8    seq              0, 1, 2, ... per session
    24     8    client_send_ns   the client's send time (its own clock; only the client reads it)
    32     8    refl_count       reflector: probes of this session received so far (incl. this one)
    40     8    refl_recv_ns     reflector: its receive time (its own clock)
    48     8    refl_send_ns     reflector: its send time (its own clock)
    56     ...  padding          zero bytes (any content is reflected unchanged)

The reflector never makes a reply larger than the request: it rewrites the fields in place.

Reuse (the UDP throughput stream carries the same header): :func:`encode_into` writes a header
into a preallocated buffer without allocating; :func:`peek_seq` reads just the session and
sequence of a datagram.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"NKLP"
VERSION = 1
FLAG_REFLECTED = 0x01
FLAG_QUERY = 0x02
_KNOWN_FLAGS = FLAG_REFLECTED | FLAG_QUERY

HEADER = struct.Struct("!4sBBHQQQQQQ")
HEADER_SIZE = HEADER.size  # 56
MAX_SIZE = 65507  # the largest UDP payload over IPv4
U64 = (1 << 64) - 1

# Offsets of the reflector's fields, for in-place rewriting.
_REFL = struct.Struct("!QQQ")
_REFL_OFFSET = 32
_SESSION_SEQ = struct.Struct("!QQ")


class PacketError(ValueError):
    """A datagram that is not a valid netkit probe; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ProbePacket:
    """One decoded probe packet. ``size`` is the whole datagram's length (header + padding)."""

    session: int
    seq: int
    client_send_ns: int
    flags: int = 0
    refl_count: int = 0
    refl_recv_ns: int = 0
    refl_send_ns: int = 0
    size: int = HEADER_SIZE

    @property
    def reflected(self) -> bool:
        """True when netkit's reflector filled the reflector fields."""
        return bool(self.flags & FLAG_REFLECTED)

    @property
    def query(self) -> bool:
        return bool(self.flags & FLAG_QUERY)

    @property
    def reflector_turnaround_ns(self) -> int | None:
        """Time the reflector held the packet (its send minus its receive), when reflected."""
        if not self.reflected:
            return None
        return self.refl_send_ns - self.refl_recv_ns


def encode(probe: ProbePacket) -> bytes:
    """The datagram for ``probe``: header, then zero padding up to ``probe.size`` bytes."""
    if not HEADER_SIZE <= probe.size <= MAX_SIZE:
        raise ValueError(f"probe size must be {HEADER_SIZE}..{MAX_SIZE} bytes, not {probe.size}")
    buf = bytearray(probe.size)
    encode_into(
        buf, probe.session, probe.seq, probe.client_send_ns, flags=probe.flags,
        refl_count=probe.refl_count, refl_recv_ns=probe.refl_recv_ns, refl_send_ns=probe.refl_send_ns,
    )
    return bytes(buf)


def encode_into(
    buf: bytearray | memoryview, session: int, seq: int, client_send_ns: int, *, flags: int = 0,
    refl_count: int = 0, refl_recv_ns: int = 0, refl_send_ns: int = 0,
) -> None:
    """Write a header at the start of ``buf`` (at least HEADER_SIZE bytes); padding untouched.

    The hot path of a paced sender: reuse one buffer and call this per packet.
    """
    try:
        HEADER.pack_into(buf, 0, MAGIC, VERSION, flags & 0xFF, HEADER_SIZE, session, seq, client_send_ns,
                         refl_count, refl_recv_ns, refl_send_ns)
    except struct.error as exc:  # a field outside 0..2**64-1, or a buffer too small
        raise ValueError(f"cannot encode probe: {exc}") from None


def looks_like_probe(data: bytes | bytearray | memoryview) -> bool:
    """Cheap test: does the datagram start with the magic? (Valid or not is :func:`decode`'s job.)"""
    return bytes(data[:4]) == MAGIC


def decode(data: bytes | bytearray | memoryview) -> ProbePacket:
    """Parse a datagram; raise :class:`PacketError` with a reason for anything malformed."""
    n = len(data)
    if n < 8:
        raise PacketError(f"too short ({n} bytes)")
    if bytes(data[:4]) != MAGIC:
        raise PacketError("not a netkit probe (bad magic)")
    version = data[4]
    if version != VERSION:
        raise PacketError(f"unsupported probe version {version}")
    if n < HEADER_SIZE:
        raise PacketError(f"truncated header ({n} of {HEADER_SIZE} bytes)")
    (_magic, _v, flags, header_len, session, seq, client_send_ns, refl_count, refl_recv_ns,
     refl_send_ns) = HEADER.unpack_from(data, 0)
    if header_len != HEADER_SIZE:
        raise PacketError(f"bad header length {header_len}")
    if flags & ~_KNOWN_FLAGS:
        raise PacketError(f"unknown flags 0x{flags:02x}")
    return ProbePacket(session, seq, client_send_ns, flags, refl_count, refl_recv_ns, refl_send_ns, n)


def try_decode(data: bytes | bytearray | memoryview) -> tuple[ProbePacket | None, str | None]:
    """``(probe, None)`` or ``(None, reason)``: for loops that must not raise."""
    try:
        return decode(data), None
    except PacketError as exc:
        return None, exc.reason


_HLEN = HEADER_SIZE.to_bytes(2, "big")


def peek_seq(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """``(session, seq)`` of a valid probe (same checks as :func:`decode`) without building a ProbePacket.

    The hot path of the reflector and of high-rate receivers; None for anything else.
    """
    if (len(data) < HEADER_SIZE or data[:4] != MAGIC or data[4] != VERSION or data[5] & ~_KNOWN_FLAGS
            or data[6:8] != _HLEN):
        return None
    return _SESSION_SEQ.unpack_from(data, 8)


def reflect_into(buf: bytearray, refl_count: int, refl_recv_ns: int, refl_send_ns: int) -> None:
    """Fill the reflector's fields and set REFLECTED in ``buf`` (a valid probe), in place."""
    buf[5] = (buf[5] | FLAG_REFLECTED) & 0xFF
    _REFL.pack_into(buf, _REFL_OFFSET, refl_count & U64, refl_recv_ns & U64, refl_send_ns & U64)



# ----- ICMP echo (``measure latency --method icmp``) -----------------------------------------------
ICMP_ECHO_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129


def icmp_checksum(data: bytes | bytearray) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_echo_request(ident: int, seq: int, payload: bytes | bytearray, *, v6: bool) -> bytearray:
    """An echo request with ``payload``. ICMPv4 carries its checksum; for ICMPv6 the kernel
    computes it (it covers a pseudo-header this code does not know), so it stays 0 here."""
    kind = ICMPV6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST
    msg = bytearray(ICMP_ECHO_HEADER.pack(kind, 0, 0, ident & 0xFFFF, seq & 0xFFFF))
    msg += payload
    if not v6:
        struct.pack_into("!H", msg, 2, icmp_checksum(msg))
    return msg


def parse_icmp_echo_reply(data: bytes | bytearray | memoryview, *, v6: bool) -> tuple[int, int] | None:
    """``(identifier, sequence)`` of an echo reply (ICMP header first); None for anything else."""
    if len(data) < ICMP_ECHO_HEADER.size:
        return None
    kind, _code, _checksum, ident, seq16 = ICMP_ECHO_HEADER.unpack_from(data)
    if kind != (ICMPV6_ECHO_REPLY if v6 else ICMP_ECHO_REPLY):
        return None
    return ident, seq16


def unwrap_seq16(seq16: int, sent: int) -> int:
    """The full sequence number of a reply that carries only its low 16 bits: the most recent
    of the ``sent`` probes (0..sent-1) with those bits. ``sent`` must be at least 1."""
    last = sent - 1
    return last - ((last - seq16) & 0xFFFF)
