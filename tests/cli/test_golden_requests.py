"""``measure requests --format table`` as people see it: golden text at 80 columns on a terminal and
piped. Fixed, hand-made results go through the real renderer (netkit.render.requests) into an
Output whose stdout is a fake 80-column terminal, or a plain pipe.

``NETKIT_UPDATE_GOLDEN=1 pytest tests/cli/test_golden_requests.py`` rewrites the golden files.
"""

from __future__ import annotations

import dataclasses
import io

import pytest
from golden_support import BOX, FakeTerminal, check_golden

from netkit.core.latency_histogram import LatencyMs
from netkit.core.requests_result import RequestsInterval, RequestsResult, RequestThresholds
from netkit.render.output import Output
from netkit.render.requests import RequestsProgress, render_requests


@pytest.fixture(autouse=True)
def _eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "40")
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def _output(terminal: bool) -> tuple[Output, io.StringIO]:
    stdout = FakeTerminal() if terminal else io.StringIO()
    return Output(format="table", color=False, stdout=stdout, stderr=io.StringIO()), stdout


CLOSED = RequestsResult(
    target="127.0.0.1:9000", address="127.0.0.1:9000", tls=False, mode="closed-loop", framing="length",
    connections=100, rate_rps=None, elapsed_ns=10_002_345_678, requests=1_126_634, sent=1_126_700,
    bytes_sent=72_108_800, bytes_received=72_104_576,
    latency=LatencyMs(min=0.021, avg=0.887, p50=0.812, p90=1.402, p99=2.915, p99_9=9.871, max=212.4),
    errors={"timeout": 12, "connection-lost": 3}, reconnects=3, drops=3, error="no reply within 5 s",
)

OPEN = RequestsResult(
    target="[2001:db8::10]:6379", address="[2001:db8::10]:6379", tls=True, mode="open-loop",
    framing="delimiter", connections=1000, rate_rps=250_000.0, elapsed_ns=30_000_000_000,
    requests=7_499_310, sent=7_500_000, bytes_sent=52_500_000, bytes_received=52_495_170,
    latency=LatencyMs(min=0.044, avg=1.35, p50=0.953, p90=2.51, p99=17.42, p99_9=131.0, max=1234.5),
    errors={"timeout": 690}, reconnects=0, drops=0,
    thresholds=RequestThresholds(min_rps=300_000, max_p99_ms=5.0, passed=False,
                                 failed=("250,000 requests/s < min-rps 300,000",
                                         "latency p99 17.4 ms > max-p99 5.000 ms")),
)


def _interval(k: int, rps: float, p50: float, p99: float, mx: float, errors: int, reconnects: int,
              conns: int) -> RequestsInterval:
    return RequestsInterval(start_s=float(k), end_s=float(k + 1), requests=int(rps), requests_per_s=rps,
                            bytes_per_s={"sent": rps * 64, "received": rps * 64},
                            latency_ms={"p50": p50, "p99": p99, "max": mx}, errors=errors,
                            reconnects=reconnects, open_connections=conns)


INTERVALS = [
    _interval(0, 112_634.2, 0.812, 2.915, 9.871, 0, 0, 100),
    _interval(1, 121_126.3, 0.799, 2.733, 212.4, 15, 3, 97),
    _interval(2, 98.5, 0.053, 0.21, 1.234, 0, 0, 100),
    _interval(3, 368_917.0, 1234.5, 12_345.6, 99_999.0, 1_234_567, 12, 1000),
]


def _summary(result: RequestsResult, terminal: bool) -> str:
    out, stdout = _output(terminal)
    render_requests(out, result)
    return stdout.getvalue()


def _intervals(terminal: bool) -> str:
    out, stdout = _output(terminal)
    with RequestsProgress(out) as progress:  # stderr is not a terminal: plain lines on stdout
        for row in INTERVALS:
            progress.add(row)
    return stdout.getvalue()


CASES = {
    "summary_closed_loop": lambda terminal: _summary(CLOSED, terminal),
    "summary_open_loop": lambda terminal: _summary(OPEN, terminal),
    "intervals": _intervals,
}


@pytest.mark.parametrize("terminal", [True, False], ids=["tty80", "piped"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, terminal: bool) -> None:
    text = CASES[case](terminal)
    check_golden(f"requests_{case}_{'tty80' if terminal else 'piped'}", text)
    lines = text.splitlines()
    assert "…" not in text
    assert lines and lines[0].strip(), "no blank first line"
    if terminal:
        assert max(len(line) for line in lines) <= 80
    else:
        assert not BOX & set(text), "no box characters off a terminal"
        assert all(line == line.rstrip() for line in lines), "no trailing spaces off a terminal"


def test_headline_figures_whole_at_80_columns() -> None:
    text = _summary(CLOSED, True)
    for figure in ("112,637 req/s", "0.812 ms", "2.915 ms", "1,126,634"):
        assert figure in text
    lines = _intervals(True)
    assert "368,917 req/s" in lines and "121,126 req/s" in lines and "12,346 ms" in lines


@pytest.mark.parametrize("width", [70, 80])
def test_live_view_keeps_time_rate_and_percentiles(width: int) -> None:
    from rich.console import Console

    from netkit.render.requests import requests_live_table

    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(requests_live_table(INTERVALS, width=width))
    text = console.export_text()
    check_golden(f"requests_live_{width}", text)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    for figure in ("368,917 req/s", "1,234 ms", "12,346 ms", "4.0 s"):
        assert figure in text


def test_a_failed_check_is_said_once_on_a_terminal() -> None:
    out, stdout = _output(terminal=True)
    render_requests(out, OPEN)
    assert stdout.getvalue().count("> max-p99") == 1
    assert "check failed" not in out.stderr.getvalue()  # type: ignore[attr-defined]
    out, stdout = _output(terminal=False)  # piped: the table went elsewhere, stderr says it
    render_requests(out, OPEN)
    assert out.stderr.getvalue().count("netkit: check failed:") == 2  # type: ignore[attr-defined]


def test_a_run_stopped_early_says_so_in_its_title() -> None:
    text = _summary(dataclasses.replace(CLOSED, interrupted=True), terminal=True)
    assert text.splitlines()[0].strip() == "measure requests 127.0.0.1:9000 (closed-loop, stopped early)"
