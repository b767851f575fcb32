"""Server limits (netkit.core.limits): token buckets, CIDR filter, session table."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netkit.core.limits import NS, CidrFilter, Limits, SessionTable, SourceLimiter, TokenBucket, parse_cidr


def test_token_bucket_holds_rate() -> None:
    b = TokenBucket(rate=100, burst=10, now_ns=0)
    ok = sum(b.allow(t * NS // 10_000) for t in range(10_000))  # 10k tries over 1 s
    assert 100 <= ok <= 111


@settings(max_examples=100, deadline=None)
@given(st.floats(1, 10_000), st.lists(st.integers(0, 10**6), min_size=1, max_size=500))
def test_token_bucket_never_exceeds_rate_plus_burst(rate: float, gaps: list[int]) -> None:
    b = TokenBucket(rate=rate, burst=max(1.0, rate * 0.1), now_ns=0)
    t = 0
    ok = 0
    for g in gaps:
        t += g
        ok += b.allow(t)
    assert ok <= b.burst + rate * t / NS + 1e-6


def test_source_limiter_is_per_source_and_bounded() -> None:
    lim = SourceLimiter(rate=10, burst=1, max_sources=2)
    assert lim.allow("a", 0) and not lim.allow("a", 1)
    assert lim.allow("b", 1)  # a second source keeps its own budget
    lim.allow("c", 2)
    assert len(lim) == 2


def test_limits_source_rate() -> None:
    assert Limits().source_rate is None
    assert Limits(max_pps_per_source=50).source_rate == 50
    assert Limits(max_pps_per_source=50, min_interval_ns=NS // 10).source_rate == 10


def test_cidr_filter() -> None:
    f = CidrFilter(deny=["127.0.0.2/32"])
    assert f.permits("127.0.0.1") and not f.permits("127.0.0.2")
    f = CidrFilter(allow=["10.0.0.0/8", "::1"], deny=["10.9.0.0/16"])
    assert f.permits("10.1.2.3") and not f.permits("10.9.1.1") and not f.permits("192.0.2.1")
    assert f.permits("::1") and f.permits("::ffff:10.1.2.3")
    assert not CidrFilter().active and CidrFilter().permits("203.0.113.5")
    with pytest.raises(ValueError, match="CIDR"):
        parse_cidr("10.0.0.0/33")


def test_session_table_max_sessions_and_idle() -> None:
    t = SessionTable(max_sessions=2, active_idle_ns=10 * NS)
    assert t.admit(1, 0, 0) is None and t.admit(2, 0, 0) is None
    assert t.admit(3, 0, 1) == "max_sessions"
    assert t.admit(1, 1, 2) is None  # a known session goes on
    assert t.admit(3, 0, 11 * NS) is None  # the others went idle
    assert t.active_count(11 * NS) == 1


def test_session_table_max_duration() -> None:
    t = SessionTable(max_duration_ns=5 * NS)
    assert t.admit(1, 0, 0) is None and t.admit(1, 1, 5 * NS) is None
    assert t.admit(1, 2, 5 * NS + 1) == "max_duration"


def test_session_table_replay_and_queries() -> None:
    t = SessionTable(replay=True)
    assert t.admit(9, 0, 0) is None and t.admit(9, 0, 1) == "replay"
    # Queries have a window of their own (their attempts count from 0 like the probes), and a
    # recorded query replayed is refused like a replayed probe.
    assert t.admit(9, 0, 2, query=True) is None and t.admit(9, 0, 3, query=True) == "replay"
    assert t.admit(9, 1, 4, query=True) is None


def test_session_table_queries_never_keep_a_session_alive() -> None:
    t = SessionTable(replay=True, keep_ns=100 * NS)
    assert t.admit(9, 0, 0) is None
    for k in range(1, 5):  # a query every 20 s, as the recorded attack did
        assert t.admit(9, k, k * 20 * NS, query=True) is None
    assert t.active_count(100 * NS) == 0
    assert not t.known(9)  # forgotten 100 s after its last probe, queries or not


def test_session_table_forgets_only_after_keep_and_is_bounded() -> None:
    t = SessionTable(replay=True, keep_ns=100 * NS, max_known=2)
    t.admit(1, 0, 0)
    assert t.known(1)
    t.admit(2, 0, 0)
    assert t.admit(3, 0, 1) == "table_full"
    t.admit(4, 0, 101 * NS)
    assert not t.known(1)
