"""measure throughput --udp against a real ``iperf3 -s``: netkit reports what iperf3's server itself reports.

iperf3 cannot listen on port 0: a free port is found by binding and closing (loopback only).
"""

from __future__ import annotations

import socket
import time

import pytest
import support

from netkit.core.errors import CheckFailed
from netkit.core.throughput_models import ThroughputConfig, ThroughputResult
from netkit.io.measure.throughput import measure_throughput

pytestmark = pytest.mark.usefixtures("no_socket_leak")


def run_against_iperf3(**kw: object) -> tuple[ThroughputResult, dict]:
    with support.iperf3_one_off() as (port, report):
        cfg = ThroughputConfig("127.0.0.1", port, duration_s=1.0, interval_s=0.5, udp=True, block_size=1400,
                               **kw)  # type: ignore[arg-type]
        result = measure_throughput(cfg)
        return result, report()


@pytest.mark.parametrize(("rate", "parallel"), [(10e6, 1), (300e6, 1), (50e6, 2), (0, 1)])  # 0: unpaced
def test_udp_matches_iperf3_server_report(rate: float, parallel: int) -> None:
    result, end = run_against_iperf3(rate_bps=rate, parallel=parallel)  # server="auto": found by its TCP port
    u = result.udp
    assert result.server == "iperf3" and result.protocol == "udp" and u is not None
    assert result.counted_by == "receiver"
    assert [s.id for s in result.summary.streams] == [1, 3][:parallel]  # iperf3's own stream ids
    server = end["sum_received"]  # what the iperf3 server counted
    assert result.summary.received_bytes == pytest.approx(server["bytes"], rel=0.01)
    assert u.peer_lost_packets == server["lost_packets"]
    assert u.jitter_ms == pytest.approx(server["jitter_ms"], rel=0.01)
    assert u.lost_packets == u.packets_sent - u.packets_received
    assert u.packets_received == server["bytes"] // 1400
    # iperf3's summary shows the highest counter it saw as "packets" and counts gaps below it as
    # lost: our loss is its loss plus the datagrams lost after the last arrival.
    after_last = u.packets_sent - end["sum"]["packets"]
    assert after_last >= 0 and u.lost_packets == u.peer_lost_packets + after_last
    assert u.lost_percent == pytest.approx(100 * u.lost_packets / u.packets_sent, abs=0.001)
    if rate:
        assert result.summary.sent_bits_per_second <= rate * parallel * 1.05  # paced: never above
        # on a busy machine the sender may fall short: then it says so, once
        assert u.rate_reached is (len(result.warnings) == 0)
    else:
        assert u.rate_reached is None and result.warnings == ()  # nothing asked, nothing short


def test_udp_with_iperf3_forced() -> None:
    result, end = run_against_iperf3(rate_bps=5e6, server="iperf3")
    assert result.server == "iperf3" and result.udp is not None
    assert result.summary.received_bytes == end["sum_received"]["bytes"]


def test_iperf3_udp_port_blocked_is_one_failure() -> None:
    """An iperf3 server whose UDP answers never come back: the connect datagram names it."""

    def control_only(conn: socket.socket) -> None:
        # an iperf3-looking control connection (asks for parameters, then for streams) with no UDP side
        conn.recv(37)
        conn.sendall(b"\x09")
        head = conn.recv(4)
        conn.recv(int.from_bytes(head, "big"))
        conn.sendall(b"\x0a")
        conn.recv(1)  # until the client gives up and closes

    with support.tcp_peer(control_only) as port:
        cfg = ThroughputConfig("127.0.0.1", port, duration_s=1.0, udp=True, rate_bps=1e6, block_size=1400,
                               connect_timeout_s=0.6)
        t0 = time.monotonic()
        with pytest.raises(CheckFailed) as exc:
            measure_throughput(cfg)
    assert time.monotonic() - t0 < 3
    msg = str(exc.value)
    assert "connect datagram" in msg or "ICMP port unreachable" in msg
    assert "\n" not in msg


def test_64bit_counters_are_read_by_iperf3(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 64-bit counter header (asked for only on very long runs) as a real server reads it."""
    from netkit.core import iperf3_udp

    monkeypatch.setattr(iperf3_udp, "needs_64bit_counters", lambda expected: True)
    result, end = run_against_iperf3(rate_bps=5e6)
    u = result.udp
    assert u is not None and u.packets_sent == end["sum"]["packets"]  # 5 Mbit/s on loopback: no loss
    assert end["sum_received"]["lost_packets"] == 0  # a misread counter would show as huge gaps
    assert result.summary.received_bytes == end["sum_received"]["bytes"]
