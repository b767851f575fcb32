"""``netkit measure http --concurrency N`` over worker processes: one event loop per core.

Why: parsing a response with h11 and writing the next request costs tens of microseconds of Python
per request, all on one core; with N connections in one loop each response also waits for the
others' parsing before it is stamped. The workers share the connections (and ``--count``) between
them; each runs :func:`netkit.io.measure.http._measure_url` for its share, with the parent's start
and wall-clock end, and streams every sample to the parent through a pipe (batches of at most
:data:`BATCH` samples or :data:`BATCH_NS` old). The parent numbers the samples as they arrive and
books each in one :class:`~netkit.core.http_result.HttpUrlResult` (so counts, errors by kind, the
kept phases and ``sampled_every`` are exactly as in one process) and hands each to the sink (jsonl
streams one object per request, the live view counts).

Stopping: Ctrl-C reaches the workers too (one process group); the parent also sends them SIGTERM
when its own stop is set. Each worker stops as a single process does (requests under way are not
counted), sends what it has and exits; a worker that outlives the run's bounds is killed.

Forked before any event loop runs in the parent (for each URL), so a worker starts with no loop,
no connection and no thread but its own.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import struct
import time
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from netkit.core.errors import RuntimeFailure
from netkit.core.http_config import HttpConfig
from netkit.core.http_result import HttpSample, HttpUrlResult
from netkit.core.nq_config import HttpUrl
from netkit.io.aio import StopSignal, run_until_stopped

BATCH = 256
BATCH_NS = 20_000_000
_LEN = struct.Struct("!I")
_GRACE_S = 5.0  # past the run's own bounds (duration, per-request timeout) before a worker is killed

Sink = Any  # Callable[[HttpSample], None]


def usable_cores() -> int:
    """The cores this process may run on (its affinity, as taskset or a container sets it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_count(cfg: HttpConfig) -> int:
    """Processes for ``cfg``: one per core up to the concurrency, for a run as fast as it can go
    (``--interval`` 0); 1 (this process) otherwise or where there is no fork."""
    if cfg.concurrency < 2 or cfg.interval_s > 0 or not hasattr(os, "fork"):
        return 1
    n = min(cfg.concurrency, usable_cores())
    if cfg.count is not None:
        n = min(n, cfg.count)
    return max(1, n)


def _share(total: int, n: int, i: int) -> int:
    return total // n + (1 if i < total % n else 0)


class _Writer:
    """A worker's end of the pipe: samples as tuples (the URL and the number are the parent's)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.batch: list[tuple[Any, ...]] = []
        self.since = time.perf_counter_ns()

    def add(self, s: HttpSample) -> None:
        self.batch.append((s.start_ns, s.error_kind, s.error, s.status, s.bytes, s.http_version, s.tls_version,
                           s.cipher, s.cert_days_left, s.new_connection, s.redirects, s.body_match, s.phases_ns))
        now = time.perf_counter_ns()
        if len(self.batch) >= BATCH or now - self.since >= BATCH_NS:
            self.flush()
            self.since = now

    def flush(self) -> None:
        if self.batch:
            self.frame(("samples", self.batch))
            self.batch = []

    def frame(self, doc: Any) -> None:
        data = pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(_LEN.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fd, view):]


def _worker_main(cfg: HttpConfig, url: HttpUrl, clock: tuple[int, int | None], fd: int) -> NoReturn:
    """A worker process's whole life: measure its share, stream it, say how it ended, exit."""
    from netkit.io.measure.http import HttpClient, _measure_url

    code = 0
    out = _Writer(fd)
    try:
        stop = StopSignal()

        async def go(s: StopSignal | None) -> bool:
            _, interrupted = await _measure_url(HttpClient(cfg), url, s, out.add, clock=clock, book=False)
            return interrupted

        interrupted = run_until_stopped(go, stop)
        out.flush()
        out.frame(("done", interrupted or stop.is_set()))
    except BaseException as exc:  # reported by the parent as one line; never a traceback here
        code = 1
        try:
            out.flush()
            out.frame(("error", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))
        except BaseException:
            pass
    os._exit(code)


@dataclass
class _Child:
    pid: int
    fd: int
    buf: bytearray = field(default_factory=bytearray)
    eof: bool = False
    done: bool = False
    interrupted: bool = False
    error: str | None = None


def start_workers(cfg: HttpConfig, url: HttpUrl, n: int) -> tuple[list[_Child], int, int | None]:
    """Fork ``n`` workers for ``url`` sharing the concurrency and the count; (children, start, end)."""
    t0 = time.perf_counter_ns()
    end_ns = None if cfg.duration_s is None else t0 + int(cfg.duration_s * 1e9)
    children: list[_Child] = []
    try:
        for i in range(n):
            share = replace(cfg, concurrency=_share(cfg.concurrency, n, i),
                            count=None if cfg.count is None else _share(cfg.count, n, i))
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(r)
                for c in children:
                    os.close(c.fd)
                _worker_main(share, url, (t0, end_ns), w)
            os.close(w)
            children.append(_Child(pid, r))
    except BaseException:
        stop_workers(children, kill=True)
        raise
    return children, t0, end_ns


def stop_workers(children: list[_Child], *, kill: bool = False) -> None:
    """Reap every worker (SIGKILL first with ``kill``) and close the pipes."""
    for c in children:
        if kill:
            try:
                os.kill(c.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.close(c.fd)
        except OSError:
            pass
        try:
            os.waitpid(c.pid, 0)
        except ChildProcessError:
            pass


async def collect(cfg: HttpConfig, url: HttpUrl, children: list[_Child], t0: int, end_ns: int | None,
                  stop: StopSignal | None, sink: Sink | None) -> tuple[HttpUrlResult, bool]:
    """Book the workers' samples as they arrive, until every worker has ended."""
    loop = asyncio.get_running_loop()
    result = HttpUrlResult(str(url))
    url_text = result.url
    finished: asyncio.Future[None] = loop.create_future()
    seq = 0

    def book(rows: list[tuple[Any, ...]]) -> None:
        nonlocal seq
        for row in rows:
            seq += 1
            sample = HttpSample(seq, url_text, *row)
            result.add(sample)
            if sink is not None:
                sink(sample)

    def readable(c: _Child) -> None:
        try:
            data = os.read(c.fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        try:
            if not data:
                c.eof = True
                loop.remove_reader(c.fd)
            c.buf += data
            while len(c.buf) >= _LEN.size:
                (size,) = _LEN.unpack_from(c.buf)
                if len(c.buf) < _LEN.size + size:
                    break
                kind, doc = pickle.loads(bytes(c.buf[_LEN.size:_LEN.size + size]))
                del c.buf[:_LEN.size + size]
                if kind == "samples":
                    book(doc)
                elif kind == "done":
                    c.done, c.interrupted = True, bool(doc)
                else:
                    c.error = str(doc)
        except BaseException as exc:  # a sink's broken pipe: the run ends with it
            if not finished.done():
                finished.set_exception(exc)
            return
        if all(ch.eof for ch in children) and not finished.done():
            finished.set_result(None)

    for c in children:
        os.set_blocking(c.fd, False)
        loop.add_reader(c.fd, readable, c)
    forwarded = False
    bound = None if end_ns is None else end_ns + int((cfg.timeout_s + _GRACE_S) * 1e9)
    try:
        while not finished.done():
            waits: list[asyncio.Future[Any]] = [finished]
            stop_wait = None
            if stop is not None and not forwarded:
                stop_wait = asyncio.ensure_future(stop.wait())
                waits.append(stop_wait)
            left = None if bound is None else max(0.0, (bound - time.perf_counter_ns()) / 1e9)
            if forwarded:
                left = cfg.timeout_s + _GRACE_S
            await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if stop_wait is not None and not stop_wait.done():
                stop_wait.cancel()
            if finished.done():
                break
            if stop is not None and stop.is_set() and not forwarded:
                forwarded = True  # the workers stop as this process would (what is under way is dropped)
                for c in children:
                    if not c.eof:
                        try:
                            os.kill(c.pid, signal.SIGTERM)
                        except ProcessLookupError:
                            pass
                continue
            raise RuntimeFailure("a measure http worker process did not end in time")
        finished.result()
    finally:
        for c in children:
            if not c.eof:
                loop.remove_reader(c.fd)
        stop_workers(children, kill=not all(c.eof for c in children) or not finished.done()
                     or finished.exception() is not None)
    errors = [c.error for c in children if c.error]
    if errors:
        raise RuntimeFailure(f"a measure http worker process failed: {errors[0]}")
    if not all(c.done for c in children):
        raise RuntimeFailure("a measure http worker process ended without its results")
    result.elapsed_ns = time.perf_counter_ns() - t0
    return result, any(c.interrupted for c in children) or (stop is not None and stop.is_set())


__all__ = ["collect", "start_workers", "stop_workers", "usable_cores", "worker_count"]
