"""measure throughput against a real ``iperf3 -s``: netkit's byte counts match iperf3's own."""

from __future__ import annotations

import pytest
import support

from netkit.core.throughput_models import ThroughputConfig
from netkit.io.measure.throughput import measure_throughput

pytestmark = pytest.mark.usefixtures("no_socket_leak")


def run_against_iperf3(on_interval=None, **kw):
    with support.iperf3_one_off() as (port, report):
        cfg = ThroughputConfig("127.0.0.1", port, duration_s=1.0, interval_s=0.5, **kw)
        result = measure_throughput(cfg, on_interval)
        return result, report()


def test_forward_matches_iperf3_receiver():
    result, end = run_against_iperf3(server="iperf3")
    assert result.server == "iperf3" and result.counted_by == "receiver"
    got = result.summary.received_bytes
    assert got == pytest.approx(end["sum_received"]["bytes"], rel=0.01)
    assert result.summary.sent_bytes == pytest.approx(got, rel=0.01)


def test_reverse_matches_iperf3_sender():
    result, end = run_against_iperf3(server="iperf3", reverse=True)
    assert result.reverse and result.counted_by == "receiver"
    assert result.summary.received_bytes == pytest.approx(end["sum_sent"]["bytes"], rel=0.01)
    assert result.summary.sent_bytes == end["sum_sent"]["bytes"]


def test_parallel_2_detected_automatically():
    result, end = run_against_iperf3(parallel=2)  # server="auto": the 37-byte header probe finds iperf3
    assert result.server == "iperf3"
    assert len(result.summary.streams) == 2 and len(end["streams"]) == 2
    assert [s.id for s in result.summary.streams] == [1, 3]  # iperf3's own stream ids
    assert result.summary.received_bytes == pytest.approx(end["sum_received"]["bytes"], rel=0.01)


def test_bidir_uses_iperf3_stream_order():
    result, end = run_against_iperf3(bidir=True)
    assert [(s.id, s.direction) for s in result.summary.streams] == [(1, "send"), (3, "recv")]
    fwd, rev = result.summary.streams
    assert fwd.received_bytes == pytest.approx(end["sum_received"]["bytes"], rel=0.01)
    assert rev.received_bytes == pytest.approx(end["sum_sent_bidir_reverse"]["bytes"], rel=0.01)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_omit_leaves_out_the_same_bytes_on_both_sides_and_restarts_intervals(reverse):
    rows = []
    result, end = run_against_iperf3(server="iperf3", omit_s=1.0, reverse=reverse, on_interval=rows.append)
    assert [(r.start_s, r.end_s, r.omitted) for r in rows[:2]] == [(0.0, 0.5, True), (0.5, 1.0, True)]
    measured = [r for r in rows if not r.omitted]
    assert measured[0].start_s == 0.0 and measured[-1].end_s == pytest.approx(1.0, abs=0.05)
    s = result.summary
    assert s.sent_bytes >= s.received_bytes > 0  # never more received than sent
    # iperf3 was asked to count the whole test: netkit left out the same leading bytes from its count
    total = end["sum_sent"]["bytes"] if reverse else end["sum_received"]["bytes"]
    assert total > (s.sent_bytes if reverse else s.received_bytes)


def test_bidir_sums_each_direction_apart_like_iperf3():
    result, end = run_against_iperf3(bidir=True, parallel=2)
    s = result.summary
    assert s.tx is not None and s.rx is not None
    assert s.tx.received_bytes == pytest.approx(end["sum_received"]["bytes"], rel=0.01)
    # the server's own report: what it received one way, what it sent the other (the client read it all)
    assert s.rx.received_bytes == pytest.approx(end["sum_sent_bidir_reverse"]["bytes"], rel=0.01)
