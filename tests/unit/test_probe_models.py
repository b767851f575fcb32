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


def test_state_names_are_the_issues() -> None:
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
