"""Types shared by selftest checks (``CheckResult`` lives in ``netkit.core.selftest_models``)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from netkit.core.selftest_models import CheckResult

__all__ = ["CheckResult", "SelftestEnv"]


@dataclass
class SelftestEnv:
    """What checks may share: a scratch directory and the loopback host to bind."""

    host: str = "127.0.0.1"
    quick: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="netkit-selftest-")))
