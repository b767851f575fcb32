"""Golden text of ``measure latency --format table``: the summary at 80 columns on a terminal and
piped, and the live view drawn at 70 columns, from fixed hand-made results (no network).

``NETKIT_UPDATE_GOLDEN=1 python -m pytest tests/cli/test_golden_latency.py`` rewrites the files
under tests/golden/ after a deliberate change of the screen; review the diff before committing.
"""

from __future__ import annotations

import io

import pytest
from golden_support import FakeTerminal, assert_piped_text, assert_terminal_text, check_golden
from rich.console import Console

from netkit.core.accounting import Accounting
from netkit.core.latency_models import (
    LatencyConfig,
    LatencyResult,
    LiveTarget,
    Method,
    ReflectorKind,
    TargetResult,
    check_thresholds,
)
from netkit.render.latency import live_table, print_latency
from netkit.render.live import ECHO_ROOM
from netkit.render.output import Output

MS = 1_000_000


def accounting(rtts_ms: list[float], *, lost: int = 0, reflector_count: int | None = None) -> Accounting:
    """A finished stream: one probe every 10 ms, answered with these RTTs, then ``lost`` unanswered."""
    acc = Accounting(1_000 * MS)
    for seq, rtt in enumerate(rtts_ms):
        acc.on_sent(seq, seq * 10 * MS)
        acc.on_reply(seq, seq * 10 * MS + round(rtt * MS))
    for seq in range(len(rtts_ms), len(rtts_ms) + lost):
        acc.on_sent(seq, seq * 10 * MS)
    acc.expire(10_000 * MS)
    if reflector_count is not None:
        acc.on_reflector_count(reflector_count, final=True)
    return acc


RTTS_A = [0.412, 0.388, 0.501, 0.397, 12.9, 0.405, 0.433, 0.377, 0.419, 0.398]
RTTS_B = [1.12, 1.08, 1.31, 1.05, 1.19, 1.02, 1.27, 1.11]


def udp_result(*, max_loss: float | None = None, max_rtt_ms: float | None = None) -> tuple[LatencyResult,
                                                                                            LatencyConfig]:
    a = accounting(RTTS_A, reflector_count=10)
    b = accounting(RTTS_B, lost=2, reflector_count=9)
    targets = [
        TargetResult("127.0.0.1:40001", "127.0.0.1", a.finish(), reflector=ReflectorKind.NETKIT, send_ns=100 * MS),
        TargetResult("reflector.example.test:40001", "198.18.0.7", b.finish(), reflector=ReflectorKind.NETKIT,
                     send_ns=100 * MS),
    ]
    cfg = LatencyConfig(method=Method.UDP, count=10, interval_s=0.01)
    return LatencyResult(Method.UDP, targets, check_thresholds(targets, max_loss, max_rtt_ms)), cfg


def render(result: LatencyResult, cfg: LatencyConfig, *, terminal: bool,
           monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("COLUMNS", "80")
    stdout: io.StringIO = FakeTerminal() if terminal else io.StringIO()
    stderr = io.StringIO()
    print_latency(Output(format="table", stdout=stdout, stderr=stderr, color=False), result, cfg)
    return stdout.getvalue(), stderr.getvalue()


def test_summary_at_80_columns_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    result, cfg = udp_result(max_loss=5.0)
    text, err = render(result, cfg, terminal=True, monkeypatch=monkeypatch)
    assert_terminal_text(text, 80)
    for whole in ("127.0.0.1:40001", "reflector.example.test:40001 (198.18.0.7)", "20.0 %", "12.9 ms"):
        assert whole in text
    assert "thresholds: FAIL" in text and "fwd/ret" in text
    assert "netkit: 127.0.0.1:40001: answered by netkit's reflector" in err
    check_golden("latency_summary_80.txt", text)


def test_summary_piped_is_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    result, cfg = udp_result(max_loss=5.0)
    text, _err = render(result, cfg, terminal=False, monkeypatch=monkeypatch)
    assert_piped_text(text)
    assert "ipdv" in text and "RTT histogram" not in text  # every column; the charts are for people
    check_golden("latency_summary_piped.txt", text)


def test_no_threshold_no_verdict_and_no_direction_columns_without_the_reflector(
        monkeypatch: pytest.MonkeyPatch) -> None:
    acc = accounting(RTTS_B)
    target = TargetResult("127.0.0.1:443", "127.0.0.1", acc.finish(), send_ns=80 * MS)
    result = LatencyResult(Method.TCP_CONNECT, [target], check_thresholds([target], None, None))
    text, err = render(result, LatencyConfig(method=Method.TCP_CONNECT), terminal=False, monkeypatch=monkeypatch)
    assert "thresholds" not in text and "fwd" not in text and " ret " not in text
    assert "answered by" not in err
    check_golden("latency_summary_tcp_piped.txt", text)


def live_targets() -> list[LiveTarget]:
    a = accounting(RTTS_A[:7])
    b = accounting(RTTS_B[:6], lost=1)
    return [LiveTarget("127.0.0.1:40001", a), LiveTarget("127.0.0.2:40001", b)]


def draw_live(width: int) -> str:
    console = Console(width=width, color_system=None, highlight=False, markup=False, emoji=False)
    with console.capture() as capture:
        # as LatencyLiveView.draw does: room for the echo of ^C at the right
        console.print(live_table(Method.UDP, 10, live_targets(), width - ECHO_ROOM))
    return "\n".join(line.rstrip() for line in capture.get().splitlines()) + "\n"


def test_live_view_at_70_columns_keeps_every_target_whole() -> None:
    text = draw_live(70)
    assert_terminal_text(text, 70 - ECHO_ROOM)
    assert "127.0.0.1:40001" in text and "127.0.0.2:40001" in text
    assert "0.433 ms" in text and "9.180 ms" in text  # the RTTs carry their unit
    assert text.count("measure latency") == 1
    check_golden("latency_live_70.txt", text)


def test_live_view_sparkline_shrinks_before_anything_goes() -> None:
    wide, narrow = draw_live(100), draw_live(70)
    assert "recent RTTs" in wide and "▁" in wide
    assert "recent RTTs" not in narrow and "avg" in narrow and "p95" in narrow
    # short targets leave the sparkline room at 70 columns: it shrinks, every figure stays
    short = [LiveTarget("[::1]", accounting(RTTS_A)), LiveTarget("127.0.0.1", accounting(RTTS_B))]
    console = Console(width=70, color_system=None)
    with console.capture() as capture:
        console.print(live_table(Method.ICMP, 100, short, 70 - ECHO_ROOM))
    text = capture.get()
    header = text.splitlines()[1].split()
    assert header == ["target", "sent", "recv", "loss", "last", "avg", "p95", "recent"], text
    assert all(len(line) <= 70 - ECHO_ROOM for line in text.splitlines())


def test_a_run_stopped_early_says_so_in_its_title(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    result, cfg = udp_result()
    text, _err = render(replace(result, interrupted=True), cfg, terminal=False, monkeypatch=monkeypatch)
    assert text.splitlines()[0] == "measure latency --method udp (stopped early)"
