"""RTT statistics with stated definitions. Pure: samples are integer nanoseconds passed in.

- ``min``, ``avg``, ``max``; ``mdev`` is the POPULATION standard deviation (divide by n), as
  iputils ping prints it (mtr's StDev is the sample one; we follow ping).
- Percentiles use linear interpolation between closest ranks (numpy's default "linear",
  Hyndman & Fan type 7, Excel PERCENTILE.INC): for sorted ``x`` of length n and p in [0, 100],
  ``h = (n - 1) * p / 100``; result ``x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)])``.
- ``jitter`` is the RFC 3550 (section 6.4.1, A.8) estimator applied to consecutive RTTs:
  ``D = RTT(i) - RTT(i-1)``, ``J += (|D| - J) / 16``, starting at J = 0 with the first pair.
- ``ipdv`` is the mean absolute difference of consecutive RTTs (mtr's "Javg").

Consecutive means in the order given (the order replies were recorded).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILES = (50, 90, 95, 99)


def percentile(sorted_samples: Sequence[float], p: float) -> float | None:
    """Linear-interpolation percentile of an already sorted sequence (None when empty)."""
    if not 0 <= p <= 100:
        raise ValueError("percentile must be within 0..100")
    n = len(sorted_samples)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_samples[0])
    h = (n - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    frac = h - lo
    a, b = sorted_samples[lo], sorted_samples[hi]
    return a + frac * (b - a)


def mean(samples: Sequence[float]) -> float | None:
    return None if not samples else math.fsum(samples) / len(samples)


def pstdev(samples: Sequence[float]) -> float | None:
    """Population standard deviation (ping's mdev); None when empty."""
    n = len(samples)
    if n == 0:
        return None
    m = math.fsum(samples) / n
    return math.sqrt(math.fsum((x - m) ** 2 for x in samples) / n)


def rfc3550_jitter(samples: Sequence[float]) -> float | None:
    """RFC 3550 interarrival-jitter estimator over consecutive values; None with fewer than 2."""
    if len(samples) < 2:
        return None
    j = 0.0
    prev = samples[0]
    for x in samples[1:]:
        j += (abs(x - prev) - j) / 16.0
        prev = x
    return j


def ipdv(samples: Sequence[float]) -> float | None:
    """Mean absolute difference of consecutive values; None with fewer than 2."""
    if len(samples) < 2:
        return None
    return math.fsum(abs(b - a) for a, b in itertools.pairwise(samples)) / (len(samples) - 1)


@dataclass(frozen=True)
class RttSummary:
    """Statistics of a sample set, in the samples' unit (ns for RTTs). None where undefined."""

    count: int
    min: float | None
    avg: float | None
    max: float | None
    mdev: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    jitter: float | None
    ipdv: float | None

    def scaled(self, factor: float) -> dict[str, float | None]:
        """Every statistic (not count) multiplied by ``factor``: ns -> ms is ``1e-6``."""
        out: dict[str, float | None] = {}
        for name in ("min", "avg", "max", "mdev", "p50", "p90", "p95", "p99", "jitter", "ipdv"):
            v = getattr(self, name)
            out[name] = None if v is None else v * factor
        return out


def summarize_rtts(samples: Sequence[float]) -> RttSummary:
    """All statistics of ``samples`` (in arrival order) in one pass over a sorted copy."""
    ordered = sorted(samples)
    n = len(samples)
    if n == 0:
        return RttSummary(0, None, None, None, None, None, None, None, None, None, None)
    return RttSummary(
        count=n,
        min=float(ordered[0]),
        avg=mean(samples),
        max=float(ordered[-1]),
        mdev=pstdev(samples),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
        jitter=rfc3550_jitter(samples),
        ipdv=ipdv(samples),
    )


class LogHistogram:
    """Bounded-memory histogram of positive integers (ns): buckets grow geometrically.

    ``buckets_per_octave`` buckets per doubling (8 -> about 9% relative width), so 1 ns .. 1 hour
    needs about 340 counters whatever the number of samples. Percentiles from it are approximate
    (within one bucket); exact ones come from :func:`summarize_rtts` on kept samples.
    """

    def __init__(self, buckets_per_octave: int = 8) -> None:
        self.k = buckets_per_octave
        self.counts: dict[int, int] = {}
        self.total = 0

    def _index(self, value: float) -> int:
        return 0 if value < 1 else int(math.log2(value) * self.k) + 1

    def bounds(self, index: int) -> tuple[float, float]:
        """The [low, high) value range of a bucket."""
        if index == 0:
            return 0.0, 1.0
        return 2 ** ((index - 1) / self.k), 2 ** (index / self.k)

    def add(self, value: float, count: int = 1) -> None:
        i = self._index(value)
        self.counts[i] = self.counts.get(i, 0) + count
        self.total += count

    def percentile(self, p: float) -> float | None:
        """Upper bound of the bucket holding the p-th percentile (None when empty)."""
        if self.total == 0:
            return None
        rank = max(1, math.ceil(self.total * p / 100.0))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                return self.bounds(i)[1]
        return self.bounds(max(self.counts))[1]


class StreamingStats:
    """The statistics of :func:`summarize_rtts` in O(1) memory, for streams too long to keep.

    min, max, avg and mdev (Welford's algorithm, population variance), jitter and ipdv are exact;
    percentiles come from a :class:`LogHistogram` (the upper bound of the bucket, within ~9%).
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean = 0.0
        self._m2 = 0.0
        self.min: float | None = None
        self.max: float | None = None
        self._prev: float | None = None
        self._jitter = 0.0
        self._absdiff = 0.0
        self.hist = LogHistogram()

    def add(self, x: float) -> None:
        self.count += 1
        delta = x - self._mean
        self._mean += delta / self.count
        self._m2 += delta * (x - self._mean)
        if self.min is None or x < self.min:
            self.min = x
        if self.max is None or x > self.max:
            self.max = x
        if self._prev is not None:
            d = abs(x - self._prev)
            self._jitter += (d - self._jitter) / 16.0
            self._absdiff += d
        self._prev = x
        self.hist.add(x)

    def summary(self) -> RttSummary:
        n = self.count
        if n == 0:
            return summarize_rtts([])
        h = self.hist
        return RttSummary(
            count=n, min=float(self.min), avg=self._mean, max=float(self.max),  # type: ignore[arg-type]
            mdev=math.sqrt(self._m2 / n),
            p50=h.percentile(50), p90=h.percentile(90), p95=h.percentile(95), p99=h.percentile(99),
            jitter=self._jitter if n >= 2 else None, ipdv=self._absdiff / (n - 1) if n >= 2 else None,
        )


def histogram(samples: Sequence[float], bins: int = 10) -> list[tuple[float, float, int]]:
    """Equal-width bins over [min, max]: ``[(low, high, count), ...]`` (for the small chart)."""
    if not samples:
        return []
    lo, hi = min(samples), max(samples)
    if hi == lo:
        return [(float(lo), float(hi), len(samples))]
    width = (hi - lo) / bins
    counts = [0] * bins
    for x in samples:
        i = min(int((x - lo) / width), bins - 1)
        counts[i] += 1
    return [(lo + i * width, lo + (i + 1) * width, c) for i, c in enumerate(counts)]
