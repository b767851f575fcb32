"""Pure parts of ``netkit info``: counter deltas, wraps, rates over measured time, filters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.core.sysinfo_models import (
    Connection,
    ConnectionFilter,
    CounterSnapshot,
    count_hidden_owners,
    prefix_length,
    socket_state,
)
from netkit.core.traffic import counter_delta, rate, sample_between, samples_between, summarize_traffic

NS = 1_000_000_000


def snap(name: str = "eth0", at_ns: int = 0, **counters: int) -> CounterSnapshot:
    values = dict.fromkeys(
        ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors", "rx_drops", "tx_drops"), 0)
    values.update(counters)
    return CounterSnapshot(interface=name, at_ns=at_ns, **values)


# ----- counter_delta -----------------------------------------------------------------------------
def test_delta_plain_growth() -> None:
    assert counter_delta(100, 250) == (150, "ok")
    assert counter_delta(7, 7) == (0, "ok")


def test_delta_32bit_wrap() -> None:
    assert counter_delta(2**32 - 10, 5) == (15, "wrap")


def test_delta_64bit_wrap() -> None:
    assert counter_delta(2**64 - 1, 0) == (1, "wrap")


def test_delta_reset_of_a_low_counter_is_not_a_4gib_wrap() -> None:
    # An interface re-created: its counter restarts; the old value was far below 2**31.
    assert counter_delta(1_000_000, 300) == (300, "reset")


def test_delta_reset_of_a_64bit_counter() -> None:
    assert counter_delta(5 * 2**32, 42) == (42, "reset")


def test_delta_rejects_negative() -> None:
    with pytest.raises(ValueError):
        counter_delta(-1, 0)


@given(prev=st.integers(2**31, 2**32 - 1), step=st.integers(0, 2**31 - 1))
def test_delta_recovers_any_32bit_wrap(prev: int, step: int) -> None:
    cur = (prev + step) % 2**32
    assert counter_delta(prev, cur)[0] == step


@given(prev=st.integers(0, 2**64 - 1), step=st.integers(0, 2**40))
def test_delta_never_negative_and_exact_without_wrap(prev: int, step: int) -> None:
    cur = prev + step
    if cur < 2**64:
        assert counter_delta(prev, cur) == (step, "ok")
    d, _ = counter_delta(prev, cur % 2**64)
    assert d >= 0


# ----- rates -------------------------------------------------------------------------------------
def test_rate_divides_by_measured_time_not_the_requested_interval() -> None:
    # 1 MB over a "1 s" interval that really took 1.25 s is 800 kB/s, not 1 MB/s.
    assert rate(1_000_000, int(1.25 * NS)) == pytest.approx(800_000)
    assert rate(10, 0) == 0.0


def test_sample_between_uses_snapshot_times_and_handles_wrap() -> None:
    a = snap(at_ns=10 * NS, rx_bytes=2**32 - 1000, tx_bytes=500, rx_packets=10, rx_drops=3)
    b = snap(at_ns=10 * NS + NS // 2, rx_bytes=1000, tx_bytes=1500, rx_packets=20, rx_drops=5)
    s = sample_between(a, b, seq=4, timestamp="t")
    assert s.elapsed_s == 0.5
    assert s.rx_bytes == 2000 and s.rx_bytes_per_s == 4000.0
    assert s.tx_bytes == 1000 and s.tx_bytes_per_s == 2000.0
    assert s.rx_packets_per_s == 20.0
    assert s.rx_drops == 2
    assert s.wrapped == ("rx_bytes",) and s.reset == ()
    assert (s.seq, s.timestamp, s.interface) == (4, "t", "eth0")


def test_sample_between_refuses_mismatched_or_backwards_snapshots() -> None:
    with pytest.raises(ValueError):
        sample_between(snap("a"), snap("b"))
    with pytest.raises(ValueError):
        sample_between(snap(at_ns=2), snap(at_ns=1))


def test_samples_between_skips_interfaces_that_came_or_went() -> None:
    prev = {"lo": snap("lo"), "gone": snap("gone")}
    cur = {"lo": snap("lo", at_ns=NS, rx_bytes=10), "new": snap("new", at_ns=NS)}
    out = samples_between(prev, cur, interfaces=["new", "lo", "gone"])
    assert [s.interface for s in out] == ["lo"]


def test_summarize_traffic_sums_deltas_over_summed_time() -> None:
    s1 = sample_between(snap("lo", 0), snap("lo", NS, rx_bytes=100, rx_packets=1), seq=1)
    s2 = sample_between(snap("lo", NS, rx_bytes=2**32 - 50), snap("lo", 3 * NS, rx_bytes=250), seq=2)
    (total,) = summarize_traffic([s1, s2])
    assert total.rx_bytes == 100 + 300
    assert total.elapsed_s == 3.0
    assert total.rx_bytes_per_s == pytest.approx(400 / 3)
    assert total.wrapped == ("rx_bytes",)
    assert summarize_traffic([]) == []


# ----- models ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mask", "plen"), [
    ("255.255.255.0", 24), ("255.0.0.0", 8), ("255.255.255.255", 32), ("0.0.0.0", 0),
    ("ffff:ffff:ffff:ffff::", 64), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 128),
    ("255.0.255.0", None), (None, None), ("garbage", None),
])
def test_prefix_length(mask: str | None, plen: int | None) -> None:
    assert prefix_length(mask) == plen


def test_socket_state_names_follow_ss() -> None:
    assert socket_state("tcp", "LISTEN", False) == "listen"
    assert socket_state("tcp", "TIME_WAIT", True) == "time-wait"
    assert socket_state("tcp", "FIN_WAIT1", True) == "fin-wait-1"
    assert socket_state("udp", "NONE", False) == "unconn"
    assert socket_state("udp", "NONE", True) == "established"


def conn(**kw: object) -> Connection:
    base: dict[str, object] = dict(proto="tcp", family="ipv4", local_address="127.0.0.1", local_port=8000,
                                   remote_address=None, remote_port=None, state="listen", pid=42, process="x")
    base.update(kw)
    return Connection(**base)  # type: ignore[arg-type]


def test_filter() -> None:
    listen, udp = conn(), conn(proto="udp", state="unconn", local_port=53, pid=7)
    est = conn(state="established", local_port=40000, remote_address="127.0.0.1", remote_port=8000, pid=9)
    everything = [listen, udp, est]

    def kept(f: ConnectionFilter) -> list[Connection]:
        return [c for c in everything if f.matches(c)]

    assert kept(ConnectionFilter()) == everything
    assert kept(ConnectionFilter(protos=frozenset({"udp"}))) == [udp]
    assert kept(ConnectionFilter(listening=True)) == [listen, udp]
    assert kept(ConnectionFilter(states=frozenset({"established"}))) == [est]
    assert kept(ConnectionFilter(ports=frozenset({8000}))) == [listen, est]  # local or remote port
    assert kept(ConnectionFilter(pids=frozenset({7, 9}))) == [udp, est]


def test_hidden_owners_counts_only_owned_states_and_only_without_rights() -> None:
    rows = [conn(pid=None), conn(pid=None, state="time-wait"), conn(pid=5)]
    assert count_hidden_owners(rows, processes_hidden=3) == 1
    assert count_hidden_owners(rows, processes_hidden=0) == 0
