"""``netkit monitor``'s trace targets: one trace round each, on an event loop that can run it.

A trace's answers arrive on its sockets' error queues (``IP_RECVERR``), which the kernel announces
with POLLERR; libuv (uvloop, which ``netkit monitor`` runs on where installed) stops watching a
socket once poll reports POLLERR, so after the first answer a trace on uvloop hears nothing more
(measured: 1 of 10 answers per socket, against 10 of 10 on asyncio's own loop). :class:`TraceLoop`
therefore runs the trace rounds on asyncio's selector loop in a thread of its own, started at the
first trace round (a SIGHUP reload may add the first trace target), whatever loop the monitor runs
on. Cancelling the awaiting task (a stop, an overrun) cancels the round in that loop, which closes
its sockets.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from netkit.core.monitor_models import MonitorTarget, TargetRound, trace_round
from netkit.core.targets import Target
from netkit.core.trace_models import TargetTrace, TraceConfig, TraceMethod
from netkit.io.clock import DEFAULT_CLOCK, Clock

T = TypeVar("T")
#: Of the round's bound, what is left after a trace's probes for closing its sockets.
CLOSE_MARGIN_S = 0.05


class TraceLoop:
    """asyncio's selector event loop in a daemon thread; :meth:`call` runs a coroutine there."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                # Not asyncio.new_event_loop(): an installed uvloop policy would make it a uvloop.
                loop = asyncio.SelectorEventLoop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=serve, name="netkit-monitor-trace", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the trace loop; cancelling the caller cancels it there."""
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure())
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the loop (after cancelling anything still on it) and its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            asyncio.get_running_loop().stop()

        loop.call_soon_threadsafe(lambda: loop.create_task(drain()))
        thread.join(timeout=2.0)
        if not thread.is_alive():
            loop.close()


def trace_config(t: MonitorTarget, window: int | None = None) -> TraceConfig:
    """One round of ``netkit trace --method udp -n`` as the target's settings make it; ``window``: the
    TTLs probed at once before any answer (the destination's known TTL: no probe goes past it while
    the path stays; the plan looks further as soon as a router answers there)."""
    cfg = TraceConfig(method=TraceMethod.UDP, count=1, interval_s=t.interval_s, timeout_s=t.timeout_s,
                      max_hops=t.max_hops, port=t.port or None, resolve_names=False)
    return cfg if window is None else replace(cfg, window=max(1, min(window, t.max_hops)))


async def trace_once(t: MonitorTarget, budget_s: float, window: int | None = None) -> TargetTrace:
    """One trace round of ``t`` (run on the trace loop); cut at ``budget_s`` with what it found."""
    from netkit.io.measure.trace import trace_targets

    stop = asyncio.Event()
    timer = asyncio.get_running_loop().call_later(max(0.0, budget_s - CLOSE_MARGIN_S), stop.set)
    try:
        return (await trace_targets([Target(t.host, t.port)], trace_config(t, window), stop=stop))[0]
    finally:
        timer.cancel()


async def trace_round_on(loop: TraceLoop, t: MonitorTarget, *, clock: Clock = DEFAULT_CLOCK,
                         window: int | None = None) -> TargetRound:
    """A trace target's monitor round: one trace round on ``loop``, within the round's bound."""
    start = clock.now_ns()
    trace = await loop.call(trace_once(t, t.budget_s, window))
    return trace_round(t, trace, clock.now_ns() - start)
