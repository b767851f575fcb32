"""The responsiveness algorithm, fed exact byte counts and probe samples on a fake clock."""

from __future__ import annotations

import pytest

from netkit.core.responsiveness_algo import (
    NS,
    Band,
    Confidence,
    DirectionRun,
    ProbeKind,
    ProbeSample,
    Stage,
    foreign_latency_ms,
    normalize_tls_ms,
    percentile,
    probe_pairs_per_s,
    rpm_band,
    rpm_from,
    stable,
    trimmed_mean,
    unsent_allowance,
)
from netkit.core.responsiveness_config import AlgorithmParams, ResponsivenessConfig, stage_budget_s


def test_trimmed_mean_is_one_sided() -> None:
    samples = [float(x) for x in range(1, 21)]  # 20 samples: 95% keeps the lowest 19
    assert trimmed_mean(samples) == pytest.approx(sum(range(1, 20)) / 19)
    assert trimmed_mean([5.0, 1000.0], 95) == 5.0  # at least one kept, the slow one trimmed
    assert trimmed_mean([7.0]) == 7.0
    assert trimmed_mean([]) is None


def test_rpm_formulas_tls_and_tcp_only() -> None:
    # TLS: foreign 60000 / mean(10, 20, 30) = 3000; loaded 60000 / 40 = 1500; RPM the average
    assert rpm_from(10, 20, 30, 40) == pytest.approx((3000 + 1500) / 2)
    # TCP only: foreign 60000 / mean(10, 30) = 3000 (no zero substituted for tls_f)
    assert rpm_from(10, None, 30, 40) == pytest.approx((3000 + 1500) / 2)
    assert rpm_from(None, None, None, 60) == pytest.approx(1000)  # self probes only
    assert rpm_from(None, None, None, None) is None
    assert foreign_latency_ms(10, None, 30) == 20


def test_tls_normalized_by_round_trips() -> None:
    assert normalize_tls_ms(10.0, "TLSv1.3") == 10.0
    assert normalize_tls_ms(10.0, "TLSv1.2") == 5.0


@pytest.mark.parametrize(("rpm", "band"), [(0, Band.POOR), (299.9, Band.POOR), (300, Band.FAIR),
                                           (999, Band.FAIR), (1000, Band.GOOD), (5999, Band.GOOD),
                                           (6000, Band.EXCELLENT)])
def test_bands(rpm: float, band: Band) -> None:
    assert rpm_band(rpm) is band


def test_percentile_and_stability() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0], 90) == pytest.approx(1.9)
    assert stable([100, 100, 101, 100], 4, 0.05)
    assert not stable([50, 80, 100, 100], 4, 0.05)
    assert not stable([100, 100, 100], 4, 0.05)  # fewer than MAD values


def test_probe_rate_bounded_by_mps_and_ptc() -> None:
    p = AlgorithmParams()
    assert probe_pairs_per_s(10e9, p) == 100  # MPS
    # 20 Mbit/s: 5% is 125,000 B/s, a pair is 6,000 B: about 20.8 pairs/s
    assert probe_pairs_per_s(20e6, p) == pytest.approx(20.83, rel=1e-3)
    assert probe_pairs_per_s(None, p) == 10


def _probes(run: DirectionRun, at_ns: int, rtt_ms: float, n: int = 10) -> None:
    for _ in range(n):
        run.add_probe(ProbeSample(ProbeKind.FOREIGN, at_ns, rtt_ms, rtt_ms, rtt_ms))
        run.add_probe(ProbeSample(ProbeKind.SELF, at_ns, rtt_ms))


def test_state_machine_ramps_saturates_then_stabilizes() -> None:
    p = AlgorithmParams()
    run = DirectionRun("download", p, start_ns=0)
    goodput = [10, 20, 30] + [40] * 13  # MB per interval: ramp, then flat
    adds = []
    t = 0
    for mb in goodput:
        t += NS
        _probes(run, t, 50.0)
        d = run.end_interval(t, mb * 1_000_000)
        adds.append(d.add)
        if d.done:
            break
    assert run.goodput_stable and run.rpm_stable
    assert d.done and run.stage is Stage.DONE
    # one connection added per interval while goodput was not stable, none after
    first_rpm_interval = next(i for i, r in enumerate(run.intervals) if r.stage is Stage.RESPONSIVENESS)
    assert adds[:first_rpm_interval - 1] == [1] * (first_rpm_interval - 1)
    assert all(a == 0 for a in adds[first_rpm_interval:])
    assert run.confidence(Stage.GOODPUT) is Confidence.HIGH
    assert run.confidence(Stage.RESPONSIVENESS) is Confidence.HIGH
    stats = run.final_stats()
    assert stats.rpm == pytest.approx(1200)  # 60000 / 50 ms
    assert run.goodput_bps == pytest.approx(320e6)


def test_stage_limit_gives_low_or_medium_confidence() -> None:
    p = AlgorithmParams(stage_max_s=2.0)
    run = DirectionRun("upload", p, start_ns=0)
    t = 0
    for mb in (1, 5, 25):  # never stable
        t += NS
        _probes(run, t, 100.0)
        d = run.end_interval(t, mb * 1_000_000)
    assert run.stage is Stage.RESPONSIVENESS and not run.goodput_stable
    assert run.confidence(Stage.GOODPUT) is Confidence.LOW  # ended before MAD intervals
    assert not d.done
    while not d.done:
        t += NS
        _probes(run, t, 100.0 + t / NS * 30)
        d = run.end_interval(t, 25_000_000)
    assert run.confidence(Stage.RESPONSIVENESS) is Confidence.LOW


def test_max_connections_and_config_checks() -> None:
    p = AlgorithmParams(initial_connections=15, max_connections=16)
    run = DirectionRun("download", p, start_ns=0)
    d1 = run.end_interval(NS, 1)
    d2 = run.end_interval(2 * NS, 100)
    assert (d1.add, d2.add, run.connections) == (1, 0, 16)
    with pytest.raises(ValueError):
        AlgorithmParams(mad=1)
    with pytest.raises(ValueError):
        AlgorithmParams(initial_connections=20)
    assert ResponsivenessConfig("https://x").directions == ("download", "upload")
    assert stage_budget_s(40, 2) == 9.0
    assert stage_budget_s(9, 1) == 4.0
    assert stage_budget_s(6, 2) == 1.0


def test_unanswered_probes_count_in_the_last_window() -> None:
    run = DirectionRun("download", AlgorithmParams(), start_ns=0)
    run.add_probe(ProbeSample(ProbeKind.SELF, NS // 2, 10.0))
    run.end_interval(NS, 1000)
    assert run.add_unanswered(ProbeSample(ProbeKind.SELF, 2 * NS, 900.0), at_end=True)
    stats = run.final_stats()
    assert stats.self_ == 2 and stats.percentiles["http_l"]["p99"] == pytest.approx(900 - 890 * 0.01)


def test_an_unanswered_probe_counts_only_once_its_wait_says_it_is_slow() -> None:
    # Nothing answered (a server holding every self probe behind /large), then probes given up
    # after seconds and one sent 0.5 ms before the end: the seconds count, the 0.5 ms does not
    # (counted, it alone made a 100 ms queue read as 53,000 RPM).
    run = DirectionRun("download", AlgorithmParams(interval_s=1.0), start_ns=0)
    for k in range(4):
        run.add_probe(ProbeSample(ProbeKind.FOREIGN, k * NS + 1, 100.0, 100.0, 100.0))
        if k == 3:  # given up after its timeout, in the interval under way
            assert run.add_unanswered(ProbeSample(ProbeKind.SELF, 4 * NS - 1, 4500.0), at_end=False)
        run.end_interval((k + 1) * NS, 1000)
    assert not run.add_unanswered(ProbeSample(ProbeKind.SELF, 4 * NS, 0.5), at_end=True)
    assert not run.add_unanswered(ProbeSample(ProbeKind.SELF, 4 * NS, 999.0), at_end=True)
    assert run.add_unanswered(ProbeSample(ProbeKind.SELF, 4 * NS, 1000.0), at_end=True)
    stats = run.final_stats()
    assert stats.self_ == 2 and stats.tm_http_l == pytest.approx(1000.0)  # 95 % of 2 keeps the lower
    assert stats.rpm is not None and stats.rpm < 400
    # With answers of 20-30 ms in the window, one waiting longer than all of them is in the tail already.
    run2 = DirectionRun("download", AlgorithmParams(interval_s=1.0), start_ns=0)
    for ms in (20.0, 30.0, 25.0):
        run2.add_probe(ProbeSample(ProbeKind.SELF, 1, ms))
    run2.end_interval(NS, 1000)
    assert not run2.add_unanswered(ProbeSample(ProbeKind.SELF, NS, 29.0), at_end=True)
    assert run2.add_unanswered(ProbeSample(ProbeKind.SELF, NS, 31.0), at_end=True)


def test_unsent_allowance_is_5_ms_of_the_rate_as_a_power_of_two() -> None:
    # The server's: 20 Mbit/s is 12,500 bytes in 5 ms, rounded up to 16 KiB; bounded below and above
    def server(rate: float) -> int:
        return unsent_allowance(rate, floor=4096, ceiling=256 * 1024, power_of_two=True)

    assert server(20e6) == 16384
    assert server(1e6) == 4096  # 625 bytes: the floor
    assert server(10e9) == 256 * 1024  # 6.25 MB: the ceiling
    assert server(0.0) == 4096
    # The client's upload: 5 ms as it is, within 16 KiB..4 MiB
    assert unsent_allowance(100e6, floor=16384, ceiling=4 << 20) == 62500
    assert unsent_allowance(20e6, floor=16384, ceiling=4 << 20) == 16384
    assert unsent_allowance(100e9, floor=16384, ceiling=4 << 20) == 4 << 20
