"""The one clock the I/O layer reads. The core never reads a clock: times are passed in as ns."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...


class MonotonicClock:
    """``time.perf_counter_ns``: monotonic, the finest resolution Python offers for intervals."""

    def now_ns(self) -> int:
        return time.perf_counter_ns()


def now_ns() -> int:
    return time.perf_counter_ns()


DEFAULT_CLOCK = MonotonicClock()


def wall_iso() -> str:
    """The wall clock now, for event timestamps (UTC, ms). Intervals never use this."""
    from netkit.core.units import format_wall_iso

    return format_wall_iso(time.time_ns())
