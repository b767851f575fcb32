"""``measure connections --format table`` as people see it: golden text at 80 columns on a terminal
and piped. Fixed, hand-made results go through the real renderer (netkit.render.connections).

``NETKIT_UPDATE_GOLDEN=1 pytest tests/cli/test_golden_connections.py`` rewrites the golden files.
"""

from __future__ import annotations

import io

import pytest
from golden_support import BOX, FakeTerminal, check_golden

from netkit.core.connections_result import ConnectionsInterval, ConnectionsResult, ConnectionThresholds
from netkit.core.latency_histogram import LatencyMs
from netkit.render.connections import ConnectionsProgress, render_connections
from netkit.render.output import Output


@pytest.fixture(autouse=True)
def _eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "40")
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def _output(terminal: bool) -> tuple[Output, io.StringIO]:
    stdout = FakeTerminal() if terminal else io.StringIO()
    return Output(format="table", color=False, stdout=stdout, stderr=io.StringIO()), stdout


PLAIN = ConnectionsResult(
    target="127.0.0.1:8000", address="127.0.0.1:8000", concurrency=8, close="fin", send=0, expect=0,
    elapsed_ns=5_000_812_000, attempts=112_660, connections=112_634,
    connect=LatencyMs(min=0.021, avg=0.087, p50=0.062, p90=0.14, p99=0.915, p99_9=3.871, max=1024.9),
    transaction=None, errors={"eaddrnotavail": 18, "refused": 0}, time_wait=28_231, time_wait_before=12,
    abandoned=8, error="Cannot assign requested address",
)

EXCHANGE = ConnectionsResult(
    target="[2001:db8::10]:6379", address="[2001:db8::10]:6379", concurrency=1000, close="rst", send=64,
    expect=4096, elapsed_ns=30_000_000_000, attempts=900_000, connections=899_310,
    connect=LatencyMs(min=0.044, avg=1.35, p50=0.953, p90=2.51, p99=17.42, p99_9=131.0, max=1234.5),
    transaction=LatencyMs(min=0.1, avg=2.2, p50=1.95, p90=4.5, p99=31.2, p99_9=180.0, max=2345.6),
    errors={"timeout": 690}, time_wait=0, time_wait_before=0,
    thresholds=ConnectionThresholds(min_rate=50_000, max_errors=0, passed=False,
                                    failed=("29,977 connections/s < min-rate 50,000",
                                            "690 errors > max-errors 0")),
)


def _interval(k: int, rate: float, p50: float, p99: float, mx: float, errors: int) -> ConnectionsInterval:
    return ConnectionsInterval(start_s=float(k), end_s=float(k + 1), connections=int(rate),
                               connections_per_s=rate, connect_ms={"p50": p50, "p99": p99, "max": mx},
                               errors=errors)


INTERVALS = [
    _interval(0, 22_634.2, 0.062, 0.915, 3.871, 0),
    _interval(1, 21_126.3, 0.071, 1.733, 1024.9, 18),
    _interval(2, 98.5, 0.053, 0.21, 1.234, 0),
    _interval(3, 368_917.0, 1234.5, 12_345.6, 99_999.0, 1_234_567),
]


def _summary(result: ConnectionsResult, terminal: bool) -> str:
    out, stdout = _output(terminal)
    render_connections(out, result)
    return stdout.getvalue()


def _intervals(terminal: bool) -> str:
    out, stdout = _output(terminal)
    with ConnectionsProgress(out) as progress:  # stderr is not a terminal: plain lines on stdout
        for row in INTERVALS:
            progress.add(row)
    return stdout.getvalue()


CASES = {
    "summary_plain": lambda terminal: _summary(PLAIN, terminal),
    "summary_exchange": lambda terminal: _summary(EXCHANGE, terminal),
    "intervals": _intervals,
}


@pytest.mark.parametrize("terminal", [True, False], ids=["tty80", "piped"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, terminal: bool) -> None:
    text = CASES[case](terminal)
    check_golden(f"connections_{case}_{'tty80' if terminal else 'piped'}", text)
    lines = text.splitlines()
    assert "…" not in text
    assert lines and lines[0].strip(), "no blank first line"
    if terminal:
        assert max(len(line) for line in lines) <= 80
    else:
        assert not BOX & set(text), "no box characters off a terminal"
        assert all(line == line.rstrip() for line in lines), "no trailing spaces off a terminal"


def test_headline_figures_whole_at_80_columns() -> None:
    text = _summary(PLAIN, True)
    for figure in ("22,523 conn/s", "0.062 ms", "0.915 ms", "112,634", "28,231", "eaddrnotavail 18"):
        assert figure in text
    assert "368,917 conn/s" in _intervals(True)


@pytest.mark.parametrize("width", [70, 80])
def test_live_view_keeps_time_rate_and_percentiles(width: int) -> None:
    from rich.console import Console

    from netkit.render.connections import connections_live_table

    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(connections_live_table(INTERVALS, width=width))
    text = console.export_text()
    check_golden(f"connections_live_{width}", text)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    for figure in ("368,917 conn/s", "1,234 ms", "12,346 ms", "4.0 s"):
        assert figure in text


def test_a_failed_check_is_said_once_on_a_terminal() -> None:
    out, stdout = _output(terminal=True)
    render_connections(out, EXCHANGE)
    assert stdout.getvalue().count("> max-errors") == 1
    assert "check failed" not in out.stderr.getvalue()  # type: ignore[attr-defined]
    out, stdout = _output(terminal=False)
    render_connections(out, EXCHANGE)
    assert out.stderr.getvalue().count("netkit: check failed:") == 2  # type: ignore[attr-defined]
