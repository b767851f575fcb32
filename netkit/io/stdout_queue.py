"""A text stream for a server's stdout whose writes never block the server.

A server prints an event per connection or datagram. Written straight to a pipe, one stalled
reader (``| less`` paused, a suspended terminal) fills the pipe, the next ``write`` blocks the
event loop, and the server stops serving and stops hearing SIGTERM. :class:`QueuedWriter` sits in
place of stdout instead:

- ``write(text)`` appends to a queue bounded by ``max_bytes`` and returns at once; a thread of
  its own writes the queue to the file descriptor (``os.write``: it holds no Python lock while
  blocked, so the interpreter can exit past it).
- When the queue is full the write is dropped and counted (``dropped``); ``on_first_drop`` is
  called once, from the writer's caller, so the server can say so on stderr.
- ``droppable = False`` (the final summary) queues the text whatever the bound: one document.
- ``close(...)`` waits while the thread makes progress (a slow reader gets the rest) and gives up
  after ``idle_s`` without progress or ``max_s`` in all (a stalled reader does not hold the exit).
- A reader that went away (EPIPE) ends the writes and calls ``on_broken`` from the thread.

Text is written as each ``write`` gave it, in order; one ``write`` is one event line, so a drop
never cuts a line in two.

:class:`ServerStdout` is what a server command uses: the queued stream, the one broken-pipe guard
around its event writer (a reader that went away stops the server like a signal, and the command
then leaves with the quiet exit 141) and the warnings about dropped events (:func:`notice`).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

#: Pending output at most: about 5,000 jsonl events; a reader that falls further behind loses events.
DEFAULT_MAX_BYTES = 1 << 20
#: close(): give up when the reader took nothing for this long...
CLOSE_IDLE_S = 0.5
#: ...or after this long in all.
CLOSE_MAX_S = 5.0
_PIECE = 1 << 16


class QueuedWriter:
    """A write-only text stream over a file descriptor, drained by a daemon thread."""

    def __init__(self, fd: int, *, max_bytes: int = DEFAULT_MAX_BYTES, encoding: str = "utf-8",
                 isatty: bool = False, on_first_drop: Callable[[], None] | None = None,
                 on_broken: Callable[[], None] | None = None) -> None:
        self.fd = fd
        self.max_bytes = max_bytes
        self.encoding = encoding
        self._isatty = isatty
        self.on_first_drop = on_first_drop
        self.on_broken = on_broken
        self.droppable = True
        self.dropped = 0  # writes dropped because the queue was full
        self.written_bytes = 0
        self.broken = False
        self._queue: deque[bytes] = deque()
        self._pending = 0
        self._busy = False  # the thread holds bytes it has not finished writing
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="netkit-stdout", daemon=True)
        self._thread.start()

    @classmethod
    def replacing(cls, stream: IO[str], **kwargs: Any) -> QueuedWriter | None:
        """A writer for ``stream``'s descriptor (flushed first), or None when it has none (tests)."""
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
        try:
            tty = stream.isatty()
        except (OSError, ValueError):
            tty = False
        return cls(fd, encoding=getattr(stream, "encoding", None) or "utf-8", isatty=tty, **kwargs)

    # ----- the text-stream surface print(), Rich and csv use ---------------------------------
    def write(self, text: str) -> int:
        if not text:
            return 0
        data = text.encode(self.encoding, errors="replace")
        first_drop = False
        with self._cond:
            if self.broken or self._closed:
                return len(text)
            if self.droppable and self._pending + len(data) > self.max_bytes:
                self.dropped += 1
                first_drop = self.dropped == 1
            else:
                self._queue.append(data)
                self._pending += len(data)
                self._cond.notify()
        if first_drop and self.on_first_drop is not None:
            self.on_first_drop()
        return len(text)

    def flush(self) -> None:
        """Nothing to do: the thread writes as soon as text is queued."""

    def isatty(self) -> bool:
        return self._isatty

    def fileno(self) -> int:
        return self.fd

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending_bytes(self) -> int:
        with self._cond:
            return self._pending

    # ----- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                chunk = b"".join(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                view = memoryview(chunk)
                while view:
                    # In pieces: a blocking write to a pipe returns only when all of it went in,
                    # and close() judges the reader by the progress it sees.
                    n = os.write(self.fd, view[:_PIECE])
                    view = view[n:]
                    with self._cond:
                        self._pending -= n
                        self.written_bytes += n
            except OSError:  # EPIPE (the reader went away) or a closed descriptor
                with self._cond:
                    self.broken = True
                    self._queue.clear()
                    self._pending = 0
                    self._busy = False
                    self._cond.notify_all()
                if self.on_broken is not None:
                    self.on_broken()
                return
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def close(self, idle_s: float = CLOSE_IDLE_S, max_s: float = CLOSE_MAX_S) -> bool:
        """Stop taking writes and wait for the queue to drain; True when everything was written.

        Waits while the reader makes progress, at most ``idle_s`` without progress and ``max_s``
        in all: the thread may stay blocked in ``os.write`` afterwards (a daemon: the process
        exits past it).
        """
        deadline = time.monotonic() + max_s
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            last_written, last_change = self.written_bytes, time.monotonic()
            while (self._queue or self._busy) and not self.broken:
                now = time.monotonic()
                if self.written_bytes != last_written:
                    last_written, last_change = self.written_bytes, now
                wait = min(deadline, last_change + idle_s) - now
                if wait <= 0:
                    break
                self._cond.wait(min(wait, 0.05))
            return not (self._queue or self._busy) and not self.broken


def notice(stderr: IO[str], message: str, wait_s: float = 0.5) -> None:
    """``netkit: warning: MESSAGE`` on stderr without ever holding the server.

    stderr may be the very pipe that stalled (``2>&1 | less``): a thread of its own writes the
    line with ``os.write`` (no Python lock held while blocked), and we wait for it at most ``wait_s``.
    A stream without a descriptor (tests) is written directly: it never blocks.
    """
    try:
        fd = stderr.fileno()
        stderr.flush()
    except (AttributeError, OSError, ValueError):
        try:
            stderr.write(f"netkit: warning: {message}\n")
            stderr.flush()
        except (OSError, ValueError):
            pass
        return
    data = f"netkit: warning: {message}\n".encode(errors="replace")

    def write() -> None:
        try:
            os.write(fd, data)
        except OSError:
            pass

    writer = threading.Thread(target=write, name="netkit-notice", daemon=True)
    writer.start()
    writer.join(wait_s)


class ServerStdout:
    """A server's stdout, and the one guard for a reader that goes away.

    ``stream`` is what events are written to: a :class:`QueuedWriter` over stdout's descriptor
    (so printing never blocks serving), or stdout itself when it has no descriptor (tests).
    :meth:`guarded` wraps an event writer: once the reader is gone (EPIPE seen by the writer's
    thread, or ``BrokenPipeError`` from a direct write) nothing more is written and the server's
    stop event is set, as a signal would. :meth:`close` raises ``BrokenPipeError`` in that case,
    which the CLI's entry point turns into the quiet exit 141.
    """

    def __init__(self, stdout: IO[str], stderr: IO[str]) -> None:
        self.stderr = stderr
        self.broken = False
        self._loop: Any = None
        self._stop: Any = None
        self.writer = QueuedWriter.replacing(stdout, on_first_drop=self._first_drop, on_broken=self._reader_gone)
        self.stream: IO[str] = self.writer if self.writer is not None else stdout  # type: ignore[assignment]

    def bind(self, stop: Any) -> None:
        """``stop``: the running server's stop event (an ``asyncio.Event``), set when the reader goes."""
        import asyncio

        self._loop, self._stop = asyncio.get_running_loop(), stop
        if self.broken:
            stop.set()

    def guarded(self, write: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
        """``write`` (one event) made safe: nothing after the reader went away, and that stops the server."""

        def sink(event: dict[str, Any]) -> None:
            if self.broken:
                return
            try:
                write(event)
            except BrokenPipeError:
                self._reader_gone()

        return sink

    @property
    def dropped(self) -> int | None:
        """Events dropped while the reader stalled; None when stdout is not queued."""
        return None if self.writer is None else self.writer.dropped

    def _first_drop(self) -> None:
        notice(self.stderr, "stdout is not keeping up: events are dropped while it stalls (counted in events_dropped)")

    def _reader_gone(self) -> None:
        """From the writer's thread or the loop's: stop like a signal would."""
        self.broken = True
        loop, stop = self._loop, self._stop
        if loop is None or stop is None:
            return
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:
            pass  # the loop already ended

    def check(self) -> None:
        """Raise ``BrokenPipeError`` when the reader went away (leave quietly, exit 141)."""
        if self.broken:
            raise BrokenPipeError

    def summary_next(self) -> None:
        """The summary comes next: one document, queued whole whatever the bound."""
        if self.writer is not None:
            self.writer.droppable = False

    def close(self, idle_s: float = CLOSE_IDLE_S, max_s: float = CLOSE_MAX_S, *, final: bool = True) -> None:
        """Give queued output its chance (see :meth:`QueuedWriter.close`) and say what was lost.

        ``final`` False (an error ended the command): no warnings, no ``BrokenPipeError``.
        """
        if self.writer is None:
            if final:
                self.check()
            return
        written = self.writer.close(idle_s=idle_s, max_s=max_s)
        if not final:
            return
        if self.writer.broken:
            raise BrokenPipeError
        if not written:
            # A stalled reader: the server stopped at once all the same; say what was lost.
            notice(self.stderr, "stdout is not being read: the summary (and any queued events) were not written")
        elif self.writer.dropped:
            notice(self.stderr, f"{self.writer.dropped} events were dropped while stdout was not read")
