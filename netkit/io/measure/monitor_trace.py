"""``netkit monitor``'s trace targets: one trace round each, in a thread of a pool of their own.

A trace's answers arrive on its sockets' error queues, announced with POLLERR, which libuv (the
uvloop ``netkit monitor`` runs on where installed) stops watching: so the trace engine runs its own
selector loop (``netkit.io.measure.trace.trace_sync``), which blocks a thread for the round. Those
threads come from :class:`TraceThreads`, not from the event loop's default executor, so trace
rounds never hold up the name lookups of the other targets. A round ends at its bound with what it
found; a cancelled round (a stop, an overrun) tells its thread, which closes its sockets within
``trace.MAX_WAIT_S``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from netkit.core.monitor_models import MonitorTarget, TargetRound, trace_round
from netkit.core.targets import Target
from netkit.core.trace_models import TargetTrace, TraceConfig, TraceMethod
from netkit.io.clock import DEFAULT_CLOCK, Clock

#: Trace rounds running at once; more wait for a thread (each round's bound runs from its start).
MAX_TRACE_THREADS = 64
NS = 1_000_000_000


def trace_config(t: MonitorTarget, window: int | None = None) -> TraceConfig:
    """One round of ``netkit trace --method udp -n`` as the target's settings make it; ``window``: the
    TTLs probed at once before any answer (the destination's known TTL: no probe goes past it while
    the path stays; the plan looks further as soon as a router answers there)."""
    cfg = TraceConfig(method=TraceMethod.UDP, count=1, interval_s=t.interval_s, timeout_s=t.timeout_s,
                      max_hops=t.max_hops, port=t.port or None, resolve_names=False)
    return cfg if window is None else replace(cfg, window=max(1, min(window, t.max_hops)))


def _stop_margin_ns(budget_ns: int) -> int:
    """How long before the round's bound to ask the trace to stop: the engine sees a stop within
    its longest wait (``trace.MAX_WAIT_S``), and then closes its sockets."""
    from netkit.io.measure.trace import MAX_WAIT_S

    return min(int(MAX_WAIT_S * NS), budget_ns // 2)


def trace_once(t: MonitorTarget, window: int | None, cancelled: threading.Event) -> TargetTrace:
    """One trace round of ``t`` in this thread, ended at the round's bound or when ``cancelled``."""
    from netkit.io.measure.trace import trace_sync

    budget_ns = int(t.budget_s * NS)
    stop_at = time.monotonic_ns() + budget_ns - _stop_margin_ns(budget_ns)

    def stopped() -> bool:
        return cancelled.is_set() or time.monotonic_ns() >= stop_at

    return trace_sync([Target(t.host, t.port)], trace_config(t, window), stopped=stopped)[0]


class TraceThreads:
    """The threads trace rounds run in (created at the first round, as a reload may add the first
    trace target); :meth:`close` when the monitor stops."""

    def __init__(self, max_threads: int = MAX_TRACE_THREADS) -> None:
        self.max_threads = max_threads
        self._pool: ThreadPoolExecutor | None = None

    async def round(self, t: MonitorTarget, *, clock: Clock = DEFAULT_CLOCK, window: int | None = None) -> TargetRound:
        """A trace target's monitor round: one trace round, within the round's bound."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_threads, thread_name_prefix="netkit-monitor-trace")
        start = clock.now_ns()
        cancelled = threading.Event()
        try:
            trace = await asyncio.get_running_loop().run_in_executor(
                self._pool, functools.partial(trace_once, t, window, cancelled))
        finally:
            cancelled.set()  # a cancelled round: its thread stops and closes its sockets
        return trace_round(t, trace, clock.now_ns() - start)

    def close(self) -> None:
        """Drop rounds not started; those running stop on their own (each was told when cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
