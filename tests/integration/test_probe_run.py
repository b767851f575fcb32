"""``netkit.io.measure.probe_run`` against loopback peers: what a run reports to its listener, in
which order, and the result it returns when whole, stopped, or repeated."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from netkit.core.backoff import Backoff
from netkit.core.probe_models import (
    ProbeAttempt,
    ProbeEngine,
    ProbeOptions,
    ProbeResult,
    ProbeRunConfig,
    ProbeRunResult,
    ProbeState,
    RepeatedResult,
    ShowOnly,
)
from netkit.core.targets import Target
from netkit.io.aio import StopSignal
from netkit.io.measure.probe_run import TargetSource, run_probe

MS = 1_000_000


@contextmanager
def ports() -> Iterator[tuple[int, int]]:
    """(an open port, a refused port), both held by this test."""
    up = socket.socket()
    up.bind(("127.0.0.1", 0))
    up.listen(1024)
    down = socket.socket()
    down.bind(("127.0.0.1", 0))
    try:
        yield up.getsockname()[1], down.getsockname()[1]
    finally:
        up.close()
        down.close()


class Recorder:
    """A ProbeListener that keeps everything it is told."""

    def __init__(self) -> None:
        self.starts: list[int | None] = []
        self.attempts: list[tuple[str, int, ProbeState]] = []
        self.results: list[tuple[int, str, int | None, RepeatedResult | None]] = []
        self.batches: list[list[str]] = []
        self.rounds: list[tuple[int, int, int]] = []

    def started(self, total: int | None) -> None:
        self.starts.append(total)

    def attempted(self, target: Target, attempts: int, attempt: ProbeAttempt) -> None:
        self.attempts.append((str(target), attempts, attempt.state))

    def result(self, index: int, result: ProbeResult, round_no: int | None,
               repeated: RepeatedResult | None) -> None:
        self.results.append((index, result.target, round_no, repeated))

    def batch(self, results: Sequence[ProbeResult]) -> None:
        self.batches.append([r.target for r in results])

    def round_ended(self, round_no: int, up: int, total: int) -> None:
        self.rounds.append((round_no, up, total))


def probe(config: ProbeRunConfig, args: list[str], listener: Recorder,
          stop_after_s: float | None = None) -> ProbeRunResult:
    async def main() -> ProbeRunResult:
        stop = StopSignal()
        if stop_after_s is not None:
            asyncio.get_running_loop().call_later(stop_after_s, stop.set)
        return await run_probe(config, TargetSource(args, None), listener, stop)

    return asyncio.run(main())


@pytest.mark.parametrize("engine", [ProbeEngine.ASYNC, ProbeEngine.SCAN])
def test_a_pass_reports_each_target_then_the_batch_in_input_order(engine: ProbeEngine) -> None:
    with ports() as (up, down):
        rec = Recorder()
        config = ProbeRunConfig(ProbeOptions(), engine=engine, only=ShowOnly.FAILED)
        res = probe(config, [f"127.0.0.1:{down},{up}", f"localhost:{up}"], rec)
    targets = [f"127.0.0.1:{down}", f"127.0.0.1:{up}", f"localhost:{up}"]
    assert rec.starts == [3]
    assert sorted(t for _i, t, _n, _r in rec.results) == sorted(targets)
    assert rec.batches == [targets]
    assert (res.summary.total, res.summary.open, res.summary.failed) == (3, 2, 1)
    assert not res.passed and not res.interrupted
    assert [r.target for r in res.rows] == [f"127.0.0.1:{down}"]  # --only failed: the rows, not the summary
    assert (engine is ProbeEngine.SCAN) == (rec.attempts == [])  # the scan loop reports results only


def test_a_stop_cuts_the_run_short_with_the_last_attempt_kept() -> None:
    with ports() as (up, down):
        rec = Recorder()
        config = ProbeRunConfig(ProbeOptions(retries=50, backoff=Backoff(100 * MS, 1.0), deadline_s=20))
        res = probe(config, [f"127.0.0.1:{up}", f"127.0.0.1:{down}"], rec, stop_after_s=0.35)
    assert res.interrupted and not res.passed
    first, second = res.rows
    assert first.state is ProbeState.OPEN
    assert second.state is ProbeState.CLOSED and second.attempts >= 2
    assert second.error == "interrupted; last attempt: connection refused"
    assert [t for _i, t, _n, _r in rec.results].count(f"127.0.0.1:{down}") == 1  # reported once


def test_wait_any_stops_once_one_is_up_without_an_interruption() -> None:
    with ports() as (up, down):
        rec = Recorder()
        config = ProbeRunConfig(ProbeOptions(retries=None, retry_dns=True, deadline_s=20,
                                             backoff=Backoff(50 * MS, 1.0)), wait=True, any_=True)
        res = probe(config, [f"127.0.0.1:{down}", f"127.0.0.1:{up}"], rec)
    assert res.passed and not res.interrupted
    assert [r.state for r in res.rows] == [ProbeState.CLOSED, ProbeState.OPEN]
    assert res.rows[0].error is not None and res.rows[0].error.startswith("stopped waiting")


def test_repeat_tallies_rounds_and_paces_them() -> None:
    with ports() as (up, down):
        rec = Recorder()
        config = ProbeRunConfig(ProbeOptions(), repeat=3, interval_s=0.05)
        t0 = time.monotonic()
        res = probe(config, [f"127.0.0.1:{up}", f"127.0.0.1:{down}"], rec)
        took = time.monotonic() - t0
    assert rec.rounds == [(1, 1, 2), (2, 1, 2), (3, 1, 2)]
    assert rec.starts == [2, 2, 2]
    assert (res.rounds_done, res.rounds) == (3, 3)
    assert res.repeated is not None and [(a.rounds, a.opens) for a in res.repeated] == [(3, 3), (3, 0)]
    assert [n for _i, _t, n, _r in rec.results] == [1, 1, 2, 2, 3, 3]
    assert res.summary.success_rate == 0.5 and not res.passed
    assert took >= 0.1  # two pauses between three rounds


def test_no_targets_and_bad_lines_are_input_errors(tmp_path: Path) -> None:
    from netkit.core.errors import InputError

    with pytest.raises(InputError, match="no targets"):
        TargetSource([], None).check()
    bad = tmp_path / "t.txt"
    bad.write_text("127.0.0.1:1\n\n127.0.0.1:http\n")
    with pytest.raises(InputError, match=r"t\.txt:3: invalid port 'http': not a number"):
        TargetSource([], str(bad)).check()
