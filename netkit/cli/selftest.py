"""``netkit selftest``: the README's first command."""

from __future__ import annotations

import click

from netkit.cli.context import get_output, output_options
from netkit.core.exitcodes import ExitCode


@click.command()
@click.option("--only", multiple=True, help="Run only these checks (by module name, e.g. tcp).")
@click.option("--quick", is_flag=True, help="Smaller transfers (e.g. 8 MiB instead of 64 MiB) for slow machines.")
@output_options
def selftest(only: tuple[str, ...], quick: bool) -> int:
    """Start netkit's own servers on loopback and run every capability against them."""
    from netkit.io.aio import run
    from netkit.render.tables import add_row, make_table, state_cell
    from netkit.selftest.base import SelftestEnv
    from netkit.selftest.runner import run_all

    out = get_output()
    out.info("netkit selftest: running every capability against netkit's own servers on 127.0.0.1")
    report = run(run_all(SelftestEnv(quick=quick), only=list(only) or None))

    def table():  # type: ignore[no-untyped-def]
        t = make_table(["check", "result", ("figure", "right"), "detail"], title="netkit selftest")
        for c in report.checks:
            add_row(t, c.check, state_cell(c.result), c.figure, c.detail)
        return t

    out.emit(
        {"passed": report.passed, "checks": [
            {"check": c.check, "result": c.result, "figure": c.figure, "detail": c.detail}
            for c in report.checks
        ]},
        table=table,
        rows=[{"check": c.check, "result": c.result, "figure": c.figure, "detail": c.detail}
              for c in report.checks],
    )
    return ExitCode.OK if report.passed and report.checks else ExitCode.CHECK_FAILED
