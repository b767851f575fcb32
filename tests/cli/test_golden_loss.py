"""Golden text of ``measure loss --format table`` at 80 columns on a terminal and piped, from a
fixed hand-made result (no network), and its progress line.

``NETKIT_UPDATE_GOLDEN=1 python -m pytest tests/cli/test_golden_loss.py`` rewrites the files under
tests/golden/ after a deliberate change of the screen; review the diff before committing.
"""

from __future__ import annotations

import io

import pytest
from golden_support import BOX, FakeTerminal, check_golden

from netkit.core.accounting import Accounting
from netkit.core.latency_models import LossResult, ReflectorKind, TargetResult, check_thresholds
from netkit.render.loss import print_loss, progress_text
from netkit.render.output import Output

US = 1_000


def loss_result(*, local_drops: int = 0) -> LossResult:
    """12,000 probes at 1,000 pps: 30 lost on the way there, 12 on the way back, 3 late."""
    acc = Accounting(1_000_000 * US)
    sent, lost_fwd, lost_ret, late = 12_000, 30, 12 + local_drops, 3
    for seq in range(sent):
        acc.on_sent(seq, seq * 1_000 * US)
    answered = sent - lost_fwd - lost_ret - late
    for seq in range(answered):
        acc.on_reply(seq, seq * 1_000 * US + (180 + (seq * 37) % 90) * US)
    acc.expire(sent * 1_000 * US + 2_000_000 * US)
    for seq in range(answered, answered + late):
        acc.on_reply(seq, sent * 1_000 * US + 2_000_000 * US + seq)
    acc.on_reflector_count(sent - lost_fwd, final=True)
    target = TargetResult("127.0.0.1:40001", "127.0.0.1", acc.finish(local_drops=local_drops or None),
                          reflector=ReflectorKind.NETKIT, send_ns=12_010_000 * US)
    return LossResult(target, check_thresholds([target], 0.5, None), 1000.0, target.achieved_pps)


def render(result: LossResult, *, terminal: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("COLUMNS", "80")
    stdout: io.StringIO = FakeTerminal() if terminal else io.StringIO()
    stderr = io.StringIO()
    print_loss(Output(format="table", stdout=stdout, stderr=stderr, color=False), result)
    return stdout.getvalue(), stderr.getvalue()


def test_loss_at_80_columns_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    text, _err = render(loss_result(), terminal=True, monkeypatch=monkeypatch)
    assert all(len(line) <= 80 for line in text.splitlines()) and "…" not in text
    for whole in ("127.0.0.1:40001", "12,000", "11,955", "0.3 %", "1,000 pps requested", "999 pps achieved"):
        assert whole in text
    assert "thresholds: PASS" in text
    check_golden("loss_80.txt", text)


def test_loss_piped_is_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    text, _err = render(loss_result(), terminal=False, monkeypatch=monkeypatch)
    assert "…" not in text and not BOX & set(text)
    assert not text.startswith("\n") and all(line == line.rstrip() for line in text.splitlines())
    check_golden("loss_piped.txt", text)


def test_local_drops_get_a_column_a_legend_and_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    text, _err = render(loss_result(local_drops=40), terminal=False, monkeypatch=monkeypatch)
    header = text.splitlines()[1].split()
    assert header[-1] == "local" and "local: dropped by this host's socket buffer (not loss)" in text
    assert "40 replies dropped by this host's socket buffer" in text
    check_golden("loss_local_drops_piped.txt", text)


def test_progress_line_fits_and_keeps_its_figures() -> None:
    full = progress_text("127.0.0.1:40001", 10.0, 2_000, 1_998, 2, 2_000_000_000)
    assert full == "measure loss 127.0.0.1:40001: sent 2,000  received 1,998  lost so far 2  2.00s of 10.00s"
    for width in (79, 69, 50):
        line = progress_text("127.0.0.1:40001", 10.0, 2_000, 1_998, 2, 2_000_000_000, width=width)
        assert len(line) <= width and "2,000" in line and "1,998" in line


def test_the_direction_legend_names_only_the_columns_shown() -> None:
    """At 70 columns ``localhost:43326 (127.0.0.1)`` left room for ``fwd`` but not ``ret``, and the
    legend under the table still read ``fwd/ret: lost on the way there / back``."""
    from rich.console import Console

    from netkit.render.latency import summary_view

    result = loss_result()
    seen = set()
    for width in range(50, 100):
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(summary_view([result.target], result.thresholds, "measure loss", width))
        text = console.file.getvalue()
        header = text.splitlines()[1].split()
        legend = [line.strip() for line in text.splitlines() if line.strip().startswith(("fwd", "ret"))]
        shown = tuple(name for name in ("fwd", "ret") if name in header)
        seen.add(shown)
        expected = {("fwd", "ret"): ["fwd/ret: lost on the way there / back"],
                    ("fwd",): ["fwd: lost on the way there"], (): []}[shown]
        assert legend == expected, (width, text)
    assert ("fwd",) in seen and ("fwd", "ret") in seen
