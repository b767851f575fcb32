"""Achieved rate, a sender that fell behind, and the receive buffer sized for the rate (pure)."""

from __future__ import annotations

import pytest

from netkit.core.accounting import Accounting
from netkit.core.latency_models import (
    RCVBUF_FLOOR,
    RCVBUF_HOLD_S,
    TargetResult,
    achieved_rate,
    check_thresholds,
    receive_buffer_bytes,
    shortfall_note,
)
from netkit.core.pacing import KEEP_UP_SHARE, fell_behind

CAP = 16 * 1024 * 1024


def test_achieved_rate_is_packets_over_sending_time() -> None:
    assert achieved_rate(1000, 1_000_000_000) == 1000.0
    assert achieved_rate(43_595, 1_000_000_000) == 43_595.0
    assert achieved_rate(0, 1_000_000_000) is None
    assert achieved_rate(5, 0) is None


@pytest.mark.parametrize(("asked", "achieved", "behind"), [
    (1000.0, 1000.0, False),
    (1000.0, 1000.0 * KEEP_UP_SHARE, False),
    (1000.0, 1000.0 * KEEP_UP_SHARE - 1, True),
    (10_000_000.0, 43_595.0, True),
    (None, 43_595.0, False),  # -i 0: no rate was asked for
    (1000.0, None, False),  # nothing sent: nothing to compare
])
def test_fell_behind(asked: float | None, achieved: float | None, behind: bool) -> None:
    assert fell_behind(asked, achieved) is behind


def test_shortfall_note_says_it_is_not_loss() -> None:
    note = shortfall_note("127.0.0.1:9000", 10_000_000, 43_595.4)
    assert "43,595 packets/s achieved of 10,000,000 asked" in note and "not loss" in note


def test_receive_buffer_grows_with_the_rate_between_floor_and_cap() -> None:
    assert receive_buffer_bytes(1.0, 64, CAP) == RCVBUF_FLOOR  # 1 probe/s: the kernel's default is plenty
    at_10k = receive_buffer_bytes(10_000.0, 64, CAP)
    assert at_10k == int(10_000 * RCVBUF_HOLD_S) * (64 + 768)
    assert RCVBUF_FLOOR < at_10k < CAP
    assert receive_buffer_bytes(10_000_000.0, 64, CAP) == CAP
    assert receive_buffer_bytes(None, 64, CAP) == CAP  # as fast as possible: the most there is


def _result(sent: int, answered: int, local_drops: int | None) -> TargetResult:
    acc = Accounting(1_000_000_000)
    for i in range(sent):
        acc.on_sent(i, i * 1000)
    for i in range(answered):
        acc.on_reply(i, i * 1000 + 500)
    return TargetResult("t", "127.0.0.1", acc.finish(local_drops=local_drops))


def test_local_drops_trip_neither_max_loss_nor_stopped_answering() -> None:
    # The last 30 replies of 100 were dropped by this host's socket buffer.
    dropped_here = _result(100, 70, 30)
    verdict = check_thresholds([dropped_here], 0.0, None, stall_after=3)
    assert verdict.passed, verdict.failed
    assert dropped_here.to_json()["local_drops"] == 30 and dropped_here.to_json()["lost"] == 0
    # The same pattern without drops here is a peer that stopped answering, and loss.
    gone = _result(100, 70, 0)
    verdict = check_thresholds([gone], 0.0, None, stall_after=3)
    assert not verdict.passed
    assert any("stopped answering" in f for f in verdict.failed)
    assert any("max-loss" in f for f in verdict.failed)


def _render_summary(results: list[TargetResult]) -> str:
    from rich.console import Console

    from netkit.render.latency import summary_view

    console = Console(width=80, record=True, color_system=None)
    console.print(summary_view(results, check_thresholds(results, None, None), "t", 80))
    return console.export_text()


def test_the_table_shows_local_drops_apart_and_only_when_there_are_some() -> None:
    text = _render_summary([_result(100, 70, 30)])
    assert " local" in text.splitlines()[1]  # the loss table's header row
    assert "30 replies dropped by this host's socket buffer, not counted as loss" in text
    assert all(len(line.rstrip()) <= 80 for line in text.splitlines())
    clean = _render_summary([_result(100, 100, 0)])
    assert "local" not in clean and "dropped" not in clean


def test_a_long_target_and_every_figure_stay_whole_at_80_columns() -> None:
    from dataclasses import replace

    # a name that resolved (shown with its address) and 5-digit counts, as -i 0 gives
    named = replace(_result(20_000, 19_000, 0), target="localhost.localdomain:39481")
    plain = replace(_result(20_000, 20_000, 0), target="127.0.0.1:35807")
    text = _render_summary([named, plain])
    assert "…" not in text  # no figure cut to "100…" or "0.3…"
    assert all(len(line.rstrip()) <= 80 for line in text.splitlines())
    assert "localhost.localdomain:39481 (127.0.0.1)" in text and "127.0.0.1:35807" in text
    assert "5.0 %" in text and "20,000" in text and " ms" in text
