"""The fast path for large plain-connect scans: tight non-blocking connect loops over epoll.

asyncio spends tens of microseconds of Python per connection (a future, a callback, a task
switch); a full 65535-port scan of loopback then takes 4-5 s where ``nmap -sT`` takes 1-2 s.
Here each connect is a plain ``socket`` + ``connect_ex``. On loopback the kernel answers inside
the system call: EINPROGRESS comes back, but ``SO_ERROR`` already holds the refusal (or the
socket is already connected), so only the few truly pending connects wait in epoll (raw
``select.epoll``; ``selectors`` elsewhere). ``threads`` can split the targets over several
loops (the system calls release the GIL); measured here, two threads gained ~10% on an idle
machine and lost up to 60% on a busy one, so one thread is the default.

Results, states and errors are exactly those of :mod:`netkit.io.measure.probe`, and retries follow the
same :class:`RetryPlan`: a failed target waits on a timer heap for its backoff delay.
"""

from __future__ import annotations

import errno
import heapq
import os
import select
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from netkit.core.backoff import RetryPlan
from netkit.core.probe_models import (
    SELF_CONNECT_ERROR,
    ProbeResult,
    ProbeState,
    classify_errno,
    ns_to_ms,
    same_endpoint,
)
from netkit.io.clock import DEFAULT_CLOCK, Clock

NS = 1_000_000_000
_LINGER_RST = b"\x01\x00\x00\x00\x00\x00\x00\x00"
_IN_PROGRESS = (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK)
#: Default number of connect loops (see the module docstring for why one).
DEFAULT_THREADS = 1

#: (family, ip, extra sockaddr fields) -- shared by every target of one host, so a range of
#: 65535 ports allocates no per-target address tuples.
Address = tuple[int, str, tuple]


class ScanTarget(NamedTuple):
    """One target as the scanner needs it: the text to show and its candidate addresses.

    A named tuple rather than a dataclass: a full range builds 65535 of them, and a tuple is
    several times cheaper to make.
    """

    target: str
    host: str
    port: int
    #: candidate addresses in preference order; empty when resolution failed
    addresses: tuple[Address, ...]
    resolve_ns: int | None = None
    dns_error: str | None = None


def fd_budget(wanted: int) -> int:
    """Concurrency capped by the open-file limit (leaving room for the rest of the process)."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY:
            return max(1, min(wanted, soft - 64))
    except (ImportError, ValueError, OSError):
        pass
    return max(1, wanted)


@dataclass(slots=True)
class _Job:
    idx: int
    cand: int  # index into addresses
    attempts: int  # attempts started for this target
    begin_ns: int
    first: tuple[ProbeState, str, str] | None = None  # first failure of the current attempt


class _Poller:
    """Write-readiness of in-flight connects: raw epoll where there is one, else ``selectors``."""

    def __init__(self) -> None:
        self._ep = select.epoll() if hasattr(select, "epoll") else None
        self._sel = selectors.DefaultSelector() if self._ep is None else None

    def register(self, fd: int) -> None:
        if self._ep is not None:
            self._ep.register(fd, select.EPOLLOUT)
        else:
            assert self._sel is not None
            self._sel.register(fd, selectors.EVENT_WRITE)

    def unregister(self, fd: int) -> None:
        try:
            if self._ep is not None:
                self._ep.unregister(fd)
            else:
                assert self._sel is not None
                self._sel.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def poll(self, timeout_s: float) -> list[int]:
        if self._ep is not None:
            return [fd for fd, _ev in self._ep.poll(timeout_s, 1024)]
        assert self._sel is not None
        return [key.fd for key, _ev in self._sel.select(timeout_s)]

    def close(self) -> None:
        if self._ep is not None:
            self._ep.close()
        elif self._sel is not None:
            self._sel.close()


def scan(
    targets: Sequence[ScanTarget],
    plan: RetryPlan,
    *,
    timeout_ns: int,
    concurrency: int = 256,
    clock: Clock = DEFAULT_CLOCK,
    rng: Callable[[], float] | None = None,
    on_result: Callable[[int, ProbeResult], None] | None = None,
    stop: threading.Event | None = None,
    threads: int | None = None,
) -> list[ProbeResult]:
    """Connect to every target; return results in input order.

    Bounded: every in-flight connect expires after ``timeout_ns`` (cut at the deadline), no
    attempt starts at or after ``plan.deadline_ns``, and ``stop`` ends the scan early (the
    unfinished targets then report ``timeout`` with the reason). ``concurrency`` is the total
    of connects in flight over all threads. ``on_result`` may be called from several threads,
    never at the same time.
    """
    n = len(targets)
    now = time.perf_counter_ns if clock is DEFAULT_CLOCK else clock.now_ns
    if threads is None:
        threads = DEFAULT_THREADS
    threads = max(1, min(threads, n or 1))
    results: list[ProbeResult | None] = [None] * n
    start_all = now()
    jobs = [_Job(i, 0, 0, start_all) for i in range(n)]
    lock = threading.Lock()
    emit = on_result
    if on_result is not None and threads > 1:
        def emit(i: int, r: ProbeResult) -> None:
            with lock:
                on_result(i, r)
    rng_lock = threading.Lock()
    shared_rng = rng
    if rng is not None and threads > 1:
        def shared_rng() -> float:
            with rng_lock:
                return rng()
    budget = fd_budget(concurrency)
    parts = [jobs[k::threads] for k in range(threads)]
    errors: list[BaseException] = []

    def work(part: list[_Job], limit: int) -> None:
        try:
            _scan_part(targets, part, results, plan, timeout_ns, limit, now, shared_rng, emit, stop)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    if threads == 1:
        work(parts[0], budget)
    else:
        limit = max(1, budget // threads)
        workers = [threading.Thread(target=work, args=(part, limit), name=f"netkit-scan-{k}", daemon=True)
                   for k, part in enumerate(parts)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    if errors:
        raise errors[0]

    # Whatever is left (deadline or stop) ends as a timeout that says why.
    reason = "interrupted" if stop is not None and stop.is_set() else "the deadline passed"
    for i, res in enumerate(results):
        if res is None:
            t = targets[i]
            res = results[i] = ProbeResult(
                target=t.target, host=t.host, port=t.port,
                address=t.addresses[0][1] if t.addresses else None, state=ProbeState.TIMEOUT,
                attempts=jobs[i].attempts, connect_ms=None, resolve_ms=ns_to_ms(t.resolve_ns),
                elapsed_ms=ns_to_ms(now() - jobs[i].begin_ns) or 0.0, error=reason,
            )
            if on_result is not None:
                on_result(i, res)
    return [r for r in results if r is not None]


def _scan_part(
    targets: Sequence[ScanTarget],
    part: list[_Job],
    results: list[ProbeResult | None],
    plan: RetryPlan,
    timeout_ns: int,
    limit: int,
    now: Callable[[], int],
    rng: Callable[[], float] | None,
    on_result: Callable[[int, ProbeResult], None] | None,
    stop: threading.Event | None,
) -> None:
    """One thread's connect loop over its share of the jobs (writes only its own result slots)."""
    poller = _Poller()
    inflight: dict[int, tuple[socket.socket, _Job, int]] = {}  # fd -> (sock, job, start_ns)
    expiries: deque[tuple[int, int, socket.socket]] = deque()  # (expires_ns, fd, sock); FIFO
    ready: deque[_Job] = deque()
    timers: list[tuple[int, int, _Job]] = []  # (start_ns, seq, job) for retries
    seq = 0
    mk_socket = socket.socket
    stream_nb = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)
    need_setblocking = stream_nb == socket.SOCK_STREAM
    sol, so_error = socket.SOL_SOCKET, socket.SO_ERROR
    classified: dict[int, tuple[ProbeState, str]] = {}
    deadline = plan.deadline_ns
    no_retry = plan.retries == 0

    def classify(err: int) -> tuple[ProbeState, str]:
        got = classified.get(err)
        if got is None:
            got = classified[err] = classify_errno(err, os.strerror(err))
        return got

    def finish(job: _Job, state: ProbeState, address: str | None, connect_ns: int | None,
               error: str | None) -> None:
        t = targets[job.idx]
        res = ProbeResult(t.target, t.host, t.port, address, state, job.attempts,
                          None if connect_ns is None else round(connect_ns / 1e6, 3),
                          ns_to_ms(t.resolve_ns), round((now() - job.begin_ns) / 1e6, 3), error)
        results[job.idx] = res
        if on_result is not None:
            on_result(job.idx, res)

    def failed(job: _Job, state: ProbeState, address: str, error: str) -> None:
        nonlocal seq
        if job.first is None:
            job.first = (state, address, error)
        if job.cand + 1 < len(targets[job.idx].addresses):
            job.cand += 1
            ready.appendleft(job)
            return
        st, ad, er = job.first
        nxt = None if no_retry else plan.next_attempt_ns(job.attempts, now(), rng)
        if nxt is None:
            finish(job, st, ad, None, er)
            return
        job.cand, job.first = 0, None
        seq += 1
        heapq.heappush(timers, (nxt, seq, job))

    def opened(job: _Job, sock: socket.socket, address: str, start_ns: int) -> None:
        connect_ns = now() - start_ns
        try:
            selfish = same_endpoint(sock.getsockname(), sock.getpeername())
        except OSError:
            selfish = False
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError:
            pass
        sock.close()
        if selfish:
            failed(job, ProbeState.CLOSED, address, SELF_CONNECT_ERROR)
        else:
            finish(job, ProbeState.OPEN, address, connect_ns, None)

    for job in part:
        if targets[job.idx].addresses:
            ready.append(job)
        else:
            finish(job, ProbeState.DNS_ERROR, None, None, targets[job.idx].dns_error or "name not resolved")

    try:
        while ready or inflight or timers:
            if stop is not None and stop.is_set():
                break
            t_now = now()
            if t_now >= deadline and not inflight:
                break
            while timers and timers[0][0] <= t_now:
                ready.append(heapq.heappop(timers)[2])
            batch = 512
            while ready and batch and len(inflight) < limit:
                if not batch & 63 and now() >= deadline:  # no new attempt past the deadline
                    break
                batch -= 1
                job = ready.popleft()
                t = targets[job.idx]
                fam, ip, extra = t.addresses[job.cand]
                if job.cand == 0:
                    if job.attempts == 0:
                        job.begin_ns = now()
                    job.attempts += 1
                try:
                    sock = mk_socket(fam, stream_nb)
                except OSError as exc:  # out of descriptors: wait for in-flight ones
                    if exc.errno in (errno.EMFILE, errno.ENFILE) and inflight:
                        if job.cand == 0:
                            job.attempts -= 1
                        ready.appendleft(job)
                        limit = max(1, len(inflight))
                        break
                    raise
                if need_setblocking:
                    sock.setblocking(False)
                t_start = now()
                try:
                    err = sock.connect_ex((ip, t.port, *extra) if extra else (ip, t.port))
                except OSError as exc:  # a malformed address; connect_ex reports the rest as errno
                    err = exc.errno or errno.EINVAL
                if err in _IN_PROGRESS:
                    err = sock.getsockopt(sol, so_error)
                    if err == 0:
                        try:
                            sock.getpeername()
                        except OSError:  # really pending: wait for it
                            fd = sock.fileno()
                            poller.register(fd)
                            inflight[fd] = (sock, job, t_start)
                            expiries.append((t_start + plan.attempt_timeout_ns(timeout_ns, t_start), fd, sock))
                            continue
                if err == 0:
                    opened(job, sock, ip, t_start)
                else:
                    sock.close()
                    state, words = classify(err)
                    failed(job, state, ip, words)
            if not inflight:
                if timers and not ready:
                    wait_ns = min(timers[0][0], deadline) - now()
                    if wait_ns > 0:
                        (stop or threading.Event()).wait(wait_ns / NS)
                    if now() >= deadline:
                        break
                continue
            # Wait for the in-flight ones: until the next expiry at most.
            wait_ns = max(0, expiries[0][0] - now()) if expiries else 0
            if ready and len(inflight) < limit:
                wait_ns = 0
            for fd in poller.poll(min(wait_ns / NS, 0.1)):
                entry = inflight.pop(fd, None)
                if entry is None:
                    continue
                sock, job, t_start = entry
                poller.unregister(fd)
                err = sock.getsockopt(sol, so_error)
                address = targets[job.idx].addresses[job.cand][1]
                if err == 0:
                    opened(job, sock, address, t_start)
                else:
                    sock.close()
                    state, words = classify(err)
                    failed(job, state, address, words)
            t_now = now()
            while expiries:
                exp, fd, sock = expiries[0]
                entry = inflight.get(fd)
                if entry is not None and entry[0] is sock and exp > t_now:
                    break
                expiries.popleft()
                if entry is None or entry[0] is not sock:
                    continue  # finished already; the fd number may have been reused
                del inflight[fd]
                poller.unregister(fd)
                sock.close()
                _s, job, t_start = entry
                address = targets[job.idx].addresses[job.cand][1]
                failed(job, ProbeState.TIMEOUT, address, f"no answer within {(exp - t_start) / NS:g}s")
    finally:
        for fd, (sock, _job, _t) in inflight.items():
            poller.unregister(fd)
            sock.close()
        poller.close()
