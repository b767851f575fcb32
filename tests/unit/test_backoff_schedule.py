"""The retry schedule, exactly: integer nanoseconds on a fake clock, a scripted rng."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.core.backoff import Backoff, RetryPlan

MS = 1_000_000
S = 1_000_000_000


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self, t: int = 0) -> None:
        self.t = t

    def now_ns(self) -> int:
        return self.t

    def advance(self, ns: int) -> None:
        self.t += ns


def scripted(*draws: float):
    it = iter(draws)
    return lambda: next(it)


def test_exponential_with_cap() -> None:
    b = Backoff(500 * MS, 2.0, 10 * S)
    assert [b.ceiling_ns(n) for n in range(1, 8)] == [500 * MS, 1 * S, 2 * S, 4 * S, 8 * S, 10 * S, 10 * S]


def test_no_cap_and_factor_one() -> None:
    assert [Backoff(100 * MS, 3.0).delay_ns(n) for n in (1, 2, 3)] == [100 * MS, 300 * MS, 900 * MS]
    assert [Backoff(250 * MS, 1.0).delay_ns(n) for n in (1, 5, 50)] == [250 * MS] * 3


def test_huge_retry_numbers_stay_at_the_cap() -> None:
    assert Backoff(1 * S, 10.0, 30 * S).delay_ns(100_000) == 30 * S


def test_full_jitter_scales_by_the_rng() -> None:
    b = Backoff(1 * S, 2.0, 10 * S, jitter=True)
    rng = scripted(0.5, 0.0, 1.0, 0.25)
    assert [b.delay_ns(n, rng) for n in (1, 2, 3, 4)] == [500 * MS, 0, 4 * S, 2 * S]


def test_jitter_needs_an_rng_and_a_sane_draw() -> None:
    with pytest.raises(ValueError):
        Backoff(1 * S, jitter=True).delay_ns(1)
    with pytest.raises(ValueError):
        Backoff(1 * S, jitter=True).delay_ns(1, lambda: 1.5)
    with pytest.raises(ValueError):
        Backoff(1 * S, factor=0.5)
    with pytest.raises(ValueError):
        Backoff(1 * S).delay_ns(0)


def test_retries_counted_exactly() -> None:
    plan = RetryPlan(Backoff(500 * MS, 2.0, 10 * S), retries=3, deadline_ns=100 * S)
    # Attempts that fail at once: start, +0.5, +1, +2 -> 4 attempts (1 + 3 retries).
    assert plan.schedule_ns(0) == [0, 500 * MS, 1500 * MS, 3500 * MS]
    assert RetryPlan(Backoff(S), retries=0, deadline_ns=10 * S).schedule_ns(0) == [0]


def test_never_past_the_deadline() -> None:
    plan = RetryPlan(Backoff(500 * MS, 2.0, 10 * S), retries=10, deadline_ns=2 * S)
    assert plan.schedule_ns(0) == [0, 500 * MS, 1500 * MS]  # the next would start at 3.5 s
    assert plan.next_attempt_ns(3, 1500 * MS) is None
    # An attempt's timeout is cut at the deadline, and never negative.
    assert plan.attempt_timeout_ns(2 * S, 1500 * MS) == 500 * MS
    assert plan.attempt_timeout_ns(2 * S, 3 * S) == 0
    # A start exactly at the deadline is not made.
    exact = RetryPlan(Backoff(1 * S, 1.0), retries=None, deadline_ns=2 * S)
    assert exact.schedule_ns(0) == [0, 1 * S]


def test_attempt_durations_push_the_schedule() -> None:
    # Each attempt times out after 1 s; deadline 5 s: 0 (fails 1.0) +0.5 -> 1.5 (fails 2.5) +1 -> 3.5
    # (its timeout is cut to 1.5 s, fails at 5.0) -> nothing more.
    plan = RetryPlan(Backoff(500 * MS, 2.0), retries=None, deadline_ns=5 * S)
    assert plan.schedule_ns(0, attempt_ns=1 * S) == [0, 1500 * MS, 3500 * MS]


def test_wait_mode_makes_a_last_call_before_the_deadline() -> None:
    plan = RetryPlan(Backoff(1 * S, 2.0, 2 * S), retries=None, deadline_ns=4 * S, last_call_ns=250 * MS)
    # 0, +1 -> 1, +2 -> 3, then +2 would be 5 >= 4: one last attempt at 3.75 instead of stopping.
    assert plan.schedule_ns(0) == [0, 1 * S, 3 * S, 3750 * MS]


def test_driven_by_a_fake_clock_like_the_prober() -> None:
    """The loop the probers run, replayed on a fake clock: when each attempt starts."""
    clock = FakeClock(10 * S)
    plan = RetryPlan(Backoff(200 * MS, 2.0, 1 * S, jitter=True), retries=5, deadline_ns=clock.now_ns() + 3 * S)
    rng = scripted(1.0, 0.5, 1.0, 1.0, 1.0)
    starts, attempts = [], 0
    while True:
        attempts += 1
        starts.append(clock.now_ns() - 10 * S)
        timeout = plan.attempt_timeout_ns(300 * MS, clock.now_ns())
        clock.advance(timeout)  # every attempt times out
        nxt = plan.next_attempt_ns(attempts, clock.now_ns(), rng)
        if nxt is None:
            break
        clock.advance(nxt - clock.now_ns())
    # delays 0.2, 0.2 (0.4 * 0.5), 0.8, 1.0 (capped); each attempt lasts 0.3 s
    assert starts == [0, 500 * MS, 1000 * MS, 2100 * MS]
    assert attempts == 4
    assert clock.now_ns() - 10 * S <= 3 * S


@given(base=st.integers(0, 10 * S), factor=st.floats(1.0, 10.0), cap=st.integers(0, 60 * S),
       retries=st.none() | st.integers(0, 50), deadline=st.integers(1, 120 * S),
       attempt=st.integers(0, 5 * S), draws=st.lists(st.floats(0.0, 1.0), min_size=60, max_size=60),
       jitter=st.booleans())
def test_schedule_properties(base: int, factor: float, cap: int, retries: int | None, deadline: int,
                             attempt: int, draws: list[float], jitter: bool) -> None:
    b = Backoff(base, factor, cap, jitter)
    # Un-jittered delays never shrink and never pass the cap.
    ceilings = [b.ceiling_ns(n) for n in range(1, 40)]
    assert ceilings == sorted(ceilings) and max(ceilings) <= cap
    plan = RetryPlan(b, retries, deadline)
    it = iter(draws)
    starts = plan.schedule_ns(0, attempt, rng=lambda: next(it, 0.5), limit=50)
    assert starts[0] == 0
    assert all(s < deadline for s in starts)  # never past the deadline
    assert starts == sorted(starts)
    if retries is not None:
        assert len(starts) <= retries + 1
