"""Golden text of ``probe --format table``: at 80 columns on a terminal and piped, from fixed
hand-made results (no network), for a plain run, ``--repeat``, ``--udp`` and ``--tls``.

``NETKIT_UPDATE_GOLDEN=1 python -m pytest tests/cli/test_golden_probe.py`` rewrites the files under
tests/golden/ after a deliberate change of the screen; review the diff before committing.
"""

from __future__ import annotations

import io

import pytest
from golden_support import FakeTerminal, assert_piped_text, assert_terminal_text, check_golden

from netkit.core.probe_models import (
    ProbeAttempt,
    ProbeOptions,
    ProbeResult,
    ProbeRunConfig,
    ProbeRunResult,
    ProbeState,
    RepeatedResult,
    TlsInfo,
    passed,
    passed_repeated,
    summarize,
    summarize_repeated,
)
from netkit.core.targets import Target
from netkit.render.output import Output
from netkit.render.probe import ProbeReport, render_probe


def row(target: str, host: str, port: int, address: str | None, state: ProbeState, *, attempts: int = 1,
        connect: float | None = None, resolve: float | None = None, total: float = 0.5,
        error: str | None = None, tls: TlsInfo | None = None) -> ProbeResult:
    return ProbeResult(target, host, port, address, state, attempts, connect, resolve, total, error, tls)


def plain_result() -> ProbeRunResult:
    """The issue's repro: ``probe 127.0.0.1:1-3 no-such-host.invalid:80 localhost:22 127.0.0.1:8080``."""
    refused = "connection refused"
    rows = [
        row("127.0.0.1:1", "127.0.0.1", 1, "127.0.0.1", ProbeState.CLOSED, total=0.412, error=refused),
        row("127.0.0.1:2", "127.0.0.1", 2, "127.0.0.1", ProbeState.CLOSED, total=0.388, error=refused),
        row("127.0.0.1:3", "127.0.0.1", 3, "127.0.0.1", ProbeState.CLOSED, attempts=3, total=1503.2,
            error=refused),
        row("no-such-host.invalid:80", "no-such-host.invalid", 80, None, ProbeState.DNS_ERROR, total=4.1,
            error="name not resolved (Name or service not known)"),
        row("localhost:22", "localhost", 22, "127.0.0.1", ProbeState.OPEN, connect=0.081, resolve=3.87,
            total=4.02),
        row("127.0.0.1:8080", "127.0.0.1", 8080, "127.0.0.1", ProbeState.TIMEOUT, total=2001.0,
            error="no answer within 2s"),
    ]
    return ProbeRunResult(summarize(rows), passed(rows), rows=rows)


def repeat_result() -> tuple[ProbeRunResult, ProbeRunConfig]:
    up = row("127.0.0.1:8000", "127.0.0.1", 8000, "127.0.0.1", ProbeState.OPEN, connect=0.062, total=0.2)
    down = row("[::1]:8001", "::1", 8001, "::1", ProbeState.CLOSED, total=0.3, error="connection refused")
    tally = [RepeatedResult(up, 4, 4), RepeatedResult(down, 4, 1)]
    result = ProbeRunResult(summarize_repeated(tally), passed_repeated(tally), rows=[up, down], repeated=tally,
                            rounds_done=4, rounds=4)
    return result, ProbeRunConfig(ProbeOptions(), repeat=4)


def udp_result() -> ProbeRunResult:
    rows = [
        row("127.0.0.1:5353", "127.0.0.1", 5353, "127.0.0.1", ProbeState.OPEN_FILTERED, total=2000.4,
            error="no reply within 2s"),
        row("127.0.0.1:9", "127.0.0.1", 9, "127.0.0.1", ProbeState.CLOSED, total=0.3,
            error="port unreachable (nothing listening)"),
    ]
    return ProbeRunResult(summarize(rows), passed(rows), rows=rows)


def tls_result() -> ProbeRunResult:
    info = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=service.example.test", "CN=netkit test CA",
                   "2027-03-01T00:00:00Z", 89.5, True, "ab" * 32)
    rows = [row("service.example.test:443", "service.example.test", 443, "198.18.0.7", ProbeState.OPEN,
                connect=0.251, resolve=1.2, total=6.3, tls=info)]
    return ProbeRunResult(summarize(rows), passed(rows), rows=rows)


def render(result: ProbeRunResult, config: ProbeRunConfig, *, terminal: bool,
           monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    stdout: io.StringIO = FakeTerminal() if terminal else io.StringIO()
    render_probe(Output(format="table", stdout=stdout, stderr=io.StringIO(), color=False), result, config)
    return stdout.getvalue()


PLAIN = ProbeRunConfig(ProbeOptions())
UDP = ProbeRunConfig(ProbeOptions(udp=True))


def test_plain_run_at_80_columns_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(plain_result(), PLAIN, terminal=True, monkeypatch=monkeypatch)
    assert_terminal_text(text, 80)
    for whole in ("no-such-host.invalid:80", "dns-error", "localhost:22", "127.0.0.1:8080", "1,503 ms",
                  "0.081 ms", "timeout"):
        assert whole in text
    assert text.splitlines()[-1] == "6 targets: 1 open, 5 failed"
    check_golden("probe_80.txt", text)


def test_plain_run_piped_is_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(plain_result(), PLAIN, terminal=False, monkeypatch=monkeypatch)
    assert_piped_text(text)
    assert text.splitlines()[0].split() == ["target", "address", "state", "attempts", "connect", "resolve",
                                            "total", "error"]
    assert "name not resolved (Name or service not known)" in text  # whole, on one line
    check_golden("probe_piped.txt", text)


def test_repeat_at_80_columns_and_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    result, config = repeat_result()
    screen = render(result, config, terminal=True, monkeypatch=monkeypatch)
    piped = render(result, config, terminal=False, monkeypatch=monkeypatch)
    assert_terminal_text(screen, 80)
    assert_piped_text(piped)
    for text in (screen, piped):
        assert "[::1]:8001" in text and "1/4" in text and "25.0 %" in text
        assert text.splitlines()[-1] == "2 targets, 4/4 rounds: 1 open, 1 failed; success 62.5 %"
    check_golden("probe_repeat_80.txt", screen)
    check_golden("probe_repeat_piped.txt", piped)


def test_udp_silence_is_not_called_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A silent UDP port is open|filtered: it passes the exit rule, but the summary does not call it up."""
    result = udp_result()
    screen = render(result, UDP, terminal=True, monkeypatch=monkeypatch)
    piped = render(result, UDP, terminal=False, monkeypatch=monkeypatch)
    # Nothing connects over UDP: the time in that column is the reply's.
    for text in (screen, piped):
        assert "reply" in text.splitlines()[0].split() and "connect" not in text
    assert_terminal_text(screen, 80)
    assert_piped_text(piped)
    for text in (screen, piped):
        assert text.splitlines()[-1] == "2 targets: 0 open, 1 open|filtered (no reply), 1 failed"
        assert "% of targets up" not in text and "((" not in text and "))" not in text
    check_golden("probe_udp_80.txt", screen)
    check_golden("probe_udp_piped.txt", piped)


def test_tls_table_at_80_columns_and_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ProbeRunConfig(ProbeOptions(tls=True))
    screen = render(tls_result(), config, terminal=True, monkeypatch=monkeypatch)
    piped = render(tls_result(), config, terminal=False, monkeypatch=monkeypatch)
    assert_terminal_text(screen, 80)
    assert_piped_text(piped)
    for text in (screen, piped):
        assert "service.example.test:443" in text and "TLSv1.3" in text and "89.5 d" in text
    assert "CN=netkit test CA" in piped
    check_golden("probe_tls_80.txt", screen)
    check_golden("probe_tls_piped.txt", piped)


def test_interrupted_run_says_so_once(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [row("127.0.0.1:1", "127.0.0.1", 1, "127.0.0.1", ProbeState.CLOSED, attempts=2, total=900.0,
                error="interrupted; last attempt: connection refused")]
    result = ProbeRunResult(summarize(rows), passed(rows), interrupted=True, rows=rows)
    text = render(result, PLAIN, terminal=False, monkeypatch=monkeypatch)
    assert text.splitlines()[-1] == "1 target (interrupted): 0 open, 1 failed"
    assert text.count("connection refused") == 1


def test_progress_lines_say_what_is_happening() -> None:
    """The live line: the pass, the attempt that failed and the retry to come; --wait's line."""
    out = Output(format="table", stdout=io.StringIO(), stderr=io.StringIO(), color=False)
    report = ProbeReport(out, ProbeRunConfig(ProbeOptions(retries=3)))
    report.started(2)
    report.attempted(Target("127.0.0.1", 9), 1, ProbeAttempt(ProbeState.TIMEOUT, "127.0.0.1", None,
                                                             "no answer within 2s"))
    assert report.progress_line(1.25) == (
        "probing: 0/2 done, 0 up [1.2 s]\n"
        "attempt 1 of 4 failed: 127.0.0.1:9 timeout, no answer within 2s; retrying")
    waiting = ProbeReport(out, ProbeRunConfig(ProbeOptions(retries=None, deadline_s=30), wait=True))
    waiting.started(2)
    waiting.attempted(Target("db", 5432), 3, ProbeAttempt(ProbeState.DNS_ERROR, None, None,
                                                          "name not resolved (Name or service not known)"))
    waiting.attempted(Target("127.0.0.1", 80), 1, ProbeAttempt(ProbeState.OPEN, "127.0.0.1", 50_000, None))
    line = waiting.progress_line(2.0)
    # The clock ends the first line (it never wraps between its figure and its unit), the failure
    # of any length goes under it.
    assert line == ("waiting: 1/2 up, 1 not yet [2.0 s of 30 s]\n"
                    "not up yet: db:5432 dns-error, name not resolved (Name or service not known)")
    assert "((" not in line and "))" not in line


def test_wait_live_line_fits_80_columns_with_its_clock_whole() -> None:
    """``probe 127.0.0.1:1 127.0.0.1:PORT --wait --deadline 20s`` on an 80-column terminal: the line
    once ran to 81 characters and wrapped as ``[2.3 s of 20`` / ``s]``."""
    from rich.console import Console

    out = Output(format="table", stdout=io.StringIO(), stderr=io.StringIO(), color=False)
    waiting = ProbeReport(out, ProbeRunConfig(ProbeOptions(retries=None, deadline_s=20), wait=True))
    waiting.started(2)
    waiting.attempted(Target("127.0.0.1", 1), 5, ProbeAttempt(ProbeState.CLOSED, "127.0.0.1", None,
                                                              "connection refused"))
    waiting.attempted(Target("127.0.0.1", 58235), 1, ProbeAttempt(ProbeState.OPEN, "127.0.0.1", 50_000, None))
    waiting.started_at -= 2.3
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(waiting._draw())
    lines = console.file.getvalue().splitlines()
    assert lines == ["waiting: 1/2 up, 1 not yet [2.3 s of 20 s]",
                     "not up yet: 127.0.0.1:1 closed, connection refused"]


def test_issue_repro_on_a_terminal_gives_the_error_the_address_room(monkeypatch: pytest.MonkeyPatch) -> None:
    """``probe 127.0.0.1:1-3 no-such-host.invalid:80``: every address is its target's own literal (or
    none), so a terminal shows no address column and the errors keep to one line or two."""
    rows = [r for r in plain_result().rows if r.host != "localhost"][:4]
    result = ProbeRunResult(summarize(rows), passed(rows), rows=rows)
    screen = render(result, PLAIN, terminal=True, monkeypatch=monkeypatch)
    piped = render(result, PLAIN, terminal=False, monkeypatch=monkeypatch)
    assert_terminal_text(screen, 80)
    assert "address" not in screen and "address" in piped
    assert "connection refused" in screen and "no-such-host.invalid:80" in screen and "dns-error" in screen
    check_golden("probe_literals_80.txt", screen)
