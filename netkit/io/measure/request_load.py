"""Request/response load over a :class:`~netkit.io.clients.pool.ConnectionPool` (``measure requests``).

Closed loop (default): each connection sends its next request as soon as the reply to the last
one arrives; latency runs from the actual send.

Open loop (``rate``): requests are *scheduled* at ``rate`` per second whatever the server does.
A scheduled request goes out on a free connection at once, or waits in a backlog until one is
free; its latency runs from the **scheduled** time, so time spent waiting behind a stalled
server is counted (the coordinated-omission correction wrk2 made known). The backlog is bounded
(requests that would wait longer than the timeout are counted as ``overload``).

Hot paths: the plain-TCP closed loop with length framing (the default, and what load tests
mostly are) runs on :class:`netkit.io.measure.request_engine.EpollEngine`: raw descriptors in a private
epoll, one event-loop callback per batch of replies (below the floor of a uvloop Protocol client;
see that module). Everything else uses one ``PoolConnection`` subclass per connection, whose
``data_received`` does a length check, one clock read, one list append and one ``write`` per
request (no coroutine, no future, no counter: a completion is its latency sample). A collector
wakes once a second, empties the sample lists, folds them into a bounded-memory histogram and
emits an interval row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from netkit.core.errors import CheckFailed
from netkit.core.latency_histogram import LatencyHistogram
from netkit.core.pool_config import PoolConfig
from netkit.core.request_framing import (
    REQ_HEADER_LEN,
    DelimiterFramer,
    Framer,
    FramingError,
    FramingKind,
    HeaderFramer,
    LengthFramer,
    encode_request,
    session_preamble,
)
from netkit.core.requests_config import RequestsConfig
from netkit.core.requests_result import ERROR_KINDS, NS, LoadMode, RequestsInterval, RequestsResult
from netkit.core.targets import format_host_port
from netkit.io.aio import StopSignal, run_until_stopped
from netkit.io.clients.pool import ConnectionPool, PoolConnection
from netkit.io.measure.request_engine import EngineConn, EpollEngine
from netkit.io.measure.request_engine import available as engine_available

perf_ns = time.perf_counter_ns
MAX_TICK_DISPATCH = 2048  # scheduled requests handled per timer tick: replies are read between ticks
MAX_BACKLOG = 1_000_000
KEEP_INTERVALS = 3600  # per-second rows kept for the json result (the last hour)

#: Called with each interval as it ends (jsonl lines, the live view, plain lines).
IntervalSink = Callable[[RequestsInterval], None]


class Stopper(Protocol):
    """What ends a run early: a :class:`netkit.io.aio.StopSignal` or an ``asyncio.Event``."""

    def is_set(self) -> bool: ...

    def wait(self) -> Coroutine[Any, Any, Any]: ...


def measure_requests(cfg: RequestsConfig, *, sink: IntervalSink | None = None) -> RequestsResult:
    """``measure requests``' one entry point: run the load in an event loop until it ends or a signal
    (Ctrl-C, SIGTERM, SIGHUP) stops it; the result then says ``interrupted`` (and ``by_sigint`` for
    Ctrl-C). Raises :class:`netkit.io.clients.pool.PoolConnectError` when no connection can be made,
    and :class:`netkit.core.errors.CheckFailed` when a keyed server refused every session.
    """

    async def load(stop: StopSignal | None) -> RequestsResult:
        return await run_requests(cfg, sink=sink, stop=stop)

    stop = StopSignal()
    result = run_until_stopped(load, stop)
    if cfg.key is not None and result.requests == 0 and stop.signum is None:
        # A keyed server closes a session whose header it cannot verify, every time: no request
        # can complete, and the one useful thing to say is which key to check.
        raise CheckFailed("the server refused the keyed session header: check the key")
    if stop.interrupted:
        result = dataclasses.replace(result, by_sigint=True)
    return result


class _LoadConn(PoolConnection):
    """One connection of the load run; ``data_received`` is the hot path.

    Counting is kept off the hot path: a completed request is one sample appended (so
    ``len(samples)`` is the completion count); in the fast closed loop (length framing, no
    request limit, no --expect) bytes and sends are derived from that count, not added up per read.
    """

    def __init__(self, pool: ConnectionPool[_LoadConn], slot: int, run: _Run) -> None:
        super().__init__(pool, slot)
        self.run = run
        self.need = run.reply_len
        self.req = run.req
        self.fast = run.fast
        self.got = 0
        self.busy = False
        self.t_sched = 0  # latency origin: the scheduled time (open loop) or the send (closed)
        self.t_sent = 0  # for the timeout (the fast path leaves it; the sweeper uses the later one)
        self.bytes_in = 0  # counted per read outside the fast path only
        self.samples: list[int] = []
        self.record = self.samples.append
        self.write_: Callable[[bytes], object] = self.write  # the transport's own write once connected
        self.seq = 0
        self.fd = -1  # the engine's duplicate descriptor while the engine owns the connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.write_ = self.transport.write

    # ----- sending -------------------------------------------------------------------------------
    def send(self, t_sched: int) -> None:
        """Send one request whose latency counts from ``t_sched``."""
        run = self.run
        engine = run.engine
        if engine is not None and engine.active and self.fd < 0 and engine.adopt(self):
            run.sent += 1  # the engine sent it, and sends every later one itself
            return
        if run.header:
            data = encode_request(self.seq, run.req, run.reply_len)
            self.seq = (self.seq + 1) & 0xFFFFFFFF
        else:
            data = self.req
        now = perf_ns()
        self.t_sched = t_sched or now
        self.t_sent = now
        self.busy = True
        run.sent += 1
        self.write_(data)

    # ----- receiving -------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        """Length framing without --expect: count bytes until the reply is whole."""
        got = self.got + len(data)
        if got == self.need and self.fast:  # the closed-loop hot path: record, send the next request
            now = perf_ns()
            self.got = 0
            self.record(now - self.t_sched)
            self.t_sched = now
            self.write_(self.req)
            return
        if got < self.need:
            self.got = got
            return
        if got > self.need:
            self.run.error("framing", self, f"{got} bytes for a {self.need}-byte reply")
            return
        now = perf_ns()
        self.got = 0
        if not self.busy:
            self.run.error("framing", self, "a reply without a request")
            return
        self.bytes_in += got
        self.busy = False
        run = self.run
        if run.recording:
            self.record(now - self.t_sched)
            if run.limited:
                run.outcome()
        run.kick(self, now)


class _FramedLoadConn(_LoadConn):
    """A connection whose replies go through a framer: delimiter or header framing, or --expect."""

    def __init__(self, pool: ConnectionPool[_LoadConn], slot: int, run: _Run, framer: Framer) -> None:
        super().__init__(pool, slot, run)
        self.framer = framer

    def data_received(self, data: bytes) -> None:
        """Whole replies through the framer."""
        self.bytes_in += len(data)
        run = self.run
        try:
            replies = self.framer.feed(data)
        except FramingError as exc:
            run.error("framing", self, str(exc))
            return
        if not replies:
            return
        now = perf_ns()
        if len(replies) > 1 or not self.busy:
            run.error("framing", self, "more replies than requests")
            return
        self.busy = False
        ok = run.expect is None or run.expect.search(replies[0]) is not None
        if run.recording:
            if ok:
                self.record(now - self.t_sched)
            else:
                run.count_error("unexpected-reply", f"reply {replies[0][:60]!r} does not match --expect")
            if run.limited:
                run.outcome()
        run.kick(self, now)


class _Run:
    """The shared state of one load run (counters, backlog, the schedule)."""

    def __init__(self, cfg: RequestsConfig, sink: IntervalSink | None) -> None:
        self.cfg = cfg
        self.sink = sink
        self.header = cfg.framing is FramingKind.HEADER
        self.req = cfg.request_body()
        self.reply_len = cfg.expected_reply_size()
        self.expect = re.compile(cfg.expect.encode()) if cfg.expect else None
        self.closed_loop = cfg.rate is None
        self.limited = cfg.requests is not None
        #: The fast closed loop (see _LoadConn); ``fast`` is on only while recording.
        self.fast_run = self.closed_loop and not self.limited and cfg.framing is FramingKind.LENGTH and not cfg.expect
        self.fast = False
        self.frame_len = len(self.req) + (REQ_HEADER_LEN if self.header else 0)
        self.left: int | None = cfg.requests  # requests still to send (None: no limit)
        self.unfinished: int = cfg.requests or 0  # requests without an outcome yet
        self.sending = False
        self.recording = False
        self.started = False
        self.sent = 0  # sends outside the fast loop (see drain_counters)
        self.sent_seen = 0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.last_error: str | None = None
        self.conns: set[_LoadConn] = set()
        self.retired_bytes_in = 0  # of connections that are gone
        self.retired_samples: list[int] = []
        self.backlog: deque[int] = deque()
        self.max_backlog = MAX_BACKLOG
        # Scheduled requests this generator never got to send (it fell more than --timeout behind
        # its own schedule): a shortfall of the sender, never counted as the server's errors.
        self.unsent = 0
        self.pool: ConnectionPool[_LoadConn] | None = None
        self.engine: EpollEngine | None = None
        self.finished: asyncio.Event = asyncio.Event()
        self.timeout_ns = int(cfg.timeout_s * NS)

    def make_framer(self) -> Framer | None:
        """A fresh framer for a new connection; None: the length hot path counts bytes itself."""
        cfg = self.cfg
        if cfg.framing is FramingKind.HEADER:
            return HeaderFramer(ack=True)
        if cfg.framing is FramingKind.DELIMITER:
            assert cfg.delimiter is not None
            return DelimiterFramer(cfg.delimiter)
        if self.expect is not None:
            return LengthFramer(self.reply_len)
        return None

    # ----- bookkeeping ------------------------------------------------------------------------------
    def take(self) -> bool:
        """Use one request of a --requests budget; False when it is spent."""
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def outcome(self) -> None:
        self.unfinished -= 1
        if self.unfinished <= 0:
            self.finished.set()

    def count_error(self, kind: str, message: str) -> None:
        self.errors[kind] += 1
        self.last_error = message

    def error(self, kind: str, conn: _LoadConn, message: str) -> None:
        """A broken reply: the stream is out of step, so the connection is closed and replaced."""
        if self.recording:
            self.count_error(kind, message)
            if conn.busy and self.limited:
                self.outcome()
        conn.busy = False
        conn.abort()

    def engine_lost(self, conn: EngineConn, kind: str, message: str) -> None:
        """The engine saw a connection end (EOF, reset) or a broken reply: count it, replace it."""
        if conn.busy:
            conn.busy = False
            if self.recording:
                self.count_error(kind, message)
        conn.abort()

    def retire(self, conn: _LoadConn) -> None:
        if conn.fd >= 0 and self.engine is not None:
            self.engine.forget(conn)
        self.conns.discard(conn)
        self.retired_bytes_in += conn.bytes_in
        conn.bytes_in = 0
        self.retired_samples.extend(conn.samples)
        conn.samples.clear()

    def set_fast(self, on: bool) -> None:
        self.fast = on and self.fast_run
        for c in self.conns:
            c.fast = self.fast

    # ----- the pool's hooks -----------------------------------------------------------------------
    def new_connection(self, pool: ConnectionPool[_LoadConn], slot: int) -> _LoadConn:
        """The pool's connection factory: each connection knows this run."""
        framer = self.make_framer()
        if framer is None:
            return _LoadConn(pool, slot, self)
        return _FramedLoadConn(pool, slot, self, framer)

    def on_ready(self, conn: _LoadConn) -> bool:
        self.conns.add(conn)
        if not self.started:
            return self.closed_loop  # open loop: idle in the pool until the schedule starts
        self.kick(conn)
        return True

    def on_pool_event(self, name: str, fields: dict[str, Any]) -> None:
        if name == "connect-failed" and self.started and self.recording:
            self.count_error("connect-failed", str(fields.get("error")))

    def kick(self, conn: _LoadConn, now: int = 0) -> None:
        """``conn`` has no request outstanding: send the next one (closed loop) or serve the
        backlog (open loop). ``now``: the caller's clock reading, if it has one."""
        if self.closed_loop:
            if self.sending and self.take():
                conn.send(0)
        else:
            self.free(conn, now or perf_ns())

    # ----- open loop ---------------------------------------------------------------------------------
    def free(self, conn: _LoadConn, now: int) -> None:
        """A connection has no request outstanding: serve the oldest backlog entry or go idle."""
        backlog = self.backlog
        while backlog and conn.alive:
            t = backlog.popleft()
            if now - t > self.timeout_ns:
                if self.recording:
                    self.count_error("timeout", "waited longer than --timeout for a free connection")
                    if self.limited:
                        self.outcome()
                continue
            conn.send(t)
            return
        if conn.alive:
            assert self.pool is not None
            self.pool.release(conn)

    def dispatch(self, t_sched: int) -> None:
        assert self.pool is not None
        conn = self.pool.acquire_nowait()
        if conn is not None:
            conn.send(t_sched)
        elif len(self.backlog) < self.max_backlog:
            self.backlog.append(t_sched)
        else:
            self.count_error("overload", "backlog full")
            if self.limited:
                self.outcome()

    # ----- totals --------------------------------------------------------------------------------------
    def drain_counters(self) -> tuple[int, int, int, list[int]]:
        """(done, sent, bytes_in, samples) since the last call, from every connection.

        A completion is one sample. In the fast loop each completion sent the next request and
        its reply was ``reply_len`` bytes, so sends and bytes follow from the count.
        """
        bin_ = self.retired_bytes_in
        self.retired_bytes_in = 0
        samples = self.retired_samples
        self.retired_samples = []
        for c in self.conns:
            bin_ += c.bytes_in
            c.bytes_in = 0
            if c.samples:
                samples.extend(c.samples)
                c.samples.clear()  # the same list: the bound ``record`` stays valid
        if self.engine is not None and self.engine.samples:
            samples.extend(self.engine.samples)
            self.engine.samples.clear()
        done = len(samples)
        sent = self.sent - self.sent_seen
        self.sent_seen = self.sent
        if self.fast_run:
            sent += done
            bin_ += done * self.reply_len
        return done, sent, bin_, samples


def _preamble(cfg: RequestsConfig) -> bytes | Callable[[], bytes]:
    """The header-framing preamble; keyed, a fresh one per (re)connection (time and nonce)."""
    if cfg.key is None:
        return session_preamble()
    import os
    import time

    return lambda: session_preamble(cfg.key, now_ms=time.time_ns() // 1_000_000, nonce=os.urandom(8))


async def run_requests(cfg: RequestsConfig, *, sink: IntervalSink | None = None, stop: Stopper | None = None,
                       address: str | None = None) -> RequestsResult:
    """Run the load described by ``cfg``; ``stop`` (an asyncio.Event or StopSignal) ends it early.

    Raises :class:`netkit.io.clients.pool.PoolConnectError` (exit 1) when no connection can be made.
    """
    loop = asyncio.get_running_loop()
    run = _Run(cfg, sink)
    ssl_ctx = None
    if cfg.tls:
        from netkit.io.tls import client_context

        ssl_ctx = client_context(insecure=cfg.insecure, cafile=cfg.cafile)
    pool_cfg = PoolConfig(size=cfg.connections, connect_timeout_s=cfg.connect_timeout_s,
                          acquire_timeout_s=cfg.timeout_s, health_interval_s=1.0, backoff=cfg.backoff,
                          jitter=cfg.jitter, reconnect_window_s=max(60.0, (cfg.duration_s or 0) + 1))
    pool: ConnectionPool[_LoadConn] = ConnectionPool(
        cfg.host, cfg.port, pool_cfg, ssl=ssl_ctx, server_hostname=cfg.server_name,
        connection_class=run.new_connection, on_ready=run.on_ready, on_event=run.on_pool_event,
        preamble=_preamble(cfg) if run.header else None, family=cfg.family)
    run.pool = pool
    if run.fast_run and not cfg.tls and engine_available():
        run.engine = EpollEngine(loop, run, run.req, run.reply_len)
    target = format_host_port(cfg.host, cfg.port)
    if cfg.rate is not None:
        run.max_backlog = int(min(MAX_BACKLOG, max(1000.0, cfg.rate * cfg.timeout_s)))

    await pool.start()
    if address is None:
        for c in pool.connections:
            peer = c.transport.get_extra_info("peername") if c.transport is not None else None
            if isinstance(peer, tuple) and len(peer) >= 2:
                address = format_host_port(str(peer[0]), int(peer[1]))
                break
    tasks: list[asyncio.Future[Any]] = []
    interrupted = False
    t0 = perf_ns()
    t_end = 0
    collector = _Collector(run, pool, t0)
    try:
        run.started = run.sending = run.recording = True
        run.set_fast(True)
        if run.engine is not None:
            run.engine.start()
        if run.closed_loop:
            for c in list(run.conns):
                if c.alive and run.take():
                    c.send(0)
        else:
            _start_schedule(run, loop, t0)
        if run.limited and cfg.requests == 0:
            run.finished.set()
        tasks.append(asyncio.ensure_future(_timeouts(run, pool)))
        tasks.append(asyncio.ensure_future(collector.every_second()))
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(run.finished.wait())]
        if cfg.duration_s is not None:
            waits.append(asyncio.ensure_future(asyncio.sleep(cfg.duration_s)))
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        interrupted = stop is not None and stop.is_set()
        t_end = perf_ns()
        run.sending = run.recording = False
        run.set_fast(False)
        collector.final(t_end)  # before any await: nothing arriving later is counted
    finally:
        run.sending = run.recording = False
        run.set_fast(False)
        if run.engine is not None:
            run.engine.stop()  # before the first await below: no reply is read after t_end
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not t_end:  # an exception or a cancellation: count what was done up to now
            t_end = perf_ns()
            collector.final(t_end)
        stats = pool.stats()
        await pool.close()
    totals = collector
    return RequestsResult(
        target=target, address=address, tls=cfg.tls,
        mode=LoadMode.OPEN_LOOP if cfg.rate is not None else LoadMode.CLOSED_LOOP,
        framing=cfg.framing, connections=cfg.connections, rate_rps=cfg.rate, elapsed_ns=t_end - t0,
        requests=totals.done, sent=totals.sent, bytes_sent=totals.sent * run.frame_len,
        bytes_received=totals.bytes_in, latency=totals.hist.summary_ms(), errors=dict(run.errors),
        reconnects=stats.reconnects, drops=stats.drops, intervals=tuple(totals.rows), interrupted=interrupted,
        error=run.last_error, unsent=run.unsent,
    )


def _start_schedule(run: _Run, loop: asyncio.AbstractEventLoop, t0: int) -> None:
    """The open-loop schedule: a timer that dispatches every request whose time has come.

    The generator's own work stays bounded whatever the asked rate: at most MAX_TICK_DISPATCH
    requests a tick (replies are read between ticks); requests it fell more than --timeout
    behind on are skipped in one step and counted as ``unsent`` (the sender's shortfall), and
    while the backlog is full the due requests are counted as ``overload`` in one step, not
    one by one (a per-request count at 1M/s would itself starve the loop).
    """
    assert run.cfg.rate is not None
    interval = NS / run.cfg.rate
    state = {"k": 0}

    def due_by(now: int) -> int:
        """Index one past the last request scheduled at or before ``now``."""
        return int((now - t0) / interval) + 1

    def skip(count: int, kind: str | None) -> int:
        """Take ``count`` scheduled requests off the schedule unsent; returns how many it took."""
        if run.left is not None:
            count = min(count, max(run.left, 0))
            run.left -= count
        if count <= 0:
            return 0
        if kind is None:
            run.unsent += count
        else:
            run.errors[kind] += count
            run.last_error = "backlog full"
        if run.limited:
            for _ in range(count):
                run.outcome()
        return count

    def tick() -> None:
        if not run.sending:
            return
        now = perf_ns()
        k = state["k"]
        stale = due_by(now - run.timeout_ns) - k  # due longer ago than --timeout: never sent
        if stale > 0:
            k += skip(stale, None)
        n = 0
        while t0 + int(k * interval) <= now and n < MAX_TICK_DISPATCH:
            if run.left is not None and run.left <= 0:
                state["k"] = k
                return
            if len(run.backlog) >= run.max_backlog and run.pool is not None and run.pool.stats().idle == 0:
                k += max(1, skip(due_by(now) - k, "overload"))
                break
            if run.left is not None:
                run.left -= 1
            run.dispatch(t0 + int(k * interval))
            k += 1
            n += 1
        state["k"] = k
        delay = (t0 + int(k * interval) - perf_ns()) / NS
        loop.call_later(max(0.0, delay), tick)

    tick()


async def _timeouts(run: _Run, pool: ConnectionPool[_LoadConn]) -> None:
    """Close connections whose request is older than the timeout (the pool reconnects them),
    expire backlog entries nobody could send in time, and end a run no connection can serve."""
    period = min(max(run.cfg.timeout_s / 4, 0.01), 0.25)
    while True:
        await asyncio.sleep(period)
        now = perf_ns()
        backlog = run.backlog
        while backlog and now - backlog[0] > run.timeout_ns:
            backlog.popleft()
            if run.recording:
                run.count_error("timeout", "no connection free within --timeout")
                if run.limited:
                    run.outcome()
        stats = pool.stats()
        if stats.open == 0 and stats.gave_up >= stats.size:
            run.last_error = f"every connection gave up reconnecting ({pool.last_error})"
            run.finished.set()  # nothing can be sent any more: end the run (bounded)
            return
        engine = run.engine
        for c in list(run.conns):
            sent = engine.sent_at(c) if engine is not None and c.fd >= 0 else max(c.t_sent, c.t_sched)
            if c.busy and now - sent > run.timeout_ns:
                c.busy = False
                if run.recording:
                    run.count_error("timeout", f"no reply within {run.cfg.timeout_s:g} s")
                    if run.limited:
                        run.outcome()
                c.abort()


class _Collector:
    """Per-second rows and the run's totals; folds each second's samples into the histogram."""

    def __init__(self, run: _Run, pool: ConnectionPool[_LoadConn], t0: int) -> None:
        self.run = run
        self.pool = pool
        self.t0 = t0
        self.hist = LatencyHistogram()
        # The last KEEP_INTERVALS rows only: a day-long run must not grow without bound
        # (jsonl and the live view see every row as it happens).
        self.rows: deque[RequestsInterval] = deque(maxlen=KEEP_INTERVALS)
        self.done = self.sent = self.bytes_in = 0
        self.last_ns = t0
        self.last_errors = 0
        self.last_reconnects = 0

    def fold(self) -> tuple[int, int, int, LatencyHistogram]:
        done, sent, bin_, samples = self.run.drain_counters()
        h = LatencyHistogram()
        h.add_many(samples)
        self.hist.merge(h)
        self.done += done
        self.bytes_in += bin_
        self.sent += sent
        return done, sent, bin_, h

    def row(self, now: int) -> RequestsInterval:
        done, sent, bin_, h = self.fold()
        bout = sent * self.run.frame_len
        span = (now - self.last_ns) / NS
        errors = sum(self.run.errors.values())
        stats = self.pool.stats()

        def ms(v: float | None) -> float | None:
            return None if v is None else round(v / 1e6, 6)

        def per_s(n: int) -> float:
            return round(n / span, 3) if span > 0 else 0.0

        row = RequestsInterval(
            start_s=round((self.last_ns - self.t0) / NS, 6), end_s=round((now - self.t0) / NS, 6), requests=done,
            requests_per_s=per_s(done), bytes_per_s={"sent": per_s(bout), "received": per_s(bin_)},
            latency_ms={"p50": ms(h.percentile(50)), "p99": ms(h.percentile(99)), "max": ms(h.max)},
            errors=errors - self.last_errors, reconnects=stats.reconnects - self.last_reconnects,
            open_connections=stats.open,
        )
        self.last_ns, self.last_errors, self.last_reconnects = now, errors, stats.reconnects
        self.rows.append(row)
        if self.run.sink is not None:
            self.run.sink(row)
        return row

    async def every_second(self) -> None:
        k = 1
        while True:
            delay = (self.t0 + k * NS - perf_ns()) / NS
            if delay > 0:
                await asyncio.sleep(delay)
            self.row(perf_ns())
            k += 1

    def final(self, t_end: int) -> None:
        """The last, partial second (a sliver under 20 ms is folded in without a row)."""
        if t_end - self.last_ns < NS // 50 and self.rows:
            self.fold()
        else:
            self.row(t_end)
