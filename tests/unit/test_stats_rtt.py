"""RTT statistics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from netkit.core import stats


def test_ping_mdev_is_population_std() -> None:
    # 1, 2, 3, 4: mean 2.5, squared deviations 2.25+0.25+0.25+2.25 = 5, /4 = 1.25.
    s = stats.summarize_rtts([1, 2, 3, 4])
    assert (s.min, s.avg, s.max) == (1, 2.5, 4)
    assert s.mdev == pytest.approx(math.sqrt(1.25))


def test_percentiles_linear_interpolation() -> None:
    xs = [10, 20, 30, 40, 50]
    # h = (n-1) p / 100: p50 -> 2 -> 30; p90 -> 3.6 -> 40 + 0.6*10 = 46; p95 -> 3.8 -> 48; p99 -> 3.96 -> 49.6
    s = stats.summarize_rtts(xs)
    assert s.p50 == 30
    assert s.p90 == pytest.approx(46)
    assert s.p95 == pytest.approx(48)
    assert s.p99 == pytest.approx(49.6)
    assert stats.percentile([1, 2], 50) == 1.5
    assert stats.percentile([7], 99) == 7
    assert stats.percentile([], 50) is None
    with pytest.raises(ValueError):
        stats.percentile([1], 101)


def test_rfc3550_jitter_by_hand() -> None:
    # D = 10, -10, 30 -> J1 = 10/16 = 0.625; J2 = 0.625 + (10 - 0.625)/16 = 1.2109375;
    # J3 = 1.2109375 + (30 - 1.2109375)/16 = 3.010253906...
    assert stats.rfc3550_jitter([100, 110, 100, 130]) == pytest.approx(3.01025390625)
    assert stats.rfc3550_jitter([5]) is None


def test_ipdv_mean_absolute_difference() -> None:
    assert stats.ipdv([100, 110, 100, 130]) == pytest.approx((10 + 10 + 30) / 3)
    assert stats.ipdv([]) is None


def test_empty_summary_is_all_none() -> None:
    s = stats.summarize_rtts([])
    assert s.count == 0
    assert all(v is None for v in s.scaled(1e-6).values())


def test_summary_scaled_to_ms() -> None:
    s = stats.summarize_rtts([1_000_000, 3_000_000])
    assert s.scaled(1e-6)["avg"] == pytest.approx(2.0)


def test_log_histogram_bounded_and_close() -> None:
    h = stats.LogHistogram()
    for v in range(1, 100_001):
        h.add(v * 1000)
    assert len(h.counts) < 200
    p50 = h.percentile(50)
    assert p50 is not None and 50_000_000 <= p50 <= 50_000_000 * 1.1
    assert stats.LogHistogram().percentile(50) is None


def test_equal_width_histogram() -> None:
    rows = stats.histogram([1, 2, 3, 4, 10], bins=3)
    assert [c for _, _, c in rows] == [3, 1, 1]  # width 3: [1,4) [4,7) [7,10]
    assert stats.histogram([5, 5], bins=4) == [(5.0, 5.0, 2)]


def test_streaming_stats_match_exact_ones() -> None:
    import random

    rng = random.Random(7)
    xs = [rng.randint(10_000, 90_000) for _ in range(5000)]
    st = stats.StreamingStats()
    for x in xs:
        st.add(x)
    exact, streamed = stats.summarize_rtts(xs), st.summary()
    for name in ("min", "avg", "max", "mdev", "jitter", "ipdv"):
        assert getattr(streamed, name) == pytest.approx(getattr(exact, name), rel=1e-9)
    for name in ("p50", "p90", "p95", "p99"):  # histogram bucket upper bound: within ~9% above
        assert getattr(exact, name) <= getattr(streamed, name) <= getattr(exact, name) * 1.1
