"""Accounting with lost, duplicated, reordered and late replies; per-direction loss."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.core.accounting import Accounting

MS = 1_000_000


def _sent(n: int, timeout_ms: int = 100) -> Accounting:
    acc = Accounting(timeout_ms * MS)
    for i in range(n):
        acc.on_sent(i, i * 10 * MS)
    return acc


def test_all_received_in_order() -> None:
    acc = _sent(3)
    evs = [acc.on_reply(i, i * 10 * MS + 2 * MS) for i in range(3)]
    assert [e.kind for e in evs] == ["ok"] * 3
    assert [e.rtt_ns for e in evs] == [2 * MS] * 3
    s = acc.finish()
    assert (s.sent, s.received, s.lost, s.duplicates, s.reordered, s.late) == (3, 3, 0, 0, 0, 0)
    assert s.loss_pct == 0.0
    assert s.lost_forward is None  # no reflector count


def test_lost_duplicate_reordered_late() -> None:
    acc = _sent(6)
    acc.on_reply(0, 1 * MS)
    acc.on_reply(2, 22 * MS)
    assert acc.on_reply(1, 23 * MS).reordered  # 1 after 2
    assert acc.on_reply(2, 24 * MS).kind == "duplicate"
    # seq 3 times out, then answers late; seq 4 never answers; seq 5 in time.
    assert acc.expire(131 * MS) == [3]
    late = acc.on_reply(3, 140 * MS)
    assert late.kind == "late" and late.rtt_ns is None
    assert acc.on_reply(3, 141 * MS).kind == "duplicate"  # a late reply's duplicate
    acc.on_reply(5, 55 * MS)
    s = acc.finish()
    assert (s.sent, s.received, s.late, s.lost, s.duplicates, s.reordered) == (6, 4, 1, 1, 2, 1)
    assert s.loss_pct == pytest.approx(100 / 6)
    assert sorted(s.rtts_ns) == [1 * MS, 2 * MS, 5 * MS, 13 * MS]


def test_reply_past_timeout_before_expire_is_late() -> None:
    acc = _sent(1, timeout_ms=10)
    assert acc.on_reply(0, 50 * MS).kind == "late"
    assert acc.finish().lost == 0


def test_kernel_rtt_overrides() -> None:
    acc = _sent(1)
    assert acc.on_reply(0, 9 * MS, rtt_ns=7 * MS).rtt_ns == 7 * MS


def test_unknown_and_error() -> None:
    acc = _sent(2)
    assert acc.on_reply(9, 1).kind == "unknown"
    assert acc.on_error(0) is True
    assert acc.on_error(0) is False
    assert acc.on_reply(0, 2 * MS).kind == "late"  # an answer after a failure is late, not lost twice
    s = acc.finish()
    assert (s.unknown, s.lost, s.late) == (1, 1, 1)


def test_sequence_gap_is_an_error() -> None:
    acc = Accounting(MS)
    with pytest.raises(ValueError):
        acc.on_sent(1, 0)
    with pytest.raises(ValueError):
        Accounting(0)


def test_per_direction_loss_needs_final_count() -> None:
    acc = _sent(10)
    for i in range(10):
        if i not in (3, 7):
            acc.on_reply(i, i * 10 * MS + MS, refl_count=i)
    assert acc.finish().lost_forward is None  # counts from replies are not final
    acc.on_reflector_count(9)  # the reflector got 9 of 10: one lost forward, one on return
    s = acc.finish()
    assert (s.lost, s.lost_forward, s.lost_return, s.reflector_count) == (2, 1, 1, 9)
    assert s.lost_forward + s.lost_return == s.lost


def test_expire_and_deadlines() -> None:
    acc = _sent(3, timeout_ms=100)
    assert acc.next_deadline() == 100 * MS
    acc.on_reply(0, MS)
    assert acc.next_deadline() == 110 * MS
    assert acc.expire(115 * MS) == [1]
    assert acc.outstanding == 1
    assert acc.expire(10_000 * MS) == [2]
    assert acc.next_deadline() is None


def test_samples_capped_statistics_continue() -> None:
    from netkit.core.latency_models import TargetResult

    acc = Accounting(100 * MS, max_samples=3)
    for i in range(10):
        acc.on_sent(i, i * MS)
        acc.on_reply(i, i * MS + (i + 1) * 1000)
    s = acc.finish()
    assert len(s.rtts_ns) == 3 and not s.samples_complete
    r = TargetResult("t", None, s)
    assert r.stats.count == 10 and r.stats.max == 10_000 and r.stats.avg == pytest.approx(5500)


@given(st.lists(st.tuples(st.integers(0, 29), st.integers(0, 300)), max_size=80), st.integers(0, 500))
def test_invariants_under_any_reply_pattern(replies: list[tuple[int, int]], expire_at: int) -> None:
    """Whatever arrives, in whatever order: every probe is counted exactly once."""
    acc = _sent(30, timeout_ms=100)  # seq i sent at 10*i ms
    acc.expire(expire_at * MS)
    kinds = [acc.on_reply(seq, (seq * 10 + delay) * MS).kind for seq, delay in replies]
    s = acc.finish()
    assert s.sent == s.received + s.late + s.lost
    assert s.duplicates == kinds.count("duplicate")
    unique = {seq for seq, _ in replies}
    assert s.received + s.late == len(unique)
    assert s.reordered <= len(unique)
    assert all(0 <= r <= 100 * MS for r in s.rtts_ns)


def test_trailing_lost_marks_a_peer_that_went_away() -> None:
    from netkit.core.latency_models import stall_probes

    acc = Accounting(timeout_ns=100)
    for seq in range(10):
        acc.on_sent(seq, seq * 10)
    for seq in (0, 1, 3, 4):  # 2 lost at random, then silence from 5 on
        acc.on_reply(seq, seq * 10 + 5)
    acc.expire(10_000)
    summary = acc.finish()
    assert summary.trailing_lost == 5
    assert stall_probes(1.0) == 3 and stall_probes(0.01) == 100 and stall_probes(1 / 2000) == 2000


def test_local_drops_are_not_network_loss() -> None:
    # 10 probes; the reflector counted all 10; 7 replies arrived, 3 were dropped by this host's
    # socket buffer (the drop counter says 3): nothing was lost on the network.
    acc = _sent(10)
    for i in range(7):
        acc.on_reply(i, i * 10 * MS + MS, refl_count=i + 1)
    acc.on_reflector_count(10, final=True)
    plain = acc.finish()
    assert (plain.lost, plain.lost_forward, plain.lost_return, plain.local_drops) == (3, 0, 3, None)
    s = acc.finish(local_drops=3)
    assert (s.lost, s.lost_forward, s.lost_return, s.local_drops) == (0, 0, 0, 3)
    assert s.loss_pct == 0.0
    assert s.trailing_lost == 0  # the last three were dropped here: the peer did not go away
    assert s.sent == s.received + s.late + s.lost + s.local_drops


def test_local_drops_next_to_real_loss() -> None:
    # 10 probes: 2 lost on the way there (reflector counted 8), 1 reply dropped here, 7 back.
    acc = _sent(10)
    for i in range(7):
        acc.on_reply(i, i * 10 * MS + MS)
    acc.on_reflector_count(8, final=True)
    s = acc.finish(local_drops=1)
    assert (s.lost, s.lost_forward, s.lost_return, s.local_drops) == (2, 2, 0, 1)


def test_local_drops_never_exceed_the_unanswered() -> None:
    # A dropped duplicate or stray datagram is not a probe: at most the unanswered are taken out.
    acc = _sent(5)
    for i in range(4):
        acc.on_reply(i, i * 10 * MS + MS)
    s = acc.finish(local_drops=50)
    assert (s.lost, s.local_drops) == (0, 1)
    assert acc.finish(local_drops=0).local_drops == 0
    assert acc.finish(local_drops=-3).lost == 1  # a counter that went backwards is ignored
