"""Start-up time: ``netkit --version`` against ``python -c "import click"`` in the same interpreter.

Both are run through the same Python (the venv's, never the pyenv shim, which is a shell script);
``netkit`` is the installed entry point next to that interpreter. The median of RUNS runs each,
interleaved so background load hits both alike. Target: ``--version`` at most 1.2x ``import click``
(nothing but click may load for it).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from benchlib import Row, netkit_argv

RUNS = 30


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def _medians(*argvs: list[str]) -> list[float]:
    samples: list[list[float]] = [[] for _ in argvs]
    for argv in argvs:  # warm the page cache once
        _time(argv)
    for _ in range(RUNS):
        for i, argv in enumerate(argvs):
            samples[i].append(_time(argv))
    return [statistics.median(s) for s in samples]


def startup() -> list[Row]:
    click_ms, version_ms, help_ms, pass_ms = _medians(
        [sys.executable, "-c", "import click"],
        netkit_argv("--version"),
        netkit_argv("--help"),
        [sys.executable, "-c", "pass"],
    )
    note = f"median of {RUNS}; python -c pass {pass_ms:.1f} ms"
    return [
        Row("startup: netkit --version vs python -c 'import click'", version_ms, click_ms, "ms",
            note + "; target ratio <= 1.2"),
        Row("startup: netkit --help vs python -c 'import click'", help_ms, click_ms, "ms", note),
    ]


CASES = [startup]
