"""Probe states, errno mapping, the self-connect check, the summary and the exit rule."""

from __future__ import annotations

import errno

from netkit.core.probe_models import (
    ProbeResult,
    ProbeState,
    RepeatedResult,
    classify_errno,
    passed,
    same_endpoint,
    summarize,
    summarize_repeated,
)


def result(state: ProbeState, target: str = "h:1") -> ProbeResult:
    return ProbeResult(target, "h", 1, "127.0.0.1", state, 1, None, None, 1.0, None)


def test_state_names_are_the_published_ones() -> None:
    assert {s.value for s in ProbeState} == {
        "open", "closed", "timeout", "unreachable", "dns-error", "tls-error", "mismatch", "open|filtered"}


def test_errno_mapping() -> None:
    assert classify_errno(errno.ECONNREFUSED)[0] is ProbeState.CLOSED
    assert classify_errno(errno.ETIMEDOUT)[0] is ProbeState.TIMEOUT
    assert classify_errno(errno.ENETUNREACH) == (ProbeState.UNREACHABLE, "network unreachable")
    assert classify_errno(errno.EHOSTUNREACH) == (ProbeState.UNREACHABLE, "host unreachable")
    state, words = classify_errno(errno.EPROTO, "Protocol error")
    assert state is ProbeState.UNREACHABLE and words == "protocol error"


def test_self_connect_check() -> None:
    assert same_endpoint(("127.0.0.1", 40000), ("127.0.0.1", 40000))
    assert not same_endpoint(("127.0.0.1", 40001), ("127.0.0.1", 40000))
    assert not same_endpoint(("127.0.0.2", 40000), ("127.0.0.1", 40000))
    # IPv6 tuples: flowinfo and scope id do not matter.
    assert same_endpoint(("::1", 40000, 0, 0), ("::1", 40000, 5, 0))


def test_summary_counts() -> None:
    rs = [result(ProbeState.OPEN), result(ProbeState.CLOSED), result(ProbeState.OPEN_FILTERED),
          result(ProbeState.TIMEOUT)]
    s = summarize(rs)
    assert (s.total, s.open, s.failed, s.success_rate) == (4, 1, 2, 0.5)
    assert summarize([]).success_rate is None


def test_exit_rule() -> None:
    up, down = result(ProbeState.OPEN), result(ProbeState.CLOSED)
    assert passed([up, up]) and not passed([up, down])
    assert passed([up, down], any_=True) and not passed([down], any_=True)
    assert not passed([]) and not passed([], any_=True)
    assert passed([result(ProbeState.OPEN_FILTERED)])


def test_repeated_success_rate() -> None:
    rep = RepeatedResult(result(ProbeState.OPEN), 1, 1)
    rep = rep.add(result(ProbeState.CLOSED)).add(result(ProbeState.OPEN)).add(result(ProbeState.OPEN))
    assert (rep.rounds, rep.opens, rep.success_rate) == (4, 3, 0.75)
    rec = rep.record()
    assert rec["state"] == "open" and rec["rounds"] == 4 and rec["success_rate"] == 0.75
    s = summarize_repeated([rep, RepeatedResult(result(ProbeState.CLOSED), 4, 0)])
    assert (s.total, s.open, s.failed, s.success_rate) == (2, 1, 1, 0.375)


def test_cut_short_results_say_why_once() -> None:
    from netkit.core.probe_models import ProbeAttempt, cut_short_result
    from netkit.core.targets import Target

    t = Target("::1", 80)
    fresh = cut_short_result(t, 12.5, "interrupted")
    assert (fresh.target, fresh.state, fresh.attempts, fresh.error) == (
        "[::1]:80", ProbeState.TIMEOUT, 0, "interrupted before an answer")
    tried = cut_short_result(t, 12.5, "interrupted", (2, ProbeAttempt(ProbeState.CLOSED, "::1", None,
                                                                      "connection refused")))
    assert (tried.state, tried.attempts, tried.address, tried.error) == (
        ProbeState.CLOSED, 2, "::1", "interrupted; last attempt: connection refused")
    silent = cut_short_result(t, 1.0, "interrupted", (1, ProbeAttempt(ProbeState.OPEN, "::1", 50_000, None)))
    assert silent.error == "interrupted" and silent.connect_ms == 0.05


def test_record_is_the_published_object() -> None:
    from dataclasses import asdict

    r = result(ProbeState.OPEN)
    assert r.record() == {**asdict(r), "state": "open"}
    assert list(r.record()) == ["target", "host", "port", "address", "state", "attempts", "connect_ms",
                                "resolve_ms", "elapsed_ms", "error", "tls"]


def test_open_filtered_is_counted_apart_but_passes() -> None:
    from netkit.core.probe_models import passed_repeated

    s = summarize([result(ProbeState.OPEN_FILTERED), result(ProbeState.OPEN), result(ProbeState.CLOSED)])
    assert (s.open, s.open_filtered, s.failed) == (1, 1, 1)
    assert "open_filtered" not in __import__("dataclasses").asdict(s)  # not a JSON field
    tally = [RepeatedResult(result(ProbeState.OPEN), 3, 3), RepeatedResult(result(ProbeState.OPEN), 3, 2)]
    assert not passed_repeated(tally) and passed_repeated(tally, any_=True)
    assert not passed_repeated([])


def test_run_config_rules_and_round_pacing() -> None:
    from netkit.core.probe_models import (
        SCAN_THRESHOLD,
        ProbeEngine,
        ProbeOptions,
        ProbeRunConfig,
        ShowOnly,
        round_pause_ns,
    )

    plain = ProbeRunConfig(ProbeOptions())
    assert plain.streaming and plain.uses_scan(SCAN_THRESHOLD) and not plain.uses_scan(SCAN_THRESHOLD - 1)
    assert not ProbeRunConfig(ProbeOptions(udp=True)).uses_scan(10_000)
    assert not ProbeRunConfig(ProbeOptions(), wait=True).uses_scan(10_000)
    assert ProbeRunConfig(ProbeOptions(), engine=ProbeEngine.SCAN).uses_scan(1)
    assert not ProbeRunConfig(ProbeOptions(), engine=ProbeEngine.ASYNC).uses_scan(10_000)
    assert not ProbeRunConfig(ProbeOptions(), repeat=2).streaming
    only_open = ProbeRunConfig(ProbeOptions(), only=ShowOnly.OPEN)
    assert only_open.shows(True) and not only_open.shows(False) and plain.shows(False)
    assert ProbeRunConfig(ProbeOptions(concurrency=10_000)).batch_size == 40_000
    # Rounds start an interval apart; a late round is followed at once.
    assert round_pause_ns(1_000, 5_000, 5_300) == 700
    assert round_pause_ns(1_000, 5_000, 6_500) == 0
