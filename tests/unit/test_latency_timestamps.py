"""Pairing kernel receive timestamps with send times, and the ICMP checksum."""

from __future__ import annotations

import socket
import struct

from netkit.io import timestamps
from netkit.io.measure.latency import icmp_checksum


def test_kernel_rtt_used_only_when_sane() -> None:
    assert timestamps.pick_rtt(50_000, 1_000_030_000, 1_000_000_000) == (30_000, True)
    assert timestamps.pick_rtt(50_000, None, 1_000_000_000) == (50_000, False)
    # A wall-clock step: negative, or longer than the monotonic RTT of the same probe.
    assert timestamps.pick_rtt(50_000, 999_000_000, 1_000_000_000) == (50_000, False)
    assert timestamps.pick_rtt(50_000, 1_000_060_000, 1_000_000_000) == (50_000, False)


def test_from_ancdata_reads_timespec() -> None:
    data = struct.pack("@qq", 12, 345)
    assert timestamps.from_ancdata([(socket.SOL_SOCKET, timestamps.SO_TIMESTAMPNS, data)]) == 12_000_000_345
    assert timestamps.from_ancdata([(socket.SOL_SOCKET, 999, data)]) is None
    assert timestamps.from_ancdata([]) is None


def test_icmp_checksum_rfc1071() -> None:
    # The RFC 1071 example: 0x0001 + 0xf203 + 0xf4f5 + 0xf6f7 = 0x2ddf0 -> 0xddf2, complemented 0x220d.
    assert icmp_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    msg = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01abc")
    struct.pack_into("!H", msg, 2, icmp_checksum(msg))
    assert icmp_checksum(msg) == 0  # a correct checksum sums to zero
