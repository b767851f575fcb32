"""What ``netkit selftest`` shows: a one-line progress view while it runs, then one table.

The banner is said once: on a terminal the progress line (transient, on stderr) names the check
running, and the table's title is the only heading left on screen; off a terminal one status line
goes to stderr and the table follows on stdout as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from netkit.render.tables import Col, fitted_table, state_cell

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table
    from rich.text import Text

    from netkit.core.selftest_models import CheckResult

TITLE = "netkit selftest"


def banner(only: Sequence[str] = ()) -> str:
    """The status line said once when no live view runs (stderr not a terminal)."""
    what = ", ".join(only) if only else "every capability"
    return f"{TITLE}: running {what} against netkit's own servers on 127.0.0.1"

SELFTEST_COLS = (
    Col("check"),
    Col("result"),
    Col("figure"),
    Col("detail", fold=True),
)


def selftest_table(checks: Sequence[CheckResult], *, width: int | None) -> Table:
    rows = [(c.check, state_cell(c.result), c.figure or None, c.detail or None) for c in checks]
    return fitted_table(SELFTEST_COLS, rows, width=width, title=TITLE)


def selftest_records(checks: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """The published JSON/CSV rows: check, result, figure, detail."""
    return [{"check": c.check, "result": c.result, "figure": c.figure, "detail": c.detail} for c in checks]


def progress_line(current: str | None, done: int, total: int) -> Text:
    """The live line while the checks run: which one, and how many are done."""
    from rich.text import Text

    if current is None:
        return Text(f"{TITLE}: starting")
    return Text(f"{TITLE}: {current} ({done + 1}/{total}) on 127.0.0.1", style="dim")
