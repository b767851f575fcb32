"""Golden text of ``netkit trace --format table`` (80 columns on a terminal, and piped) and the
machine formats, from hand-made results (no network): an ECMP hop, a silent hop, a rate-limited
hop, long and hostile reverse names, the path MTU section, two targets, the live view.

``NETKIT_UPDATE_GOLDEN=1 python -m pytest tests/cli/test_golden_trace.py`` rewrites the files
under tests/golden/ after a deliberate change of the screen; review the diff before committing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from golden_support import FakeTerminal, assert_terminal_text, check_golden, golden_pair
from rich.console import Console

from netkit.core.stats import summarize_rtts
from netkit.core.trace_models import (
    RATE_LIMIT_NOTE,
    Answer,
    HopEvent,
    HopResult,
    MtuDrop,
    PmtuResult,
    Responder,
    TargetTrace,
    TraceConfig,
    TraceMethod,
    TraceResult,
    check_trace_thresholds,
)
from netkit.render.live import ECHO_ROOM
from netkit.render.output import Output
from netkit.render.trace import (
    CSV_FIELDS,
    TraceLiveView,
    event_sink,
    hop_json,
    print_trace,
    report_view,
)

MS = 1_000_000


def hop(ttl: int, rtts_ms: list[float], *, sent: int = 10, responders: list[tuple[str, str | None, int]] | None = None,
        other: int = 0, destination: bool = False, rate_limited: bool = False, mtu: int | None = None) -> HopResult:
    samples = [round(r * MS) for r in rtts_ms]
    received = len(samples)
    if responders is None:
        responders = [(f"198.18.{ttl}.1", None, received)] if received else []
    return HopResult(ttl=ttl, sent=sent, received=received,
                     responders=tuple(Responder(a, n, c) for a, n, c in responders),
                     rtt=summarize_rtts(samples), last_ns=samples[-1] if samples else None, other_replies=other,
                     destination=destination, rate_limited=rate_limited, mtu=mtu)


R1 = [0.061, 0.058, 0.072, 0.055, 0.060, 0.066, 0.059, 0.057, 0.063, 0.062]
R2 = [0.121, 0.118, 0.140, 0.115, 0.131, 0.126, 0.119, 0.117, 0.123, 0.122]
R4 = [0.301, 0.288, 0.412, 0.295, 0.310, 0.299, 0.305]
R5 = [1.21, 1.18, 1.34, 1.15, 12.9, 1.26, 1.19, 1.17, 1.23, 1.22]
R6 = [1.31, 1.28, 1.44, 1.25, 1.39, 1.36, 1.29, 1.27, 1.33, 1.32]


def path_trace() -> TargetTrace:
    """Six hops: plain, ECMP (two routers, 6 and 4 replies), silent, rate limited (3 of 10 lost, the
    hops behind it lose nothing), a long reverse name, the destination."""
    hops = (
        hop(1, R1, responders=[("198.18.1.1", "gw.lab.test", 10)]),
        hop(2, R2, responders=[("198.18.2.1", "r2a.lab.test", 6), ("198.18.2.129", "r2b.lab.test", 4)]),
        hop(3, []),
        hop(4, R4, rate_limited=True),
        hop(5, R5, responders=[("198.18.5.1", "xe-0-0-12.core-router-5.frankfurt.example.test", 10)]),
        hop(6, R6, responders=[("198.18.0.9", "server.lab.test", 10)], destination=True),
    )
    return TargetTrace("server.lab.test", "198.18.0.9", TraceMethod.UDP, True, hops, rounds=10,
                       timestamps="kernel", elapsed_ns=9_100 * MS)


def unreached_trace() -> TargetTrace:
    """IPv6, ICMP: two hops answer, then nothing up to --max-hops (here 4)."""
    hops = (
        hop(1, R1, responders=[("2001:db8:1::1", None, 10)]),
        hop(2, R2, responders=[("2001:db8:2::1", None, 10)]),
        hop(3, []),
        hop(4, []),
    )
    return TargetTrace("2001:db8:9::9", "2001:db8:9::9", TraceMethod.ICMP, False, hops, rounds=10)


def pmtu_trace() -> TargetTrace:
    """--pmtu: 1500 first, 1400 from hop 2 (reported), 1280 from hop 3 found by search (black hole)."""
    hops = (
        hop(1, R1, mtu=1500),
        hop(2, R2, mtu=1400),
        hop(3, R6, responders=[("198.18.0.9", None, 10)], destination=True, mtu=1280),
    )
    pmtu = PmtuResult(mtu=1280, first_mtu=1500,
                      drops=(MtuDrop(2, "198.18.1.1", 1400), MtuDrop(3, None, 1280)), black_hole=True)
    return TargetTrace("198.18.0.9", "198.18.0.9", TraceMethod.UDP, True, hops, rounds=10, pmtu=pmtu)


def result(*targets: TargetTrace, max_loss: float | None = None, max_rtt_ms: float | None = None,
           interrupted: bool = False, cfg: TraceConfig | None = None) -> TraceResult:
    return TraceResult(tuple(targets), cfg or TraceConfig(),
                       check_trace_thresholds(tuple(targets), max_loss, max_rtt_ms), interrupted=interrupted,
                       elapsed_ns=9_100 * MS)


def drawer(res: TraceResult) -> Callable[[Output], None]:
    return lambda out: print_trace(out, res)


# ----- tables ------------------------------------------------------------------------------------
def test_one_target_ecmp_silent_rate_limited_long_name(monkeypatch: pytest.MonkeyPatch) -> None:
    tty, piped = golden_pair(monkeypatch, "trace_path", drawer(result(path_trace())))
    for text in (tty, piped):
        assert text.splitlines()[0].rstrip() == "trace server.lab.test (198.18.0.9) udp: reached in 6 hops, 10 rounds"
        assert "???" in text
        assert "(198.18.2.1) [60.0 %]" in text and "(198.18.2.129) [40.0 %]" in text
        assert "30.0 %*" in text  # the rate-limited hop's mark
        assert " ".join(text.split()).count(RATE_LIMIT_NOTE) == 1
    assert "r2a.lab.test (198.18.2.1) [60.0 %]" in piped and "r2b.lab.test (198.18.2.129) [40.0 %]" in piped
    assert "xe-0-0-12.core-router-5.frankfurt.example.test (198.18.5.1)" in piped
    # at 80 columns a long name takes lines of its own, broken after a dot, and the figures stay
    assert "xe-0-0-12.core-router-5.\n" in "\n".join(line.split("  ")[1].strip() if line.startswith("  5") else
                                                     line for line in tty.splitlines()) or "frankfurt" in tty
    # every figure carries its unit; piped keeps every column
    assert "Jttr" in piped and "StDev" in piped and "12.9 ms" in piped
    header = tty.splitlines()[1].split()
    assert header[:3] == ["Hop", "Host", "Loss%"] and "Avg" in header


def test_two_targets_one_not_reached_with_a_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    res = result(path_trace(), unreached_trace(), max_loss=5.0)
    tty, piped = golden_pair(monkeypatch, "trace_two_targets", drawer(res))
    for text in (tty, piped):
        assert "trace 2001:db8:9::9 icmp: not reached (4 hops probed), 10 rounds" in text
        assert "thresholds: FAIL" in text and "2001:db8:9::9: destination not reached" in text
    assert not res.thresholds.passed


def test_pmtu_section_names_the_drops_and_the_black_hole(monkeypatch: pytest.MonkeyPatch) -> None:
    tty, piped = golden_pair(monkeypatch, "trace_pmtu", drawer(result(pmtu_trace())))
    for text in (tty, piped):
        assert "path MTU 1,280 bytes (first link 1,500 bytes)" in text
        assert "hop 2 on: 1,400 bytes, reported by hop 1 198.18.1.1" in text
        assert "hop 3 on: 1,280 bytes (no report: found by search)" in text
        assert "PMTU black hole" in text


def test_a_hostile_reverse_name_is_shown_inert(monkeypatch: pytest.MonkeyPatch) -> None:
    t = path_trace()
    evil = replace(t.hops[0], responders=(Responder("198.18.1.1", "[bold]x[/] \x1b[2J\u202egw", 10),))
    res = result(replace(t, hops=(evil, *t.hops[1:])))
    out, stdout, _ = (lambda o: (o, o.stdout, o.stderr))(Output(format="table", color=False, stdout=FakeTerminal(),
                                                                 stderr=FakeTerminal()))
    monkeypatch.setenv("COLUMNS", "80")
    print_trace(out, res)
    text = stdout.getvalue()
    assert "[bold]x[/] \\x1b[2J\\u202egw" in text and "\x1b" not in text and "\u202e" not in text
    buf = io.StringIO()
    print_trace(Output(format="csv", stdout=buf, stderr=io.StringIO()), res)
    assert "\x1b" not in buf.getvalue()


def test_a_very_long_name_wraps_whole_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    t = path_trace()
    name = "a-very-long-reverse-name-that-an-operator-chose." * 2 + "example.test"
    long_hop = replace(t.hops[4], responders=(Responder("198.18.5.1", name, 10),))
    res = result(replace(t, hops=(*t.hops[:4], long_hop, t.hops[5])))
    monkeypatch.setenv("COLUMNS", "80")
    stdout = FakeTerminal()
    print_trace(Output(format="table", color=False, stdout=stdout, stderr=FakeTerminal()), res)
    text = stdout.getvalue()
    assert_terminal_text(text, 80)
    assert "Loss%" in text and "30.0 %*" in text
    check_golden("trace_long_name_80", text)


def test_stopped_early_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = io.StringIO()
    print_trace(Output(format="table", stdout=stdout, stderr=io.StringIO()), result(path_trace(), interrupted=True))
    assert stdout.getvalue().splitlines()[0].endswith("10 rounds (stopped early)")


def test_a_target_that_did_not_resolve_is_one_line_and_a_stderr_failure() -> None:
    bad = TargetTrace("nowhere.invalid", None, TraceMethod.UDP, False, error="name not resolved")
    stdout, stderr = io.StringIO(), io.StringIO()
    print_trace(Output(format="table", stdout=stdout, stderr=stderr), result(path_trace(), bad))
    assert "trace nowhere.invalid udp: not reached, 0 rounds" in stdout.getvalue()
    assert "name not resolved" not in stdout.getvalue()  # said once, on stderr, as every failure is
    assert "netkit: nowhere.invalid: name not resolved" in stderr.getvalue()
    # a trace that got somewhere before it stopped says why under its table
    partial = replace(unreached_trace(), error="network unreachable (!N) from 2001:db8:2::1")
    stdout = io.StringIO()
    print_trace(Output(format="table", stdout=stdout, stderr=io.StringIO()), result(partial))
    assert "  network unreachable (!N) from 2001:db8:2::1" in stdout.getvalue()


# ----- machine formats ---------------------------------------------------------------------------
def test_json_is_the_result_document() -> None:
    res = result(path_trace(), pmtu_trace())
    stdout = io.StringIO()
    print_trace(Output(format="json", stdout=stdout, stderr=io.StringIO()), res)
    doc = json.loads(stdout.getvalue())
    assert doc == json.loads(json.dumps(res.to_json()))
    assert doc["notes"] == [RATE_LIMIT_NOTE]
    assert doc["targets"][0]["rate_limited_hops"] == [4]


def test_jsonl_hops_as_they_come_then_one_summary_per_target() -> None:
    stdout = io.StringIO()
    out = Output(format="jsonl", stdout=stdout, stderr=io.StringIO())
    view = TraceLiveView(out, 10)
    assert not view.enabled
    sink = event_sink(out, view)
    assert sink is not None
    sink("server.lab.test", HopEvent(0, 1, 1, "198.18.1.1", 61_000, Answer.TIME_EXCEEDED))
    sink("server.lab.test", HopEvent(0, 3, 3, None, None, None))
    print_trace(out, result(path_trace(), unreached_trace()))
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert lines[0] == {"event": "hop", "target": "server.lab.test", "round": 0, "ttl": 1,
                        "address": "198.18.1.1", "rtt_ms": 0.061, "answer": "time-exceeded", "mtu": None}
    assert lines[1]["address"] is None and lines[1]["rtt_ms"] is None and lines[1]["answer"] is None
    assert [ln["event"] for ln in lines[2:]] == ["summary", "summary"]
    assert lines[2]["target"] == "server.lab.test" and lines[2]["hop_count"] == 6
    assert lines[3]["reached"] is False
    assert hop_json("x", HopEvent(1, 2, 9, "198.18.2.1", 1_500_000, Answer.FRAG_NEEDED, 1400))["mtu"] == 1400


def test_csv_one_row_per_hop() -> None:
    stdout = io.StringIO()
    print_trace(Output(format="csv", stdout=stdout, stderr=io.StringIO()), result(path_trace(), pmtu_trace()))
    rows = list(csv.DictReader(io.StringIO(stdout.getvalue())))
    assert tuple(rows[0]) == CSV_FIELDS
    assert len(rows) == 6 + 3
    silent = rows[2]
    assert (silent["ttl"], silent["host"], silent["loss_pct"], silent["received"]) == ("3", "", "100.0", "0")
    assert rows[3]["rate_limited"] == "true" and rows[5]["destination"] == "true"
    assert rows[1]["host"] == "198.18.2.1" and rows[1]["share"] == "0.6"
    assert rows[8]["mtu"] == "1280" and rows[0]["avg_ms"] != ""


def test_quiet_prints_nothing_and_the_piped_report_has_no_live_view() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(format="table", quiet=True, stdout=stdout, stderr=stderr)
    print_trace(out, result(path_trace()))
    assert stdout.getvalue() == "" and stderr.getvalue() == ""
    assert not TraceLiveView(Output(format="table", stdout=io.StringIO(), stderr=io.StringIO()), 10).enabled


# ----- the live view -----------------------------------------------------------------------------
class FakeLive:
    def __init__(self, label: str, trace: TargetTrace) -> None:
        self.label = label
        self.trace = trace
        self.calls = 0

    def snapshot(self) -> TargetTrace:
        self.calls += 1
        return self.trace


def test_live_view_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = Output(format="table", color=False, stdout=FakeTerminal(), stderr=FakeTerminal())
    view = TraceLiveView(out, 10)
    assert view.enabled
    first = replace(path_trace(), rounds=4)
    live = [FakeLive("server.lab.test", first), FakeLive("198.18.0.9", pmtu_trace())]
    view.attach(live)
    console = Console(width=80, color_system=None, highlight=False, markup=False, emoji=False)
    with console.capture() as capture:
        console.print(view.draw())
    text = "\n".join(line.rstrip() for line in capture.get().splitlines()) + "\n"
    assert_terminal_text(text, 80 - ECHO_ROOM)
    assert "round 10 of 10" in text and "Ctrl-C" in text
    check_golden("trace_live_80", text)
    # no probe completed since: the snapshot is not taken again
    view.draw()
    assert live[0].calls == 1
    view.on_event("server.lab.test", HopEvent(4, 1, 1, "198.18.1.1", 60_000, Answer.TIME_EXCEEDED))
    view.draw()
    assert live[0].calls == 2


def test_live_view_keeps_the_last_snapshot_when_taking_one_fails() -> None:
    class Flaky(FakeLive):
        def snapshot(self) -> TargetTrace:
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("dictionary changed size during iteration")
            return self.trace

    out = Output(format="table", color=False, stdout=FakeTerminal(), stderr=FakeTerminal())
    view = TraceLiveView(out, None)
    view.attach([Flaky("x", path_trace())])
    assert view.snapshots()[0].target == "server.lab.test"
    view.on_event("x", HopEvent(1, 1, 1, None, None, None))
    assert view.snapshots()[0].target == "server.lab.test"


def test_report_view_without_notes_has_no_star_line() -> None:
    t = pmtu_trace()
    console = Console(width=120, color_system=None)
    with console.capture() as capture:
        console.print(report_view(result(t), 120))
    assert "*" not in capture.get()
