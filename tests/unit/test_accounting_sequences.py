"""Accounting with lost, duplicated, reordered and late replies; per-direction loss."""

from __future__ import annotations

import pytest

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
