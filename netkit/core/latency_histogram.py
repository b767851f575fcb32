"""The latency histogram of ``netkit measure requests`` (pure; samples are integer nanoseconds).

A thin wrapper around :class:`netkit.core.stats.LogHistogram` that adds what a long load run needs
and it lacks: exact min/max/sum, merging per-second histograms into the total, and an O(1)-per-bucket
bulk add. :class:`LatencyMs` is the summary the results publish as ``latency_ms``.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import repeat

from netkit.core.stats import LogHistogram

NS_PER_MS = 1_000_000


class LatencyHistogram:
    """Bounded-memory latency histogram (ns) with exact min/max/avg and merging.

    Buckets are :class:`LogHistogram`'s (``buckets_per_octave`` per doubling; 32 gives about 2 %
    relative width, about 1,400 counters for 1 ns .. 1 h). Percentiles are the upper bound of the
    bucket that holds them, clamped to the exact min and max, so p99.9 never exceeds max.
    """

    __slots__ = ("hist", "max", "min", "sum")

    def __init__(self, buckets_per_octave: int = 32) -> None:
        self.hist = LogHistogram(buckets_per_octave)
        self.min: int | None = None
        self.max: int | None = None
        self.sum = 0

    @property
    def count(self) -> int:
        return self.hist.total

    def add(self, value: int) -> None:
        self.add_many((value,))

    def add_many(self, values: Iterable[int]) -> None:
        """Add many samples at once (the load generator adds a second's worth in one call)."""
        vals = values if isinstance(values, (list, tuple)) else list(values)
        if not vals:
            return
        lo, hi = min(vals), max(vals)
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        self.sum += sum(vals)
        k = self.hist.k
        counts = self.hist.counts
        if lo >= 1:
            # LogHistogram's bucket index, int(log2(v) * k) + 1, computed by C-level maps: this
            # runs once a second over up to ~150k samples inside the load generator's process.
            for i, c in Counter(map(int, map(operator.mul, map(math.log2, vals), repeat(k)))).items():
                counts[i + 1] = counts.get(i + 1, 0) + c
        else:
            for v in vals:
                i = 0 if v < 1 else int(math.log2(v) * k) + 1
                counts[i] = counts.get(i, 0) + 1
        self.hist.total += len(vals)

    def merge(self, other: LatencyHistogram) -> None:
        if other.count == 0:
            return
        if other.hist.k != self.hist.k:
            raise ValueError("cannot merge histograms of different resolution")
        counts = self.hist.counts
        for i, c in other.hist.counts.items():
            counts[i] = counts.get(i, 0) + c
        self.hist.total += other.hist.total
        self.sum += other.sum
        assert other.min is not None and other.max is not None
        self.min = other.min if self.min is None else min(self.min, other.min)
        self.max = other.max if self.max is None else max(self.max, other.max)

    def percentile(self, p: float) -> float | None:
        v = self.hist.percentile(p)
        if v is None or self.min is None or self.max is None:
            return None
        return float(min(max(v, self.min), self.max))

    @property
    def avg(self) -> float | None:
        return None if self.count == 0 else self.sum / self.count

    def summary_ms(self) -> LatencyMs:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v / NS_PER_MS, 6)

        return LatencyMs(
            min=ms(self.min), avg=ms(self.avg), p50=ms(self.percentile(50)), p90=ms(self.percentile(90)),
            p99=ms(self.percentile(99)), p99_9=ms(self.percentile(99.9)), max=ms(self.max),
        )


@dataclass(frozen=True)
class LatencyMs:
    """``latency_ms`` in results: the same names as ``rtt_ms`` of measure latency, plus p99_9."""

    min: float | None = None
    avg: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p99_9: float | None = None
    max: float | None = None

    def to_json(self) -> dict[str, float | None]:
        """The published ``latency_ms`` object (field order as documented)."""
        return {"min": self.min, "avg": self.avg, "p50": self.p50, "p90": self.p90, "p99": self.p99,
                "p99_9": self.p99_9, "max": self.max}
