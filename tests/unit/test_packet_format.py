"""The probe packet format: exact round trips (property tests) and reasons for malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.core import packet
from netkit.core.packet import HEADER_SIZE, PacketError, ProbePacket

u64 = st.integers(min_value=0, max_value=packet.U64)


@given(session=u64, seq=u64, send=u64, count=u64, rrecv=u64, rsend=u64,
       flags=st.sampled_from([0, packet.FLAG_REFLECTED, packet.FLAG_QUERY, 3]),
       size=st.integers(min_value=HEADER_SIZE, max_value=2000))
def test_encode_decode_round_trip(session: int, seq: int, send: int, count: int, rrecv: int, rsend: int,
                                  flags: int, size: int) -> None:
    p = ProbePacket(session, seq, send, flags, count, rrecv, rsend, size)
    data = packet.encode(p)
    assert len(data) == size
    assert packet.decode(data) == p
    assert packet.peek_seq(data) == (session, seq)


@given(st.binary(max_size=200))
def test_decode_never_crashes(data: bytes) -> None:
    probe, reason = packet.try_decode(data)
    assert (probe is None) != (reason is None)


@given(st.binary(min_size=HEADER_SIZE, max_size=200))
def test_decode_with_magic_prefix_never_crashes(tail: bytes) -> None:
    data = packet.MAGIC + tail
    probe, reason = packet.try_decode(data)
    assert probe is not None or isinstance(reason, str)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "too short"),
    (b"NKLP\x01", "too short"),
    (b"XXXX" + bytes(60), "bad magic"),
    (b"NKLP\x02" + bytes(60), "unsupported probe version 2"),
    (b"NKLP\x01" + bytes(20), "truncated header"),
])
def test_malformed_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(PacketError) as info:
        packet.decode(data)
    assert reason in info.value.reason


def test_bad_header_length_and_flags() -> None:
    good = bytearray(packet.encode(ProbePacket(1, 2, 3)))
    bad = bytearray(good)
    bad[6:8] = (99).to_bytes(2, "big")
    assert "header length" in packet.try_decode(bad)[1]
    bad = bytearray(good)
    bad[5] = 0x80
    assert "unknown flags" in packet.try_decode(bad)[1]


def test_reflect_into_sets_fields_in_place_and_keeps_size() -> None:
    buf = bytearray(packet.encode(ProbePacket(7, 9, 11, size=100)))
    buf[80] = 0xAB  # padding content survives
    packet.reflect_into(buf, 5, 1000, 1500)
    p = packet.decode(buf)
    assert (p.reflected, p.refl_count, p.refl_recv_ns, p.refl_send_ns, p.size) == (True, 5, 1000, 1500, 100)
    assert p.reflector_turnaround_ns == 500
    assert buf[80] == 0xAB


def test_size_and_range_checks() -> None:
    with pytest.raises(ValueError):
        packet.encode(ProbePacket(1, 1, 1, size=HEADER_SIZE - 1))
    with pytest.raises(ValueError):
        packet.encode(ProbePacket(-1, 1, 1))
    assert HEADER_SIZE == 56
