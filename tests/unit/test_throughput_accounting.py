"""How measure throughput adds streams up, leaves out --omit, splits --bidir and judges --min-rate.

Pure arithmetic on byte counts and measured times (no sockets, no clock).
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.core.throughput_models import (
    NS,
    RECV,
    SEND,
    ThroughputResult,
    after_omit,
    check_thresholds,
    common_rate,
    interval_row,
    stream_result,
    summarize_streams,
)


def _stream(sid: int, direction: str, nbytes: int, seconds: float) -> object:
    return stream_result(sid, direction, sent_bytes=nbytes, sent_ns=int(seconds * NS), received_bytes=nbytes,
                         received_ns=int(seconds * NS), retransmits=0, rtt_us=None, counted_by="receiver")


def test_total_rate_is_total_bytes_over_the_common_interval():
    # Four streams through one 50 Mbit/s queue: it drains unevenly, so the last bytes of each stream
    # arrive at different times. Together they moved 30 MB in 5 s: 48 Mbit/s, whatever each got.
    streams = [_stream(0, SEND, 7_500_000, 4.6), _stream(1, SEND, 7_500_000, 4.8),
               _stream(2, SEND, 7_500_000, 4.9), _stream(3, SEND, 7_500_000, 5.0)]
    s = summarize_streams(streams, cpu_seconds=None, wall_ns=5 * NS)
    assert s.received_bits_per_second == pytest.approx(30_000_000 * 8 / 5.0)
    per_stream_sum = sum(x.received_bits_per_second for x in streams)
    assert per_stream_sum > s.received_bits_per_second  # the old way reported more than the link carried
    assert [x.received_seconds for x in s.streams] == [4.6, 4.8, 4.9, 5.0]


@given(st.lists(st.tuples(st.integers(0, 10**10), st.floats(0.01, 100.0)), min_size=1, max_size=16))
def test_common_rate_never_exceeds_what_the_longest_stream_saw_of_the_total(pairs):
    nbytes = [b for b, _ in pairs]
    seconds = [t for _, t in pairs]
    rate = common_rate(nbytes, seconds, [b * 8 / t for b, t in pairs])
    assert rate == pytest.approx(sum(nbytes) * 8 / max(seconds))
    assert rate <= sum(b * 8 / t for b, t in pairs) + 1e-6


def test_common_rate_without_times_falls_back_and_unknowns_stay_null():
    assert common_rate([None, None], [None, None], [None, None]) is None
    assert common_rate([100, 50], [None, 1.0], [800.0, 400.0]) == 1200.0


@given(st.integers(0, 10**12), st.integers(0, 10**12), st.integers(0, 10**12))
def test_after_omit_leaves_out_the_same_bytes_on_both_sides(total_sent, delivered, omitted):
    received_total = min(delivered, total_sent)  # TCP never delivers more than was sent
    sent, received = after_omit(total_sent, received_total, omitted)
    assert sent is not None and received is not None
    assert sent >= received >= 0
    if omitted <= received_total:  # the usual case: only what never arrived tells the two apart
        assert sent - received == total_sent - received_total


def test_after_omit_keeps_unknown_sides_unknown():
    assert after_omit(1000, None, 100) == (900, None)
    assert after_omit(None, 1000, 100) == (None, 900)


def test_bidir_interval_sums_each_direction_apart():
    row = interval_row(0, NS, [(1, SEND, 1000), (3, SEND, 500), (4, RECV, 2000)])
    assert (row.tx_bytes, row.rx_bytes) == (1500, 2000)
    assert row.tx_bits_per_second == 12000 and row.rx_bits_per_second == 16000
    one_way = interval_row(0, NS, [(1, SEND, 1000), (3, SEND, 500)])
    assert one_way.tx_bytes is None and one_way.rx_bytes is None


def test_bidir_summary_sums_each_direction_apart():
    s = summarize_streams([_stream(1, SEND, 1_000_000, 2.0), _stream(3, RECV, 3_000_000, 2.0)], None, 2 * NS)
    assert s.tx is not None and s.rx is not None
    assert (s.tx.streams, s.tx.received_bytes, s.tx.received_bits_per_second) == (1, 1_000_000, 4e6)
    assert (s.rx.streams, s.rx.received_bytes, s.rx.received_bits_per_second) == (1, 3_000_000, 12e6)
    forward = summarize_streams([_stream(0, SEND, 1, 1.0)], None, NS)
    assert forward.tx is not None and forward.rx is None


def _result(streams: list, bidir: bool = False) -> ThroughputResult:
    return ThroughputResult("tcp", 1, False, 2.0, (), summarize_streams(streams, None, 2 * NS), "receiver", bidir=bidir)


def test_min_rate_is_a_threshold_in_the_result():
    r = _result([_stream(0, SEND, 1_000_000, 2.0)])  # 4 Mbit/s
    ok = check_thresholds(r, 1e6)
    assert ok.passed and ok.failed == () and ok.min_rate_bps == 1e6
    low = check_thresholds(r, 10e6)
    assert not low.passed and low.failed == ("rate 4.00 Mbit/s is below --min-rate 10.0 Mbit/s",)
    none = check_thresholds(r, None)
    assert none.passed and none.min_rate_bps is None
    assert dataclasses.replace(r, thresholds=low).thresholds.passed is False


def test_min_rate_with_bidir_applies_to_each_direction():
    r = _result([_stream(1, SEND, 5_000_000, 2.0), _stream(3, RECV, 500_000, 2.0)], bidir=True)  # 20 / 2 Mbit/s
    th = check_thresholds(r, 10e6)
    assert not th.passed
    assert th.failed == ("receive rate 2.00 Mbit/s is below --min-rate 10.0 Mbit/s",)


def test_common_interval_spans_streams_that_started_apart():
    # the netkit server times each stream from its first byte: the second stream's first bytes queued
    # 0.1 s behind the first's, so together they span 5.1 s, not the 5.0 s each one saw
    a = stream_result(0, SEND, sent_bytes=None, sent_ns=None, received_bytes=1_000_000, received_ns=5 * NS,
                      retransmits=None, rtt_us=None, counted_by="receiver")
    b = stream_result(1, SEND, sent_bytes=None, sent_ns=None, received_bytes=1_000_000, received_ns=5 * NS,
                      retransmits=None, rtt_us=None, counted_by="receiver", received_start_ns=NS // 10)
    s = summarize_streams([a, b], None, 5 * NS)
    assert s.received_bits_per_second == pytest.approx(2_000_000 * 8 / 5.1)
    assert (a.received_start_s, b.received_start_s) == (0.0, 0.1)
