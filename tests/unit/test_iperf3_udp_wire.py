"""iperf3's UDP wire format (netkit.core.iperf3_udp) and the UDP pacing arithmetic: exact, no sockets."""

from __future__ import annotations

import struct

import pytest

from netkit.core import iperf3_udp as wire
from netkit.core.throughput_models import (
    UDP_BUFFER_CAP,
    UDP_BUFFER_FLOOR,
    rate_reached,
    udp_buffer_bytes,
)


def test_header_32bit_is_sec_usec_count_big_endian() -> None:
    buf = bytearray(64)
    wire.encode_header_into(buf, 7, 12_345_678_901_234)  # 12345 s + 678901.234 us
    assert bytes(buf[:12]) == struct.pack("!III", 12345, 678901, 7)
    assert bytes(buf[12:]) == bytes(52)  # padding untouched
    assert wire.decode_header(bytes(buf)) == (12345, 678901, 7)


def test_header_64bit_counter() -> None:
    buf = bytearray(16)
    big = (1 << 40) + 3
    wire.encode_header_into(buf, big, 2_000_000_999, counters_64bit=True)
    assert bytes(buf) == struct.pack("!IIQ", 2, 0, big)
    assert wire.decode_header(bytes(buf), counters_64bit=True) == (2, 0, big)


def test_header_32bit_counter_wraps_like_a_u32() -> None:
    buf = bytearray(12)
    wire.encode_header_into(buf, (1 << 32) + 5, 0)
    assert wire.decode_header(bytes(buf))[2] == 5


def test_short_datagram_is_refused() -> None:
    with pytest.raises(ValueError):
        wire.decode_header(b"\x00" * 11)
    with pytest.raises(ValueError):
        wire.decode_header(b"\x00" * 12, counters_64bit=True)


def test_64bit_counters_only_when_a_32bit_one_could_wrap() -> None:
    assert not wire.needs_64bit_counters(1e6)
    assert wire.needs_64bit_counters(3e9)


def test_connect_message_and_replies() -> None:
    assert struct.unpack("=I", wire.connect_message())[0] == wire.CONNECT_MSG
    assert len(wire.connect_message()) == 4
    assert wire.is_connect_reply(struct.pack("=I", wire.CONNECT_REPLY))  # host order, as iperf3 writes it
    assert wire.is_connect_reply(struct.pack("=I", wire.LEGACY_CONNECT_REPLY))
    assert not wire.is_connect_reply(wire.connect_message())  # an echo of our own message is no reply
    assert not wire.is_connect_reply(struct.pack("!I", wire.CONNECT_REPLY) + b"x")
    assert not wire.is_connect_reply(b"")


def _stream(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"id": 1, "bytes": 14000, "retransmits": -1, "jitter": 0.00025, "errors": 2,
                               "packets": 12, "start_time": 0, "end_time": 2.5}
    base.update(kw)
    return base


def test_parse_results_keeps_the_udp_fields() -> None:
    doc = {"cpu_util_total": 1, "streams": [_stream(), _stream(id=3, bytes=0, errors=0, packets=0, end_time=0)]}
    got = wire.parse_udp_results(doc)
    assert got[1] == wire.UdpStreamReport(id=1, bytes=14000, packets=12, errors=2, jitter_s=0.00025, seconds=2.5)
    assert got[3].seconds is None  # an empty span is unknown, not zero


@pytest.mark.parametrize("doc", [
    None, [], {}, {"streams": "x"}, {"streams": [{"bytes": 1}]},
    {"streams": [_stream(jitter=None)]}, {"streams": [_stream(errors="2")]}, {"streams": [_stream(bytes=True)]},
])
def test_parse_results_rejects_malformed_documents(doc: object) -> None:
    with pytest.raises(ValueError):
        wire.parse_udp_results(doc)


def test_negative_error_count_is_not_negative_loss() -> None:
    assert wire.parse_udp_results({"streams": [_stream(errors=-1)]})[1].errors == 0


def test_udp_buffers_hold_a_quarter_second_within_bounds() -> None:
    assert udp_buffer_bytes(1e6) == UDP_BUFFER_FLOOR
    assert udp_buffer_bytes(1e12) == UDP_BUFFER_CAP
    assert udp_buffer_bytes(2e9) == 62_500_000


def test_rate_reached_is_bytes_over_the_measured_time() -> None:
    one_second = 1_000_000_000
    assert rate_reached(8e6, 1_000_000, one_second)  # exactly the rate
    assert rate_reached(8e6, 970_000, one_second)  # within the tolerance
    assert not rate_reached(8e6, 900_000, one_second)
    assert not rate_reached(8e6, 1_000_000, 0)  # no measured time: not "reached"

