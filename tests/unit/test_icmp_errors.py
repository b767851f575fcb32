"""ICMP errors as a tracer reads them: error-queue records, classification, the probe payload and
raw packets (the probers' matching of forged answers is in tests/integration/test_trace_matching.py)."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st

from netkit.core import errqueue as eq
from netkit.core import icmp_errors as ie
from netkit.core.trace_models import Answer

# Records read from this kernel's error queues (recvmsg(MSG_ERRQUEUE) ancillary data, IP_RECVERR
# and IPV6_RECVERR), in a private namespace: a datagram to a closed port on 127.0.0.1 and ::1, and
# one of 1400 bytes with don't-fragment through a link of MTU 1280.
REAL_V4_PORT_UNREACH = bytes.fromhex("6f000000020303000000000000000000020000007f0000010000000000000000")
REAL_V6_PORT_UNREACH = bytes.fromhex(
    "6f0000000301040000000000000000000a000000000000000000000000000000000000000000000100000000")
REAL_LOCAL_EMSGSIZE = bytes.fromhex("5a00000001000000000500000000000000000000000000000000000000000000")


def record_bytes(errno: int, origin: int, kind: int, code: int, info: int = 0, offender: str | None = None) -> bytes:
    head = eq.EXTENDED_ERR.pack(errno, origin, kind, code, 0, info, 0)
    if offender is None:
        return head + bytes(16)
    addr = ipaddress.ip_address(offender)
    if addr.version == 4:
        return head + struct.pack("=HH4s8x", eq.LINUX_AF_INET, 0, addr.packed)
    return head + struct.pack("=HHI16sI", eq.LINUX_AF_INET6, 0, 0, addr.packed, 0)


# ----- records ---------------------------------------------------------------------------------------
def test_real_records_decode() -> None:
    v4 = eq.decode_extended_err(REAL_V4_PORT_UNREACH)
    assert v4 == eq.ExtendedError(111, ie.ORIGIN_ICMP, 3, 3, 0, 0, "127.0.0.1")  # ECONNREFUSED
    assert ie.classify(v4) is Answer.DESTINATION
    v6 = eq.decode_extended_err(REAL_V6_PORT_UNREACH)
    assert v6 == eq.ExtendedError(111, ie.ORIGIN_ICMP6, 1, 4, 0, 0, "::1")
    assert ie.classify(v6) is Answer.DESTINATION
    local = eq.decode_extended_err(REAL_LOCAL_EMSGSIZE)
    assert local == eq.ExtendedError(90, ie.ORIGIN_LOCAL, 0, 0, 1280, 0, None)  # the link's MTU in info
    assert ie.classify(local) is Answer.FRAG_NEEDED


def test_offenders_v4_and_v6() -> None:
    rec = eq.decode_extended_err(record_bytes(113, ie.ORIGIN_ICMP, 11, 0, offender="198.18.0.1"))
    assert rec is not None and rec.offender == "198.18.0.1"
    rec6 = eq.decode_extended_err(record_bytes(113, ie.ORIGIN_ICMP6, 3, 0, offender="2001:db8::1"))
    assert rec6 is not None and rec6.offender == "2001:db8::1"
    assert eq.decode_offender(b"\x07\x00" + bytes(30)) is None  # another family
    assert eq.decode_offender(struct.pack("=H", eq.LINUX_AF_INET6) + bytes(10)) is None  # short
    # No address after the record is no offender.
    bare = eq.decode_extended_err(eq.EXTENDED_ERR.pack(113, ie.ORIGIN_ICMP, 11, 0, 0, 0, 0))
    assert bare is not None and bare.offender is None
    assert eq.decode_extended_err(REAL_V4_PORT_UNREACH[:15]) is None


def test_a_frag_needed_record_carries_the_mtu() -> None:
    rec = eq.decode_extended_err(record_bytes(90, ie.ORIGIN_ICMP, 3, 4, info=1400, offender="198.18.0.2"))
    assert rec is not None and ie.classify(rec) is Answer.FRAG_NEEDED and rec.info == 1400
    rec6 = eq.decode_extended_err(record_bytes(90, ie.ORIGIN_ICMP6, 2, 0, info=1280, offender="2001:db8::2"))
    assert rec6 is not None and ie.classify(rec6) is Answer.FRAG_NEEDED and rec6.info == 1280


def _expected_v4(kind: int, code: int) -> Answer | None:
    if kind == 11:
        return Answer.TIME_EXCEEDED if code == 0 else None  # code 1: fragment reassembly, no hop
    if kind == 3:
        return {3: Answer.DESTINATION, 4: Answer.FRAG_NEEDED}.get(code, Answer.UNREACHABLE)
    return None


def _expected_v6(kind: int, code: int) -> Answer | None:
    if kind == 3:
        return Answer.TIME_EXCEEDED if code == 0 else None
    if kind == 2:
        return Answer.FRAG_NEEDED
    if kind == 1:
        return Answer.DESTINATION if code == 4 else Answer.UNREACHABLE
    return None


def test_classification_of_every_type_and_code() -> None:
    for kind in range(256):
        for code in range(256):
            v4 = eq.ExtendedError(113, ie.ORIGIN_ICMP, kind, code, 0, 0, "198.18.0.1")
            v6 = eq.ExtendedError(113, ie.ORIGIN_ICMP6, kind, code, 0, 0, "2001:db8::1")
            assert ie.classify(v4) is _expected_v4(kind, code), (kind, code)
            assert ie.classify(v6) is _expected_v6(kind, code), (kind, code)
    for origin in (eq.SO_EE_ORIGIN_NONE, eq.SO_EE_ORIGIN_TIMESTAMPING, 7):
        assert ie.classify(eq.ExtendedError(0, origin, 11, 0, 0, 0, None)) is None  # a timestamp, not an answer
    assert ie.classify(eq.ExtendedError(ie.EMSGSIZE, ie.ORIGIN_LOCAL, 0, 0, 1500, 0, None)) is Answer.FRAG_NEEDED
    assert ie.classify(eq.ExtendedError(113, ie.ORIGIN_LOCAL, 0, 0, 0, 0, None)) is None


# ----- the payload ----------------------------------------------------------------------------------------
def test_payload_round_trip_and_size() -> None:
    data = ie.encode_payload(0xDEADBEEF, 4242, 32)
    assert len(data) == 32 and data[:4] == ie.PAYLOAD_MAGIC and data[12:] == bytes(20)
    assert ie.decode_payload(data, 0xDEADBEEF) == (True, 4242)
    assert len(ie.encode_payload(1, 2, 0)) == ie.PAYLOAD_SIZE  # never shorter than its header
    assert ie.decode_payload(ie.encode_payload(1 << 32 | 5, 2**32 + 3, 12), 5) == (True, 3)  # 32-bit fields


def test_payload_not_ours_or_too_short() -> None:
    ours = ie.encode_payload(77, 9, 20)
    assert ie.decode_payload(ours, 78) == (False, None)  # another session
    assert ie.decode_payload(b"XKTR" + ours[4:], 77) == (False, None)  # another magic
    assert ie.decode_payload(ours[:11], 77) == (True, None)  # a router quoted only the transport header
    assert ie.decode_payload(b"", 77) == (True, None)


# ----- raw ICMP errors (the privileged paths) -------------------------------------------------------------------
def ipv4_header(src: str, dst: str, proto: int, total: int, ttl: int = 64) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, ttl, proto, 0,
                       ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)


def icmp4_error(kind: int, code: int, quoted: bytes, *, router: str = "198.18.0.1", us: str = "198.18.0.100",
                mtu: int = 0) -> bytes:
    icmp = struct.pack("!BBHHH", kind, code, 0, 0, mtu) + quoted
    return ipv4_header(router, us, 1, 20 + len(icmp)) + icmp


def quoted_udp4(sport: int, dport: int, payload: bytes, *, src: str = "198.18.0.100", dst: str = "198.18.9.9") -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ipv4_header(src, dst, 17, 20 + len(udp), ttl=1) + udp


def test_parse_icmp4_errors() -> None:
    payload = ie.encode_payload(5, 6, 12)
    te = ie.parse_icmp4_error(icmp4_error(11, 0, quoted_udp4(40000, 33440, payload)))
    assert te == ie.QuotedError(11, 0, 0, "198.18.0.100", "198.18.9.9", 17, 40000, 33440, None)
    assert ie.classify_quoted(te, v6=False) is Answer.TIME_EXCEEDED
    frag = ie.parse_icmp4_error(icmp4_error(3, 4, quoted_udp4(1, 2, b""), mtu=1400))
    assert frag is not None and frag.mtu == 1400 and ie.classify_quoted(frag, v6=False) is Answer.FRAG_NEEDED
    tcp = struct.pack("!HHII", 40001, 80, 0x01020304, 0) + bytes(12)
    syn = ie.parse_icmp4_error(icmp4_error(11, 0, ipv4_header("198.18.0.100", "198.18.9.9", 6, 40) + tcp))
    assert syn is not None and syn.tcp_seq == 0x01020304 and (syn.sport, syn.dport, syn.proto) == (40001, 80, 6)
    msg = icmp4_error(11, 0, quoted_udp4(40000, 33440, payload))[20:]
    assert ie.quoted_transport(msg, v6=False) == struct.pack("!HHHH", 40000, 33440, 20, 0) + payload
    assert ie.parse_icmp4_error(icmp4_error(0, 0, quoted_udp4(1, 2, b""))) is None  # an echo reply
    assert ie.parse_icmp4_error(icmp4_error(11, 0, quoted_udp4(1, 2, b"")[:27])) is None  # quote too short


def test_parse_icmp6_errors() -> None:
    src, dst = ipaddress.IPv6Address("2001:db8::100"), ipaddress.IPv6Address("2001:db8::9")
    udp = struct.pack("!HHHH", 40000, 33441, 20, 0) + ie.encode_payload(5, 7, 12)
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 1, src.packed, dst.packed)
    msg = struct.pack("!BBHI", 3, 0, 0, 0) + ip6 + udp
    te = ie.parse_icmp6_error(msg)
    assert te == ie.QuotedError(3, 0, 0, "2001:db8::100", "2001:db8::9", 17, 40000, 33441, None)
    assert ie.classify_quoted(te, v6=True) is Answer.TIME_EXCEEDED
    ptb = ie.parse_icmp6_error(struct.pack("!BBHI", 2, 0, 0, 1280) + ip6 + udp)
    assert ptb is not None and ptb.mtu == 1280 and ie.classify_quoted(ptb, v6=True) is Answer.FRAG_NEEDED
    assert ie.quoted_transport(msg, v6=True) == udp
    assert ie.parse_icmp6_error(struct.pack("!BBHI", 129, 0, 0, 0) + ip6 + udp) is None  # an echo reply
    assert ie.parse_icmp6_error(msg[:55]) is None


@given(st.binary(max_size=200))
def test_decoders_never_raise(data: bytes) -> None:
    eq.decode_offender(data)
    rec = eq.decode_extended_err(data)
    if rec is not None:
        ie.classify(rec)
    ie.decode_payload(data, 1)
    for err in (ie.parse_icmp4_error(data), ie.parse_icmp6_error(data)):
        if err is not None:
            ie.classify_quoted(err, v6=True)
            ie.classify_quoted(err, v6=False)
    ie.quoted_transport(data, v6=True)
    ie.quoted_transport(data, v6=False)


@given(st.binary(min_size=0, max_size=64), st.integers(0, 255), st.integers(0, 255))
def test_raw_errors_with_arbitrary_quotes_never_raise(quote: bytes, kind: int, code: int) -> None:
    ie.parse_icmp4_error(icmp4_error(kind, code, quote))
    ie.parse_icmp4_error(icmp4_error(kind, code, ipv4_header("198.18.0.100", "198.18.9.9", 17, 20) + quote))
    ie.parse_icmp6_error(struct.pack("!BBHI", kind, code, 0, 0) + bytes([0x60]) + quote)


# ----- forged answers fed to the probers' matchers (no socket is opened) -------------------------------------------
