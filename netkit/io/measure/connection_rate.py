"""New TCP connections per second (``measure connections``): netperf TCP_CRR / ethr ``-t c``.

The engine is one plain loop over non-blocking sockets and a private ``epoll``, no event loop:
the cost per connection is the kernel's (socket, connect, close; the same system calls a C
connect loop makes) plus a few Python statements, with no callback, future or transport object
per connection. On loopback against the C accept server in ``bench/`` (2 shared cores) it made
0.81-1.16x the connections per second of the C connect loop at concurrency 1 and 8 (best of 3,
two runs), against 0.32-0.39x for a bare uvloop ``sock_connect`` loop (``bench/bench_connections.py``).

Per attempt: ``socket()``, ``connect_ex`` (non-blocking: EINPROGRESS, or at once an error such
as EADDRNOTAVAIL when the ephemeral ports are exhausted), then without ``--send``/``--expect`` a
second ``connect_ex`` at once: on loopback the handshake has completed by then (0, or its error),
so no ``epoll`` round trip is needed; otherwise (EALREADY) ``epoll`` reports it writable and
``SO_ERROR`` (read only when ``epoll`` flags an error) says why not. The connect latency runs
from just before ``socket()`` to that answer. With ``--send``/``--expect`` the bytes are exchanged
before the close and the transaction latency runs to the last expected byte. ``--close rst`` sets
``SO_LINGER`` 0 so the close sends a reset and leaves no TIME_WAIT.

Bounds: every attempt has a deadline (``timeout_s``, connect and exchange together); since all
attempts share one timeout, their deadlines are kept in start order in a deque (no heap), at most
rate x timeout entries. Deadlines, the end, a stop request and the per-second row are looked at
every :data:`HOUSEKEEPING_NS` (10 ms), not per connection. The run ends at its wall-clock duration
whatever the sockets do (attempts still under way are closed and counted as ``abandoned``).
Samples of one second are folded into bounded histograms.

A failed attempt (refused, EADDRNOTAVAIL, EMFILE...) is counted and the next one started at
once, as a C connect loop does; so the error count of a duration-bounded run grows with the
loop's speed, and a count-bounded run (``count``) is exact.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from _socket import socket as raw_socket
from collections import deque
from collections.abc import Callable
from typing import Any

from netkit.core.connections_config import ERROR_KINDS, CloseMode, ConnectionsConfig, error_kind
from netkit.core.connections_result import NS, ConnectionsInterval, ConnectionsResult
from netkit.core.errors import RuntimeFailure
from netkit.core.latency_histogram import LatencyHistogram
from netkit.core.procnet import tcp_state_count
from netkit.core.targets import format_host_port
from netkit.io.aio import StopSignal
from netkit.io.resolve import resolve_sync

perf_ns = time.perf_counter_ns
KEEP_INTERVALS = 3600  # per-second rows kept for the json result (the last hour)
#: The end, a stop request, timeouts and the interval row are looked at this often (and an
#: epoll wait lasts no longer), not on every pass: the per-connection path stays short.
HOUSEKEEPING_NS = 10_000_000
BATCH = 1024  # epoll events taken per wait
LINGER_RST = struct.pack("ii", 1, 0)
EPOLLOUT = select.EPOLLOUT if hasattr(select, "EPOLLOUT") else 4
EPOLLIN = select.EPOLLIN if hasattr(select, "EPOLLIN") else 1
#: An EPOLLOUT without these is a connect that succeeded: no SO_ERROR read is needed.
EPOLL_TROUBLE = (select.EPOLLERR | select.EPOLLHUP) if hasattr(select, "EPOLLERR") else 0x18
#: Sockets are made non-blocking by socket() itself where the flag exists (one system call fewer).
SOCK_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)

#: Called with each interval as it ends (jsonl lines, plain lines).
IntervalSink = Callable[[ConnectionsInterval], None]

# Phases of one attempt (index 2 of its state list).
_CONNECTING, _EXCHANGE = 0, 1


def time_wait_count(family: int, sockaddr: tuple[Any, ...]) -> int | None:
    """Sockets on this host in TIME_WAIT toward ``sockaddr``, from ``/proc/net/tcp`` and ``tcp6``."""
    try:
        packed = socket.inet_pton(family, str(sockaddr[0]).split("%", 1)[0])
    except OSError:
        return None
    total, seen = 0, False
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name, encoding="ascii", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        seen = True
        total += tcp_state_count(text, (packed, int(sockaddr[1])))
    return total if seen else None


def measure_connections(cfg: ConnectionsConfig, *, sink: IntervalSink | None = None) -> ConnectionsResult:
    """``measure connections``' one entry point: run until the duration or count ends or a signal
    (Ctrl-C, SIGTERM, SIGHUP) stops it; the result then says ``interrupted`` (and ``by_sigint``)."""
    with StopSignal() as stop:
        result = run_connections(cfg, sink=sink, stop=stop)
    if stop.interrupted:
        import dataclasses

        result = dataclasses.replace(result, by_sigint=True)
    return result


def run_connections(cfg: ConnectionsConfig, *, sink: IntervalSink | None = None,
                    stop: Any = None) -> ConnectionsResult:
    """The loop itself (blocking; a thread may run it with a ``threading.Event`` as ``stop``)."""
    if not hasattr(select, "epoll"):  # pragma: no cover - Linux has it
        raise RuntimeFailure("measure connections needs epoll (Linux)")
    resolved = resolve_sync(cfg.host, cfg.port, family=cfg.family)
    family, sockaddr = resolved.family, resolved.sockaddr
    target = format_host_port(cfg.host, cfg.port)
    address = format_host_port(resolved.address, cfg.port)
    tw_before = time_wait_count(family, sockaddr)
    run = _Run(cfg, family, sockaddr, sink, stop)
    run.loop()
    tw_after = time_wait_count(family, sockaddr)
    if run.rows and len(run.rows) > KEEP_INTERVALS:
        del run.rows[:-KEEP_INTERVALS]
    return ConnectionsResult(
        target=target, address=address, concurrency=cfg.concurrency, close=cfg.close, send=cfg.send,
        expect=cfg.expect, elapsed_ns=run.elapsed_ns, attempts=run.attempts, connections=run.done,
        connect=run.connect_total.summary_ms(),
        transaction=run.txn_total.summary_ms() if cfg.exchange else None,
        errors={k: run.errors.get(k, 0) for k in ERROR_KINDS}, abandoned=run.abandoned,
        time_wait=tw_after, time_wait_before=tw_before, intervals=tuple(run.rows),
        interrupted=run.interrupted, error=run.last_error,
    )


class _Run:
    """State of one run; :meth:`loop` is the hot path."""

    def __init__(self, cfg: ConnectionsConfig, family: int, sockaddr: tuple[Any, ...],
                 sink: IntervalSink | None, stop: Any) -> None:
        self.cfg = cfg
        self.family = family
        self.sockaddr = sockaddr
        self.sink = sink
        self.stop = stop
        self.errors: dict[str, int] = {}
        self.last_error: str | None = None
        self.attempts = 0
        self.done = 0
        self.abandoned = 0
        self.interrupted = False
        self.elapsed_ns = 0
        self.connect_total = LatencyHistogram()
        self.txn_total = LatencyHistogram()
        self.rows: list[ConnectionsInterval] = []

    def fail_kind(self, kind: str, message: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = message

    def fail(self, err: int) -> None:
        kind = error_kind(err)
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = os.strerror(err) if err else kind

    def loop(self) -> None:
        """Keep ``concurrency`` attempts under way until the end; the per-connection path is kept to
        a few statements, and everything else (the end, a stop request, the second's interval row,
        timeouts) is housekeeping done at most every :data:`HOUSEKEEPING_NS`."""
        cfg = self.cfg
        family, sockaddr = self.family, self.sockaddr
        conc = cfg.concurrency
        limit = cfg.count if cfg.count is not None else 1 << 62
        rst = cfg.close is CloseMode.RST
        payload = b"x" * cfg.send
        need = cfg.expect
        exchange = cfg.exchange
        timeout_ns = int(cfg.timeout_s * NS)
        stop = self.stop
        # The C socket type: socket.socket's Python-level __init__ costs per connection.
        new_socket = raw_socket
        sock_type = socket.SOCK_STREAM | SOCK_NONBLOCK
        SOL_SOCKET, SO_ERROR, SO_LINGER = socket.SOL_SOCKET, socket.SO_ERROR, socket.SO_LINGER
        EINPROGRESS, EALREADY = errno.EINPROGRESS, errno.EALREADY
        recheck = not exchange  # a transaction goes through epoll whatever the connect did
        ep = select.epoll()
        poll = ep.poll
        register = ep.register
        modify = ep.modify
        live: dict[int, list[Any]] = {}  # fd -> [sock, t0, phase, got]
        st: list[Any] | None
        sock: Any
        deadlines: deque[tuple[int, list[Any]]] = deque()  # start order is deadline order
        add_deadline = deadlines.append
        connect_ns: list[int] = []  # this second's samples
        txn_ns: list[int] = []
        add_connect = connect_ns.append
        add_txn = txn_ns.append
        fail = self.fail
        errors_before = 0
        done_before = 0
        started = perf_ns()
        end = started + int(cfg.duration_s * NS) if cfg.duration_s is not None else 1 << 62
        tick = started + NS
        last_tick = started
        housekeeping = started
        attempts = 0
        done = 0
        try:
            while True:
                now = perf_ns()
                if now >= housekeeping:
                    if now >= end:
                        break
                    if stop is not None and stop.is_set():
                        self.interrupted = True
                        break
                    if now >= tick:
                        self._interval(last_tick - started, now - started, connect_ns, txn_ns,
                                       done - done_before, self._errors_total() - errors_before)
                        done_before, errors_before = done, self._errors_total()
                        last_tick, tick = now, now + NS
                    # Attempts past their deadline: a timeout each (a closed socket's fileno is -1).
                    while deadlines:
                        dl, st = deadlines[0]
                        fd = st[0].fileno()
                        if fd >= 0 and live.get(fd) is st:
                            if dl > now:
                                break
                            del live[fd]
                            st[0].close()
                            fail(errno.ETIMEDOUT)
                            self.last_error = ("no connection within the timeout" if st[2] == _CONNECTING
                                               else "no reply within the timeout")
                        deadlines.popleft()
                    housekeeping = min(now + HOUSEKEEPING_NS, end, tick)
                # Start attempts until `conc` are under way (a failing one is counted, and its slot
                # tried again on the next pass, after the events are read).
                busy = False
                room = conc - len(live)
                while room > 0 and attempts < limit:
                    room -= 1
                    attempts += 1
                    t0 = perf_ns()
                    try:
                        sock = new_socket(family, sock_type)
                    except OSError as exc:
                        fail(exc.errno or 0)
                        busy = True
                        continue
                    if not SOCK_NONBLOCK:  # pragma: no cover - Linux has the flag
                        sock.setblocking(False)
                    rc = sock.connect_ex(sockaddr)
                    if rc == EINPROGRESS and recheck:
                        # A second connect() says where the handshake is: on loopback it has
                        # completed by now (0) or failed (its errno), which spares the epoll
                        # registration and wake-up; elsewhere it is under way (EALREADY).
                        rc = sock.connect_ex(sockaddr)
                        if rc == 0:
                            add_connect(perf_ns() - t0)
                            if rst:
                                sock.setsockopt(SOL_SOCKET, SO_LINGER, LINGER_RST)
                            sock.close()
                            done += 1
                            busy = True
                            continue
                        if rc == EALREADY:
                            rc = EINPROGRESS
                    if rc != 0 and rc != EINPROGRESS:
                        sock.close()
                        fail(rc)
                        busy = True
                        continue
                    fd = sock.fileno()
                    st = [sock, t0, _CONNECTING, 0]
                    live[fd] = st
                    add_deadline((t0 + timeout_ns, st))
                    register(fd, EPOLLOUT)
                if not live:
                    if attempts >= limit:
                        break
                    if busy:  # nothing to wait for: the next attempts at once
                        continue
                wait = 0.0 if busy else max(0.0, (housekeeping - perf_ns()) / NS)
                events = poll(wait, BATCH)
                now = perf_ns()
                for fd, ev in events:
                    st = live.get(fd)
                    if st is None:
                        continue
                    sock = st[0]
                    if st[2] == _CONNECTING:
                        err = sock.getsockopt(SOL_SOCKET, SO_ERROR) if ev & EPOLL_TROUBLE else 0
                        if err:
                            del live[fd]
                            sock.close()
                            fail(err)
                            continue
                        add_connect(now - st[1])
                        if not exchange:
                            del live[fd]
                            if rst:
                                sock.setsockopt(SOL_SOCKET, SO_LINGER, LINGER_RST)
                            sock.close()
                            done += 1
                            continue
                        st[2] = _EXCHANGE
                        if payload:
                            try:
                                sock.send(payload)
                            except OSError as exc:
                                del live[fd]
                                sock.close()
                                fail(exc.errno or 0)
                                continue
                        if need:
                            modify(fd, EPOLLIN)
                            continue
                    else:  # _EXCHANGE: read what is expected
                        try:
                            data = sock.recv(65536)
                        except BlockingIOError:
                            continue
                        except OSError as exc:
                            del live[fd]
                            sock.close()
                            fail(exc.errno or 0)
                            continue
                        if not data:
                            del live[fd]
                            sock.close()
                            self.fail_kind("closed", "the peer closed before the expected bytes arrived")
                            continue
                        got = st[3] + len(data)
                        if got < need:
                            st[3] = got
                            continue
                    del live[fd]
                    add_txn(perf_ns() - st[1])
                    if rst:
                        sock.setsockopt(SOL_SOCKET, SO_LINGER, LINGER_RST)
                    sock.close()
                    done += 1
        finally:
            now = perf_ns()
            self.abandoned = len(live)
            for st in live.values():
                st[0].close()
            live.clear()
            ep.close()
            self.attempts = attempts
            self.done = done
            self.elapsed_ns = now - started
            if connect_ns or txn_ns or now - last_tick > NS // 100:
                self._interval(last_tick - started, now - started, connect_ns, txn_ns, done - done_before,
                               self._errors_total() - errors_before)

    def _errors_total(self) -> int:
        return sum(self.errors.values())

    def _interval(self, start_ns: int, end_ns: int, connect_ns: list[int], txn_ns: list[int], done: int,
                  errors: int) -> None:
        hist = LatencyHistogram()
        hist.add_many(connect_ns)
        self.connect_total.merge(hist)
        if txn_ns:
            self.txn_total.add_many(txn_ns)
        connect_ns.clear()
        txn_ns.clear()
        span = (end_ns - start_ns) / NS
        s = hist.summary_ms()
        row = ConnectionsInterval(
            start_s=round(start_ns / NS, 6), end_s=round(end_ns / NS, 6), connections=done,
            connections_per_s=round(done / span, 3) if span > 0 else 0.0,
            connect_ms={"p50": s.p50, "p99": s.p99, "max": s.max}, errors=errors)
        self.rows.append(row)
        if len(self.rows) > 2 * KEEP_INTERVALS:
            del self.rows[:-KEEP_INTERVALS]
        if self.sink is not None:
            self.sink(row)
