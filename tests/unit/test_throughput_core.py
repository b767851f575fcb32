"""Pure pieces of measure throughput: the stream header, intervals, summaries, TCP_INFO."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.core import session_header as sh
from netkit.core.throughput_models import (
    NS,
    RECV,
    SEND,
    ThroughputConfig,
    bps,
    interval_row,
    overall_counted_by,
    parse_tcp_info,
    stream_result,
    summarize_streams,
    tick_times,
)


def test_header_is_iperf3_cookie_sized():
    # 37 bytes: an iperf3 server answers it with one state byte, which is how auto-detection works
    assert sh.HEADER_LEN == 37
    assert len(sh.encode_header(sh.Header())) == 37


@given(
    direction=st.sampled_from([sh.SINK, sh.SOURCE]),
    sid=st.integers(0, 0xFFFF),
    dur=st.integers(0, 2**32 - 1),
    omit=st.integers(0, 2**32 - 1),
    block=st.integers(1, 2**32 - 1),
    cookie=st.binary(min_size=sh.COOKIE_LEN, max_size=sh.COOKIE_LEN),
)
def test_header_roundtrip(direction, sid, dur, omit, block, cookie):
    h = sh.Header(direction, sid, dur, omit, block, cookie)
    raw = sh.encode_header(h)
    assert raw.startswith(sh.MAGIC)  # what the server sniffs to tell a netkit session from other bytes
    assert sh.decode_header(raw + b"extra") == h


def test_header_errors():
    raw = bytearray(sh.encode_header(sh.Header()))
    with pytest.raises(sh.HeaderError):
        sh.decode_header(bytes(raw[:-1]))
    bad = bytearray(raw)
    bad[5] = 99  # version
    with pytest.raises(sh.HeaderError, match="version"):
        sh.decode_header(bytes(bad))
    bad = bytearray(raw)
    bad[7] = 7  # direction
    with pytest.raises(sh.HeaderError, match="direction"):
        sh.decode_header(bytes(bad))
    with pytest.raises(sh.HeaderError, match="magic"):
        sh.decode_header(b"x" * sh.HEADER_LEN)


def test_ack_and_report_roundtrip():
    assert sh.decode_ack(sh.encode_ack(sh.Ack())) == sh.Ack()
    assert sh.decode_ack(b"\x00NKTA") is None  # short
    assert sh.decode_ack(b"hello world") is None
    r = sh.Report(bytes=10**12, omitted_bytes=5, elapsed_ns=3 * NS, retransmits=7, rtt_us=120)
    assert sh.decode_report(sh.encode_report(r)) == r
    unknown = sh.Report(bytes=1)
    assert sh.decode_report(sh.encode_report(unknown)).retransmits is None
    with pytest.raises(sh.HeaderError):
        sh.decode_report(b"\x00" * sh.REPORT_LEN)


def test_tick_times_without_and_with_omit():
    assert list(tick_times(3 * NS, NS, 0)) == [NS, 2 * NS, 3 * NS]
    assert list(tick_times(int(2.5 * NS), NS, 0)) == [NS, 2 * NS, int(2.5 * NS)]
    # omit 1.5 s then 2 s of test: intervals restart at the end of the omit period, like iperf3
    assert list(tick_times(int(3.5 * NS), NS, int(1.5 * NS))) == [NS, int(1.5 * NS), int(2.5 * NS), int(3.5 * NS)]


def test_interval_row_rates():
    row = interval_row(0, NS // 2, [(0, SEND, 1000), (1, SEND, 3000)])
    assert row.bytes == 4000
    assert row.bits_per_second == pytest.approx(64000)
    assert [s.bits_per_second for s in row.streams] == [pytest.approx(16000), pytest.approx(48000)]
    assert row.start_s == 0.0 and row.end_s == 0.5


def test_summary_adds_streams_and_keeps_unknowns_null():
    a = stream_result(0, SEND, sent_bytes=1000, sent_ns=NS, received_bytes=900, received_ns=NS,
                      retransmits=3, rtt_us=100, counted_by="receiver")
    b = stream_result(1, RECV, sent_bytes=None, sent_ns=None, received_bytes=500, received_ns=NS,
                      retransmits=None, rtt_us=None, counted_by="receiver")
    s = summarize_streams([a, b], cpu_seconds=0.5, wall_ns=2 * NS)
    assert s.sent_bytes == 1000 and s.received_bytes == 1400
    assert s.received_bits_per_second == pytest.approx(11200)
    assert s.retransmits == 3 and s.rtt_ms == 0.1 and s.cpu_percent == 25.0
    assert overall_counted_by([a, b]) == "receiver"
    c = stream_result(2, SEND, sent_bytes=1, sent_ns=NS, received_bytes=None, received_ns=None,
                      retransmits=None, rtt_us=None, counted_by="sender")
    assert overall_counted_by([a, c]) == "sender"
    empty = summarize_streams([c], cpu_seconds=None, wall_ns=NS)
    assert empty.received_bytes is None and empty.cpu_percent is None and empty.retransmits is None
    assert bps(10, 0) is None


def test_parse_tcp_info_offsets():
    raw = bytearray(232)
    struct.pack_into("=II", raw, 68, 250, 40)
    struct.pack_into("=I", raw, 100, 9)
    info = parse_tcp_info(bytes(raw))
    assert info is not None and info.rtt_us == 250 and info.rttvar_us == 40 and info.retransmits == 9
    assert parse_tcp_info(b"\x00" * 50) is None


def test_config_directions():
    assert ThroughputConfig("h", 1, parallel=2).directions() == [SEND, SEND]
    assert ThroughputConfig("h", 1, parallel=2, reverse=True).directions() == [RECV, RECV]
    assert ThroughputConfig("h", 1, parallel=2, bidir=True).directions() == [SEND, SEND, RECV, RECV]
    with pytest.raises(ValueError):
        ThroughputConfig("h", 1, server="nope")
