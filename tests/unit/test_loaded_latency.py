"""``netkit.core.loaded_latency``: phases, their statistics and the verdict, exact on made-up samples."""

from __future__ import annotations

import pytest

from netkit.core.loaded_latency import (
    LoadedLatencyConfig,
    Phase,
    PhaseRate,
    PhaseWindow,
    ProbeChoice,
    ProbeSample,
    check_added_latency,
    flag_phase,
    format_added,
    in_window,
    parse_directions,
    phase_json,
    probe_load,
    probe_wire_bytes,
    summarize_phases,
)

MS = 1_000_000
S = 1_000_000_000


def _samples(start_ns: int, rtts_ms: list[float | None], every_ns: int = 100 * MS) -> list[ProbeSample]:
    return [ProbeSample(start_ns + i * every_ns, None if r is None else int(r * MS)) for i, r in enumerate(rtts_ms)]


def test_directions_parse_in_order_with_short_and_long_words() -> None:
    assert parse_directions("down,up,bidir") == (Phase.DOWNLOAD, Phase.UPLOAD, Phase.BIDIR)
    assert parse_directions(" Upload , download ") == (Phase.UPLOAD, Phase.DOWNLOAD)
    for bad, says in (("sideways", "unknown direction 'sideways'"), ("up,up", "given twice"), (",", "no direction")):
        with pytest.raises(ValueError, match=says):
            parse_directions(bad)


def test_the_throughput_flags_choose_one_phase() -> None:
    assert flag_phase(False, False) == Phase.UPLOAD
    assert flag_phase(True, False) == Phase.DOWNLOAD
    assert flag_phase(False, True) == Phase.BIDIR


def test_config_checks_and_total_time() -> None:
    cfg = LoadedLatencyConfig(probe="icmp", idle_s=2.0, phases=("download", "upload"))  # type: ignore[arg-type]
    assert cfg.probe is ProbeChoice.ICMP and cfg.phases == (Phase.DOWNLOAD, Phase.UPLOAD)
    assert cfg.total_s(5.0) == 12.0
    with pytest.raises(ValueError):
        LoadedLatencyConfig(phases=(Phase.IDLE,))
    with pytest.raises(ValueError):
        LoadedLatencyConfig(interval_s=0)


def test_a_probe_belongs_to_the_window_that_holds_its_send_time() -> None:
    w = PhaseWindow(Phase.UPLOAD, 1 * S, 2 * S)
    samples = [ProbeSample(t, 1) for t in (S - 1, S, 2 * S - 1, 2 * S)]
    assert [s.sent_ns for s in in_window(samples, w)] == [S, 2 * S - 1]


def test_phases_percentiles_loss_and_added_latency() -> None:
    origin = 10 * S
    idle = _samples(origin, [1.0, 2.0, 3.0, 4.0, 5.0])  # p50 3, p90 4.6
    # between the windows: setup probes that count nowhere
    gap = _samples(origin + 600 * MS, [50.0, 50.0])
    loaded = _samples(origin + S, [40.0, 41.0, 42.0, None, 43.0, 44.0])  # 5 answered, 1 lost
    windows = [PhaseWindow(Phase.IDLE, origin, origin + 500 * MS),
               PhaseWindow(Phase.DOWNLOAD, origin + S, origin + 2 * S)]
    rates = {Phase.DOWNLOAD: PhaseRate(19.5e6)}
    idle_p, down = summarize_phases(windows, idle + gap + loaded, origin, rates)
    assert (idle_p.phase, idle_p.probes, idle_p.lost, idle_p.p50_ms, idle_p.p90_ms) == (Phase.IDLE, 5, 0, 3.0, 4.6)
    assert idle_p.added_p50_ms is None and idle_p.rate is None
    assert (down.probes, down.received, down.lost) == (6, 5, 1)
    assert down.loss_percent == pytest.approx(16.667)
    assert (down.p50_ms, down.p90_ms, down.min_ms, down.max_ms) == (42.0, 43.6, 40.0, 44.0)
    assert down.p99_ms == pytest.approx(43.96)
    assert down.added_p50_ms == 39.0 and down.added_p90_ms == 39.0
    assert (down.start_s, down.end_s) == (1.0, 2.0)
    assert down.rate == PhaseRate(19.5e6)
    j = phase_json(down)
    assert j["phase"] == "download" and j["added_ms"] == {"p50": 39.0, "p90": 39.0}
    assert j["rtt_ms"]["p50"] == 42.0 and j["bits_per_second"] == 19.5e6
    assert phase_json(idle_p)["added_ms"] is None


def test_a_phase_without_answers_has_no_figures() -> None:
    windows = [PhaseWindow(Phase.IDLE, 0, S), PhaseWindow(Phase.UPLOAD, S, 2 * S)]
    _idle, up = summarize_phases(windows, _samples(0, [1.0]) + _samples(S, [None, None]), 0, {})
    assert (up.probes, up.lost, up.p50_ms, up.added_p50_ms, up.loss_percent) == (2, 2, None, None, 100.0)
    empty = summarize_phases([PhaseWindow(Phase.IDLE, 0, S)], [], 0, {})[0]
    assert empty.probes == 0 and empty.loss_percent is None


def test_probe_bytes_and_their_share_of_the_slowest_rate() -> None:
    assert probe_wire_bytes(ProbeChoice.ICMP) == 168
    assert probe_wire_bytes(ProbeChoice.ICMP, v6=True) == 208
    assert probe_wire_bytes(ProbeChoice.TCP_CONNECT, port_open=False) == 100
    assert probe_wire_bytes(ProbeChoice.ECHO) == 176
    windows = [PhaseWindow(Phase.IDLE, 0, S), PhaseWindow(Phase.BIDIR, S, 2 * S)]
    phases = summarize_phases(windows, [], 0, {Phase.BIDIR: PhaseRate(30e6, 20e6, 10e6)})
    load = probe_load(168, 0.1, phases)
    assert load.bits_per_second == 13_440.0
    assert load.share_percent == pytest.approx(0.1344)  # of the slower direction (10 Mbit/s)
    assert not load.over_limit
    slow = probe_load(168, 0.1, summarize_phases(windows, [], 0, {Phase.BIDIR: PhaseRate(1e6)}))
    assert slow.over_limit
    assert probe_load(168, 0.1, phases[:1]).share_percent is None  # no loaded phase: no yardstick


def test_max_added_latency_verdict() -> None:
    origin = 0
    windows = [PhaseWindow(Phase.IDLE, 0, S), PhaseWindow(Phase.UPLOAD, S, 2 * S),
               PhaseWindow(Phase.DOWNLOAD, 2 * S, 3 * S)]
    samples = _samples(0, [1.0] * 5) + _samples(S, [11.0] * 5) + _samples(2 * S, [41.0] * 5)
    phases = summarize_phases(windows, samples, origin, {})
    assert check_added_latency(phases, None).passed
    ok = check_added_latency(phases, 40.0)
    assert ok.passed and ok.max_added_latency_ms == 40.0
    bad = check_added_latency(phases, 30.0)
    assert not bad.passed
    assert bad.failed == ("download: added latency +40.0 ms is above --max-added-latency 30.0 ms",)
    lost = summarize_phases(windows[:2], _samples(0, [1.0]) + _samples(S, [None]), origin, {})
    assert check_added_latency(lost, 30.0).failed == ("upload: added latency unknown (no RTT measured)",)


@pytest.mark.parametrize(("value", "text"), [(37.612, "+37.6 ms"), (0.004, "+0.004 ms"), (-0.12, "-0.120 ms"),
                                             (1234.5, "+1,234 ms"), (0.0, "+0.000 ms"), (None, "-"),
                                             (0.0000123, "+0.000 ms")])
def test_added_latency_reads_with_its_sign_and_no_exponent(value: float | None, text: str) -> None:
    assert format_added(value) == text
