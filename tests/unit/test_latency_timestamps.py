"""Pairing kernel receive timestamps with send times, and the ICMP echo codec (pure)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.core import packet
from netkit.core.kernel_rtt import decode_timespec, pick_rtt


def test_kernel_rtt_used_only_when_sane() -> None:
    assert pick_rtt(50_000, 1_000_030_000, 1_000_000_000) == (30_000, True)
    assert pick_rtt(50_000, None, 1_000_000_000) == (50_000, False)
    # A wall-clock step: negative, or longer than the monotonic RTT of the same probe.
    assert pick_rtt(50_000, 999_000_000, 1_000_000_000) == (50_000, False)
    assert pick_rtt(50_000, 1_000_060_000, 1_000_000_000) == (50_000, False)


def test_timespec_decodes_to_nanoseconds() -> None:
    assert decode_timespec(struct.pack("@qq", 12, 345)) == 12_000_000_345
    assert decode_timespec(b"\0" * 4) is None


def test_icmp_checksum_rfc1071() -> None:
    # The RFC 1071 example: 0x0001 + 0xf203 + 0xf4f5 + 0xf6f7 = 0x2ddf0 -> 0xddf2, complemented 0x220d.
    assert packet.icmp_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    msg = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01abc")
    struct.pack_into("!H", msg, 2, packet.icmp_checksum(msg))
    assert packet.icmp_checksum(msg) == 0  # a correct checksum sums to zero


@given(st.integers(0, 0xFFFF), st.integers(0, 2**32), st.binary(max_size=64))
def test_echo_request_v4_checksums_to_zero_and_carries_ids(ident: int, seq: int, payload: bytes) -> None:
    msg = packet.icmp_echo_request(ident, seq, payload, v6=False)
    assert msg[0] == packet.ICMP_ECHO_REQUEST and packet.icmp_checksum(msg) == 0
    assert msg[8:] == payload
    reply = bytearray(msg)
    reply[0] = packet.ICMP_ECHO_REPLY
    assert packet.parse_icmp_echo_reply(reply, v6=False) == (ident, seq & 0xFFFF)


def test_echo_v6_leaves_the_checksum_to_the_kernel_and_replies_are_matched_by_type() -> None:
    msg = packet.icmp_echo_request(7, 9, b"x", v6=True)
    assert msg[0] == packet.ICMPV6_ECHO_REQUEST and msg[2:4] == b"\0\0"
    assert packet.parse_icmp_echo_reply(msg, v6=True) is None  # a request, not a reply
    reply = bytes([packet.ICMPV6_ECHO_REPLY]) + bytes(msg[1:])
    assert packet.parse_icmp_echo_reply(reply, v6=True) == (7, 9)
    assert packet.parse_icmp_echo_reply(reply, v6=False) is None
    assert packet.parse_icmp_echo_reply(b"\0" * 7, v6=False) is None


@pytest.mark.parametrize(("seq16", "sent", "seq"), [
    (0, 1, 0), (4, 5, 4), (3, 5, 3), (0xFFFF, 65_536, 65_535), (0, 65_537, 65_536), (0xFFFF, 65_537, 65_535),
    (5, 200_000, 196_613),
])
def test_a_16_bit_sequence_unwraps_to_the_most_recent_probe(seq16: int, sent: int, seq: int) -> None:
    assert packet.unwrap_seq16(seq16, sent) == seq
    assert seq & 0xFFFF == seq16 and seq < sent
