"""The retry schedule: exponential backoff with a cap, optional full jitter, bounded by a deadline.

Pure code. Times are integer nanoseconds passed in by the caller, randomness comes from an injected
``rng`` returning floats in [0, 1). That keeps the schedule exact to test with a fake clock, and
the same schedule drives every prober (asyncio or the fast scan loop).

The delay before retry ``n`` (1 = the first retry) is ``min(cap, base * factor ** (n - 1))``;
with full jitter it is a uniform draw from ``[0, that]`` (the "full jitter" of the AWS
architecture blog, which spreads a thundering herd best). A retry that would start at or after
the deadline is not made: the caller gives up with the last attempt's outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Rng = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between attempts: ``base_ns * factor ** (retry - 1)``, capped at ``cap_ns``."""

    base_ns: int
    factor: float = 2.0
    cap_ns: int | None = None
    jitter: bool = False

    def __post_init__(self) -> None:
        if self.base_ns < 0:
            raise ValueError("backoff base must not be negative")
        if self.factor < 1.0:
            raise ValueError("backoff factor must be at least 1")
        if self.cap_ns is not None and self.cap_ns < 0:
            raise ValueError("backoff cap must not be negative")

    def ceiling_ns(self, retry: int) -> int:
        """The un-jittered delay before retry number ``retry`` (1-based)."""
        if retry < 1:
            raise ValueError("retry numbers start at 1")
        cap = self.cap_ns
        delay = float(self.base_ns)
        # Multiply step by step and stop at the cap: factor ** 1000 would overflow a float.
        for _ in range(retry - 1):
            if cap is not None and delay >= cap:
                break
            delay *= self.factor
            if delay > 1e30:
                break
        if cap is not None:
            delay = min(delay, float(cap))
        return int(delay)

    def delay_ns(self, retry: int, rng: Rng | None = None) -> int:
        """The delay before retry ``retry``; with jitter, ``rng()`` scales it (full jitter)."""
        ceiling = self.ceiling_ns(retry)
        if not self.jitter:
            return ceiling
        if rng is None:
            raise ValueError("jitter needs an rng")
        draw = rng()
        if not 0.0 <= draw <= 1.0:
            raise ValueError("rng must return a float in [0, 1]")
        return int(ceiling * draw)


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """How many retries, how far apart, and the absolute deadline (ns on the caller's clock).

    ``retries=None`` retries until the deadline (the ``--wait`` mode). ``last_call_ns``: when
    the next delay would reach past the deadline, make one last attempt that long before it
    instead of giving up early (``--wait`` should keep trying until the deadline, not stop short
    of it); None gives up.
    """

    backoff: Backoff
    retries: int | None
    deadline_ns: int
    last_call_ns: int | None = None

    def next_attempt_ns(self, attempts_made: int, now_ns: int, rng: Rng | None = None) -> int | None:
        """When the next attempt should start, or None: give up.

        ``attempts_made`` counts attempts so far (the first attempt is 1); ``now_ns`` is when the
        last one failed. None when the retries are used up or the start would not be before the
        deadline.
        """
        if attempts_made < 1:
            return now_ns if now_ns < self.deadline_ns else None
        if self.retries is not None and attempts_made > self.retries:
            return None
        start = now_ns + self.backoff.delay_ns(attempts_made, rng)
        if start >= self.deadline_ns:
            if self.last_call_ns is None:
                return None
            last = self.deadline_ns - self.last_call_ns
            return last if last > now_ns else None
        return start

    def attempt_timeout_ns(self, timeout_ns: int, now_ns: int) -> int:
        """An attempt's timeout, cut so the attempt cannot run past the deadline (never negative)."""
        return max(0, min(timeout_ns, self.deadline_ns - now_ns))

    def schedule_ns(self, start_ns: int, attempt_ns: int = 0, rng: Rng | None = None,
                    limit: int = 10_000) -> list[int]:
        """Start times of every attempt if each fails after ``attempt_ns`` (for docs and tests).

        Bounded by ``limit`` so an unlimited plan with zero delays cannot loop forever.
        """
        starts: list[int] = []
        at: int | None = start_ns if start_ns < self.deadline_ns else None
        while at is not None and len(starts) < limit:
            starts.append(at)
            failed_at = at + min(attempt_ns, self.attempt_timeout_ns(attempt_ns, at))
            at = self.next_attempt_ns(len(starts), failed_at, rng)
        return starts
