"""``netkit selftest``: the README's first command.

Options -> ``SelftestEnv`` -> ``netkit.selftest.runner.run_all`` -> ``SelftestReport`` ->
``netkit.render.selftest`` -> exit code (1 when a row failed).
"""

from __future__ import annotations

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.params import Choice
from netkit.core.exitcodes import ExitCode
from netkit.selftest.runner import check_names

CHECKS = check_names()


@click.command()
@click.option("--only", multiple=True, type=Choice(CHECKS), metavar="CHECK",
              help="Run only this check (repeatable): " + ", ".join(CHECKS) + ".")
@click.option("--quick", is_flag=True, help="Smaller transfers (e.g. 8 MiB instead of 64 MiB) for slow machines.")
@output_options
def selftest(only: tuple[str, ...], quick: bool) -> int:
    """Start netkit's own servers on loopback and run every capability against them.

    Each row is one check: pass, fail or skip (ICMP without the privilege, say), with its
    figure and what it verified. No traffic leaves 127.0.0.1.

    Exit status: 0 no check failed, 1 a check failed, 2 usage, 130 interrupted by Ctrl-C.

    \b
    Examples:
      netkit selftest
      netkit selftest --only tcp --only throughput
      netkit --format json selftest --quick
    """
    from netkit.io.aio import StopSignal, run_until_stopped
    from netkit.render.live import LiveScreen
    from netkit.render.selftest import banner, progress_line, selftest_records, selftest_table
    from netkit.selftest.base import SelftestEnv
    from netkit.selftest.runner import run_all

    out = get_output()
    progress: tuple[str | None, int, int] = (None, 0, 0)
    screen = LiveScreen(out, lambda: progress_line(*progress))

    def on_check(name: str, done: int, total: int) -> None:
        nonlocal progress
        progress = (name, done, total)
        screen.refresh()

    with screen:
        if not screen.active:
            out.info(banner(only))
        stop = StopSignal()
        report = run_until_stopped(
            lambda s: run_all(SelftestEnv(quick=quick), only=list(only) or None, on_check=on_check, stop=s), stop)
    records = selftest_records(report.checks)
    out.emit({"passed": report.passed, "checks": records, "interrupted": bool(report.not_run)},
             table=lambda: selftest_table(report.checks, width=out.width), rows=records)
    if report.not_run:
        out.info(f"netkit: interrupted: not run: {', '.join(report.not_run)}")
        if stop.interrupted:
            return ExitCode.INTERRUPTED
    return ExitCode.OK if report.passed and report.checks and not report.not_run else ExitCode.CHECK_FAILED
