"""Discovers ``check_*`` modules and runs them in ORDER, each bounded by a timeout."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import shutil
from collections.abc import Callable

import netkit.selftest as pkg
from netkit.core.selftest_models import CheckResult, SelftestReport
from netkit.selftest.base import SelftestEnv

CHECK_TIMEOUT_S = 60.0


def check_names() -> list[str]:
    """The names ``--only`` takes (``tcp`` for ``check_tcp.py``), sorted; nothing is imported."""
    return sorted(info.name[len("check_"):] for info in pkgutil.iter_modules(pkg.__path__)
                  if info.name.startswith("check_"))


def discover() -> list[tuple[int, str]]:
    found = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("check_"):
            mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
            found.append((int(getattr(mod, "ORDER", 100)), mod.__name__))
    return sorted(found)


async def run_all(env: SelftestEnv | None = None, only: list[str] | None = None,
                  on_check: Callable[[str, int, int], None] | None = None) -> SelftestReport:
    """Run the checks (``only``: those names) in ORDER; ``on_check(name, done, total)`` before each."""
    env = env or SelftestEnv()
    results: list[CheckResult] = []
    try:
        chosen = [(modname, modname.rsplit(".check_", 1)[-1]) for _, modname in discover()]
        chosen = [(m, short) for m, short in chosen if not only or short in only]
        for done, (modname, short) in enumerate(chosen):
            if on_check is not None:
                on_check(short, done, len(chosen))
            mod = importlib.import_module(modname)
            try:
                results.extend(await asyncio.wait_for(mod.run(env), CHECK_TIMEOUT_S))
            except asyncio.TimeoutError:
                results.append(CheckResult(short, False, detail=f"timed out after {CHECK_TIMEOUT_S:.0f}s"))
            except Exception as exc:  # a broken check is a failed row, never a crash
                results.append(CheckResult(short, False, detail=f"{type(exc).__name__}: {exc}"))
    finally:
        shutil.rmtree(env.workdir, ignore_errors=True)
    return SelftestReport(results)
