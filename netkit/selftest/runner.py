"""Discovers ``check_*`` modules and runs them in ORDER, each bounded by a timeout."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import shutil
from collections.abc import Callable

import netkit.selftest as pkg
from netkit.core.selftest_models import CheckResult, SelftestReport
from netkit.io.aio import StopSignal
from netkit.selftest.base import SelftestEnv

CHECK_TIMEOUT_S = 60.0
CANCEL_GRACE_S = 5.0  # a check cut short by Ctrl-C closes its servers within this


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
                  on_check: Callable[[str, int, int], None] | None = None,
                  stop: StopSignal | None = None) -> SelftestReport:
    """Run the checks (``only``: those names) in ORDER; ``on_check(name, done, total)`` before each.

    ``stop`` (Ctrl-C) ends the check under way (its servers close in its own ``finally``) and
    leaves the rest out: the rows already finished are kept, and ``not_run`` names the others.
    """
    env = env or SelftestEnv()
    results: list[CheckResult] = []
    not_run: list[str] = []
    try:
        chosen = [(modname, modname.rsplit(".check_", 1)[-1]) for _, modname in discover()]
        chosen = [(m, short) for m, short in chosen if not only or short in only]
        for done, (modname, short) in enumerate(chosen):
            if stop is not None and stop.is_set():
                not_run = [name for _, name in chosen[done:]]
                break
            if on_check is not None:
                on_check(short, done, len(chosen))
            mod = importlib.import_module(modname)
            check = asyncio.ensure_future(asyncio.wait_for(mod.run(env), CHECK_TIMEOUT_S))
            if stop is not None:
                stopped = asyncio.ensure_future(stop.wait())
                await asyncio.wait({check, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if not check.done():
                    check.cancel()
                    await asyncio.wait({check}, timeout=CANCEL_GRACE_S)
                    not_run = [name for _, name in chosen[done:]]
                    break
            try:
                results.extend(await check)
            except asyncio.TimeoutError:
                results.append(CheckResult(short, False, detail=f"timed out after {CHECK_TIMEOUT_S:.0f}s"))
            except Exception as exc:  # a broken check is a failed row, never a crash
                results.append(CheckResult(short, False, detail=f"{type(exc).__name__}: {exc}"))
    finally:
        shutil.rmtree(env.workdir, ignore_errors=True)
    return SelftestReport(results, tuple(not_run))
