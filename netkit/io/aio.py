"""Running coroutines: uvloop where installed, graceful stop on SIGINT/SIGTERM/SIGHUP.

Long-running commands (servers, meters) do not rely on KeyboardInterrupt unwinding their stack:
they wait on a ``StopSignal`` and return a complete result, so the CLI can print the summary
and choose the exit status (130 when stopped by SIGINT, as ping-like tools do, or as an issue says).
SIGHUP (the terminal went away) stops like SIGTERM: a meter still reports what it measured.

``run`` also keeps the loop quiet when a reader or a peer goes away: a task that failed with a
broken pipe or a reset while the command was being interrupted (``Ctrl-C`` on ``... | wc -c``)
is not reported as "Task exception was never retrieved" with a traceback.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: The signals that stop a command gracefully (the summary is still printed).
STOP_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# A reader or a peer that went away: expected when a run is cut short, never worth a traceback.
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]  # optional: absent off CPython/Unix
    except ImportError:
        return None
    return uvloop.new_event_loop


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Unretrieved task errors: silent when the other end went away, else one line (no traceback)."""
    exc = context.get("exception")
    if isinstance(exc, (_GONE, asyncio.CancelledError)):
        return
    what = f"{type(exc).__name__}: {exc}" if exc is not None else str(context.get("message", "error"))
    try:
        sys.stderr.write(f"netkit: warning: a background task failed: {what}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


async def _quiet(coro: Coroutine[Any, Any, T]) -> T:
    asyncio.get_running_loop().set_exception_handler(_exception_handler)
    return await coro


def run(coro: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    """``asyncio.run`` on uvloop when available, with netkit's quiet exception handler."""
    factory = _loop_factory() if use_uvloop else None
    if factory is None:
        return asyncio.run(_quiet(coro))
    runner_cls = getattr(asyncio, "Runner", None)
    if runner_cls is None:  # Python 3.10: no loop_factory
        asyncio.set_event_loop_policy(__import__("uvloop").EventLoopPolicy())
        return asyncio.run(_quiet(coro))
    with runner_cls(loop_factory=factory) as runner:
        return runner.run(_quiet(coro))


def run_until_stopped(make: Callable[[StopSignal | None], Coroutine[Any, Any, T]], stop: StopSignal | None) -> T:
    """``run(make(stop))``, with ``stop``'s signal handlers installed on the loop while it runs
    (SIGINT/SIGTERM/SIGHUP then end the coroutine gracefully); ``stop`` None runs it as is."""
    if stop is None:
        return run(make(None))
    signal_stop = stop

    async def main() -> T:
        async with signal_stop:
            return await make(signal_stop)

    return run(main())


class StopSignal:
    """An event set by SIGINT, SIGTERM or SIGHUP; remembers which signal arrived first.

    Use as an async context manager inside the running loop::

        async with StopSignal() as stop:
            await stop.wait()       # or: asyncio.wait([... , stop.task()])
        if stop.signum == signal.SIGINT: ...

    or, around blocking code whose threads poll a ``threading.Event``, as a plain context
    manager in the main thread (``with StopSignal() as stop: work(stop=stop.flag)``).
    """

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self._signals = signals
        self._event = asyncio.Event()
        #: Set with the event, for threads (blocking code cannot await the asyncio event).
        self.flag = threading.Event()
        self.signum: int | None = None
        self._installed: list[int] = []
        self._previous: dict[int, Any] = {}

    def _fire(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self.flag.set()
        self._event.set()

    def set(self) -> None:
        """Stop without a signal (a test, a deadline, a --once server)."""
        self.flag.set()
        self._event.set()

    def is_set(self) -> bool:
        return self.flag.is_set()

    def __enter__(self) -> StopSignal:
        for sig in self._signals:
            try:
                self._previous[sig] = signal.signal(sig, lambda signum, _frame: self._fire(signum))
            except ValueError:  # not the main thread: stop by set() only
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

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

