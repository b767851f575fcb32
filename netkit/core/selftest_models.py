"""What ``netkit selftest`` reports: one row per check, and the verdict over all rows. Pure data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """One row of the selftest table."""

    check: str
    ok: bool
    figure: str = ""
    detail: str = ""
    skipped: bool = False

    @property
    def result(self) -> str:
        return "skip" if self.skipped else ("pass" if self.ok else "fail")


@dataclass(frozen=True)
class SelftestReport:
    """Every row, in the order the checks ran. ``not_run``: checks a stop (Ctrl-C) left out."""

    checks: list[CheckResult]
    not_run: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """No row failed (a skipped row is not a failure)."""
        return all(c.ok or c.skipped for c in self.checks)
