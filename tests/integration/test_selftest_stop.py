"""Ctrl-C during ``netkit selftest`` keeps the rows already finished and names the checks not run."""

from __future__ import annotations

from netkit.io.aio import StopSignal, run
from netkit.selftest.runner import run_all


def test_a_stop_keeps_the_finished_rows_and_names_the_checks_not_run() -> None:
    stop = StopSignal()
    announced: list[str] = []

    def on_check(name: str, done: int, total: int) -> None:
        announced.append(name)
        if done == 1:  # the second check is about to start: stop as a Ctrl-C would
            stop.set()

    report = run(run_all(only=["udp", "probe", "loss"], on_check=on_check, stop=stop))
    assert len(announced) == 2
    assert report.checks and all(c.ok or c.skipped for c in report.checks)  # the first check's rows
    assert len(report.not_run) == 2 and report.not_run[0] == announced[1]  # the one cut short, then the rest
