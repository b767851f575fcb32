"""Types shared by selftest checks."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path


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


@dataclass
class SelftestEnv:
    """What checks may share: a scratch directory and the loopback host to bind."""

    host: str = "127.0.0.1"
    quick: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="netkit-selftest-")))
