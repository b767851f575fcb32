"""ICMP errors as a tracer reads them: what an error says about a probe, and raw ICMP packets. Pure.

Unprivileged (``IP_RECVERR`` / ``IPV6_RECVERR`` on a UDP, ICMP datagram or connecting TCP socket)
the kernel matches an ICMP error to the socket by the packet it quotes and queues it; its record
(``netkit.core.errqueue.ExtendedError``) carries the ICMP type and code, the MTU for "fragmentation
needed", and the offender's address, and the datagram read with it is the quoted probe's payload.
:func:`classify` says what that means for the probe. As root where ICMP datagram sockets are not
allowed, a raw ICMP socket gets whole ICMP messages, whose quoted IP and transport headers are
parsed here. The probe payload (:func:`encode_payload`) lets an answer name its probe exactly.

The Linux ABI constants are spelled out (this module imports no socket code).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from netkit.core.errqueue import SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6, SO_EE_ORIGIN_LOCAL, ExtendedError
from netkit.core.trace_models import Answer

ORIGIN_LOCAL, ORIGIN_ICMP, ORIGIN_ICMP6 = SO_EE_ORIGIN_LOCAL, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6
EMSGSIZE = 90

ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, ICMP_ECHOREPLY = 3, 11, 0
ICMP_PORT_UNREACH, ICMP_FRAG_NEEDED = 3, 4
#: Time Exceeded code 0 is a TTL (hop limit) running out on the way; code 1 is the destination's
#: fragment reassembly timing out, which says nothing about a hop.
ICMP_EXC_TTL = 0
ICMP6_DST_UNREACH, ICMP6_PACKET_TOO_BIG, ICMP6_TIME_EXCEEDED, ICMP6_ECHO_REPLY = 1, 2, 3, 129
ICMP6_PORT_UNREACH = 4


def classify(record: ExtendedError) -> Answer | None:
    """What an error-queue record says about its probe (None: not an answer, e.g. a timestamp)."""
    if record.origin == ORIGIN_ICMP:
        if record.type == ICMP_TIME_EXCEEDED:
            return Answer.TIME_EXCEEDED if record.code == ICMP_EXC_TTL else None
        if record.type == ICMP_DEST_UNREACH:
            if record.code == ICMP_PORT_UNREACH:
                return Answer.DESTINATION
            if record.code == ICMP_FRAG_NEEDED:
                return Answer.FRAG_NEEDED
            return Answer.UNREACHABLE
        return None
    if record.origin == ORIGIN_ICMP6:
        if record.type == ICMP6_TIME_EXCEEDED:
            return Answer.TIME_EXCEEDED if record.code == ICMP_EXC_TTL else None
        if record.type == ICMP6_PACKET_TOO_BIG:
            return Answer.FRAG_NEEDED
        if record.type == ICMP6_DST_UNREACH:
            return Answer.DESTINATION if record.code == ICMP6_PORT_UNREACH else Answer.UNREACHABLE
        return None
    if record.origin == ORIGIN_LOCAL and record.errno == EMSGSIZE:
        return Answer.FRAG_NEEDED  # our own interface's MTU is smaller than the probe
    return None


# ----- the probe's payload: how an answer that quotes it is matched --------------------------------
PAYLOAD_MAGIC = b"NKTR"
PAYLOAD = struct.Struct("!4sII")  # magic, session, seq
PAYLOAD_SIZE = PAYLOAD.size  # 12


def encode_payload(session: int, seq: int, size: int) -> bytes:
    """A probe payload of ``size`` bytes (at least PAYLOAD_SIZE): magic, session, sequence, zeros."""
    head = PAYLOAD.pack(PAYLOAD_MAGIC, session & 0xFFFFFFFF, seq & 0xFFFFFFFF)
    return head + bytes(max(0, size - len(head)))


def decode_payload(data: bytes, session: int) -> tuple[bool, int | None]:
    """``(consistent, seq)``: the sequence a quoted payload names. A payload too short to tell is
    consistent with any probe (routers may quote only the transport header: seq None); one that is
    long enough but not ours (other magic or session) is not consistent."""
    if len(data) < PAYLOAD_SIZE:
        return True, None
    magic, sess, seq = PAYLOAD.unpack_from(data)
    if magic != PAYLOAD_MAGIC or sess != session & 0xFFFFFFFF:
        return False, None
    return True, int(seq)


# ----- raw ICMP packets (the tcp method, privileged) ---------------------------------------------
@dataclass(frozen=True)
class QuotedError:
    """An ICMP error and the probe it quotes (addresses, protocol, ports; TCP sequence when quoted)."""

    icmp_type: int
    icmp_code: int
    mtu: int
    src: str  # the quoted packet's source (us)
    dst: str  # the quoted packet's destination (the target)
    proto: int
    sport: int
    dport: int
    tcp_seq: int | None


def _ipv4_header_len(data: bytes, at: int) -> int | None:
    if len(data) < at + 20 or data[at] >> 4 != 4:
        return None
    ihl = (data[at] & 0x0F) * 4
    return ihl if ihl >= 20 and len(data) >= at + ihl else None


def parse_icmp4_error(packet: bytes) -> QuotedError | None:
    """An ICMPv4 error read from a raw socket (IP header first); None for anything else."""
    ihl = _ipv4_header_len(packet, 0)
    if ihl is None or len(packet) < ihl + 8:
        return None
    kind, code = packet[ihl], packet[ihl + 1]
    if kind not in (ICMP_TIME_EXCEEDED, ICMP_DEST_UNREACH):
        return None
    frag = kind == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED
    mtu = int.from_bytes(packet[ihl + 6:ihl + 8], "big") if frag else 0
    inner = ihl + 8
    qhl = _ipv4_header_len(packet, inner)
    if qhl is None or len(packet) < inner + qhl + 8:
        return None
    proto = packet[inner + 9]
    src = str(ipaddress.IPv4Address(packet[inner + 12:inner + 16]))
    dst = str(ipaddress.IPv4Address(packet[inner + 16:inner + 20]))
    t = inner + qhl
    sport, dport = struct.unpack_from("!HH", packet, t)
    tcp_seq = struct.unpack_from("!I", packet, t + 4)[0] if proto == 6 else None
    return QuotedError(kind, code, mtu, src, dst, proto, sport, dport, tcp_seq)


def parse_icmp6_error(message: bytes) -> QuotedError | None:
    """An ICMPv6 error read from a raw ICMPv6 socket (ICMPv6 header first); None for anything else."""
    if len(message) < 8 + 40 + 8:
        return None
    kind, code = message[0], message[1]
    if kind not in (ICMP6_TIME_EXCEEDED, ICMP6_DST_UNREACH, ICMP6_PACKET_TOO_BIG):
        return None
    mtu = int.from_bytes(message[4:8], "big") if kind == ICMP6_PACKET_TOO_BIG else 0
    inner = 8
    if message[inner] >> 4 != 6:
        return None
    proto = message[inner + 6]  # extension headers are not followed: probes carry none
    src = str(ipaddress.IPv6Address(message[inner + 8:inner + 24]))
    dst = str(ipaddress.IPv6Address(message[inner + 24:inner + 40]))
    t = inner + 40
    sport, dport = struct.unpack_from("!HH", message, t)
    tcp_seq = struct.unpack_from("!I", message, t + 4)[0] if proto == 6 else None
    return QuotedError(kind, code, mtu, src, dst, proto, sport, dport, tcp_seq)


def classify_quoted(err: QuotedError, *, v6: bool) -> Answer:
    if v6:
        if err.icmp_type == ICMP6_TIME_EXCEEDED:
            return Answer.TIME_EXCEEDED
        if err.icmp_type == ICMP6_PACKET_TOO_BIG:
            return Answer.FRAG_NEEDED
        return Answer.UNREACHABLE
    if err.icmp_type == ICMP_TIME_EXCEEDED:
        return Answer.TIME_EXCEEDED
    if err.icmp_code == ICMP_FRAG_NEEDED:
        return Answer.FRAG_NEEDED
    return Answer.UNREACHABLE


def quoted_transport(message: bytes, *, v6: bool) -> bytes | None:
    """What an ICMP error (ICMP header first) quotes after the probe's IP header: its transport
    header and as much payload as the router included; None when the quote is malformed."""
    inner = 8
    if v6:
        if len(message) < inner + 40 or message[inner] >> 4 != 6:
            return None
        return bytes(message[inner + 40:])
    qhl = _ipv4_header_len(message, inner)
    if qhl is None:
        return None
    return bytes(message[inner + qhl:])
