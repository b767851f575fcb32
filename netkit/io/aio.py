"""Running coroutines: uvloop where installed, graceful stop on SIGINT/SIGTERM.

Long-running commands (servers, meters) do not rely on KeyboardInterrupt unwinding their stack:
they wait on a ``StopSignal`` and return a complete result, so the CLI can print the summary
and choose the exit status (130 when stopped by SIGINT, as ping-like tools do, or as an issue says).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    """``asyncio.run`` on uvloop when available."""
    factory = _loop_factory() if use_uvloop else None
    if factory is None:
        return asyncio.run(coro)
    runner_cls = getattr(asyncio, "Runner", None)
    if runner_cls is None:  # Python 3.10: no loop_factory
        asyncio.set_event_loop_policy(__import__("uvloop").EventLoopPolicy())
        return asyncio.run(coro)
    with runner_cls(loop_factory=factory) as runner:
        return runner.run(coro)


class StopSignal:
    """An event set by SIGINT or SIGTERM; remembers which signal arrived first.

    Use as an async context manager inside the running loop::

        async with StopSignal() as stop:
            await stop.wait()       # or: asyncio.wait([... , stop.task()])
        if stop.signum == signal.SIGINT: ...
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self._signals = signals
        self._event = asyncio.Event()
        self.signum: int | None = None
        self._installed: list[int] = []

    def _fire(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def set(self) -> None:
        """Stop without a signal (a test, a deadline, a --once server)."""
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    async def __aenter__(self) -> StopSignal:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            try:
                loop.add_signal_handler(sig, self._fire, sig)
                self._installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or no signal support: stop by set() only
        return self

    async def __aexit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

    @property
    def interrupted(self) -> bool:
        return self.signum == signal.SIGINT


async def wait_first(aw: Awaitable[T], stop: StopSignal) -> T | None:
    """Await ``aw`` unless ``stop`` fires first (then cancel it and return None)."""
    task = asyncio.ensure_future(aw)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        return None
    finally:
        stopper.cancel()
