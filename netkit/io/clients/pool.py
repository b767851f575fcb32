"""A pool of pre-established TCP (or TLS) connections: fixed size, health checks, reconnection.

Why a pool of *protocols*: a load generator on two cores cannot afford a coroutine and a stream
reader per request. Each pooled connection is an ``asyncio.Protocol`` object (subclass
:class:`PoolConnection` and pass ``connection_class=`` to take over ``data_received`` for a hot
path); the plain class offers an awaitable ``request()`` for ordinary callers.

Behaviour:

- ``start()`` opens ``size`` connections concurrently. It raises :class:`PoolConnectError` when
  not one of them could be made; slots that failed keep retrying in the background.
- A connection that drops (peer closed, reset, closed by a health check or by its user) is
  replaced: its slot reconnects on the same schedule as ``netkit probe`` (a
  :class:`netkit.core.backoff.RetryPlan`: first try at once, then ``backoff`` doubling up to its
  cap) until ``reconnect_window_s`` passes; drops, reconnects and failures are counted. A
  connection that dies within a second of being made (a server over its connection limit) starts
  its slot's next reconnect one step further along the schedule, so that cannot become a busy loop.
- ``acquire()`` waits at most ``acquire_timeout_s`` for a free connection (:class:`PoolTimeout`);
  ``release()`` hands it to the oldest waiter first. ``acquire_nowait()`` never waits.
- Health checks run every ``health_interval_s`` on idle connections only: a closing transport is
  dropped, and an optional ``health_check(conn) -> awaitable bool`` can probe the service.
- ``close()`` stops reconnecting, fails waiters with :class:`PoolClosed`, closes every
  connection, aborts those that do not close within a second, and waits for them.

Example::

    pool = ConnectionPool("127.0.0.1", 9000, PoolConfig(size=4))
    await pool.start()
    async with pool.connection() as conn:
        reply = await conn.request(b"ping\\n", DelimiterFramer(b"\\n"), timeout=1.0)
    await pool.close()
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl as ssl_mod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar, cast

from netkit.core.backoff import Backoff, RetryPlan
from netkit.core.errors import CheckFailed
from netkit.core.pool_config import PoolConfig, PoolStats
from netkit.core.request_framing import Framer
from netkit.io.clock import now_ns
from netkit.io.resolve import failure_reason

NS = 1_000_000_000
CLOSE_GRACE_S = 1.0
QUICK_DROP_NS = NS  # a connection lost within this of its connect counts towards backoff


class PoolError(Exception):
    """Base class of the pool's own errors."""


class PoolClosed(PoolError):
    """The pool was closed while waiting, or used after ``close()``."""


class PoolTimeout(PoolError, asyncio.TimeoutError):
    """No connection became free within the acquire timeout."""


class PoolConnectError(CheckFailed, PoolError):
    """Not one connection of the pool could be made (exit 1 in the CLI: the target refused)."""


class ConnectionLost(PoolError, ConnectionError):
    """The connection closed while a request was waiting for its reply."""


class PoolConnection(asyncio.Protocol):
    """One pooled connection; the protocol object is the handle callers get from the pool.

    Subclasses may override ``data_received`` (a hot path) and ``on_lost``; they must not
    override ``connection_made``/``connection_lost`` without calling ``super()``.
    """

    def __init__(self, pool: ConnectionPool[Any], slot: int) -> None:
        self.pool = pool
        self.slot = slot
        self.transport: asyncio.Transport | None = None
        self.alive = False
        self.in_use = False
        self.connected_ns = 0
        self.lost_exc: BaseException | None = None
        self._framer: Framer | None = None
        self._waiter: asyncio.Future[bytes] | None = None

    # ----- asyncio callbacks -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport, but offers its methods).
        self.transport = cast(asyncio.Transport, transport)
        self.alive = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass

    def data_received(self, data: bytes) -> None:
        framer, waiter = self._framer, self._waiter
        if framer is None or waiter is None or waiter.done():
            return  # unsolicited bytes: nobody asked; drop them
        try:
            replies = framer.feed(data)
        except ValueError as exc:
            waiter.set_exception(exc)
            return
        if replies:
            waiter.set_result(replies[0])

    def eof_received(self) -> bool:
        return False  # the peer half-closed: close; the pool reconnects

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self.lost_exc = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionLost(f"connection lost: {exc}" if exc else "connection closed by peer"))
        self.on_lost(exc)
        self.pool._lost(self, exc)

    # ----- for users --------------------------------------------------------------------------
    def on_lost(self, exc: Exception | None) -> None:
        """Hook for subclasses: the connection is gone (called before the pool reconnects)."""

    def write(self, data: bytes) -> None:
        if self.transport is None or not self.alive:
            raise ConnectionLost("connection is not open")
        self.transport.write(data)

    async def request(self, data: bytes, framer: Framer, timeout: float | None = None) -> bytes:
        """Send ``data`` and return the first whole reply ``framer`` recognises.

        One request at a time per connection. A timeout leaves the stream out of step with the
        requests, so the connection is closed (and replaced by the pool).
        """
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError("a request is already outstanding on this connection")
        loop = asyncio.get_running_loop()
        self._framer = framer
        self._waiter = loop.create_future()
        waiter = self._waiter
        self.write(data)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            self.abort()
            raise
        finally:
            self._framer = None
            if not waiter.done():
                waiter.cancel()  # nobody will read it: no "exception never retrieved" later

    def close(self) -> None:
        """Close gracefully (the pool then reconnects this slot unless it is closing)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


C = TypeVar("C", bound=PoolConnection)

HealthCheck = Callable[[C], Awaitable[bool]]
#: Makes the protocol object of one slot: ``factory(pool, slot)`` (a :class:`PoolConnection`
#: subclass itself, or a function that also hands the connection its owner's state).
ConnectionFactory = Callable[["ConnectionPool[C]", int], C]


class ConnectionPool(Generic[C]):
    """A fixed number of connections to one ``host:port`` (see the module docstring).

    Generic in its connection type: ``ConnectionPool[MyConn]`` built with ``connection_class=MyConn``
    hands out ``MyConn`` objects from ``acquire()`` and to ``on_ready``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        config: PoolConfig | None = None,
        *,
        ssl: ssl_mod.SSLContext | None = None,
        server_hostname: str | None = None,
        connection_class: ConnectionFactory[C] | None = None,
        on_ready: Callable[[C], bool] | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        health_check: HealthCheck[C] | None = None,
        preamble: bytes | Callable[[], bytes] | None = None,
        family: int = 0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """``on_ready(conn)``: called for each new connection; return True to keep it (it is then
        not put in the idle set). ``on_event(name, fields)``: "connect", "drop", "reconnect",
        "connect-failed", "gave-up", "health-failed". ``preamble``: bytes written first on every
        new connection (a session header)."""
        self.host = host
        self.port = port
        self.config = config or PoolConfig()
        self.ssl = ssl
        self.server_hostname = server_hostname if ssl is not None else None
        # Without a factory the pool holds plain PoolConnection objects (C is PoolConnection then).
        self.connection_class: ConnectionFactory[C] = (
            connection_class if connection_class is not None else cast("ConnectionFactory[C]", PoolConnection))
        self.on_ready = on_ready
        self.on_event = on_event
        self.health_check = health_check
        self.preamble = preamble
        self.family = family
        self.rng = rng
        self._conns: list[C | None] = [None] * self.config.size
        self._streak: list[int] = [0] * self.config.size
        self._idle: deque[C] = deque()
        self._waiters: deque[asyncio.Future[C]] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._health_task: asyncio.Task[None] | None = None
        self._closing = False
        self._started = False
        self._connects = 0
        self._reconnects = 0
        self._drops = 0
        self._connect_failures = 0
        self._health_failures = 0
        self._acquire_timeouts = 0
        self._gave_up = 0
        self.last_error: str | None = None

    # ----- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> int:
        """Open every connection; return how many are open. Raise PoolConnectError if none."""
        if self._started:
            raise RuntimeError("pool already started")
        self._started = True
        try:
            results = await asyncio.gather(*(self._connect_once(slot) for slot in range(self.config.size)))
        except BaseException:  # cancelled (Ctrl-C) while connecting: leave nothing open
            await self.close()
            raise
        failed = [slot for slot, ok in enumerate(results) if not ok]
        if len(failed) == self.config.size:
            msg = self.last_error or "connection failed"
            await self.close()
            raise PoolConnectError(f"{self._where}: {msg}")
        for slot in failed:  # keep trying on the backoff schedule, as after a drop
            self._spawn(self._reconnect(slot, first_failed=True))
        if self.config.health_interval_s > 0:
            self._health_task = asyncio.ensure_future(self._health_loop())
        return self.size_open

    async def close(self) -> None:
        """Stop reconnecting, fail waiters, close every connection and wait for them."""
        if self._closing:
            return
        self._closing = True
        tasks = list(self._tasks)
        if self._health_task is not None:
            tasks.append(self._health_task)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_exception(PoolClosed("pool closed"))
        conns = [c for c in self._conns if c is not None and c.transport is not None]
        for c in conns:
            c.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_GRACE_S
        while any(c.alive for c in conns) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for c in conns:
            if c.alive:
                c.abort()
        deadline = loop.time() + CLOSE_GRACE_S
        while any(c.alive for c in conns) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self._idle.clear()

    async def __aenter__(self) -> ConnectionPool[C]:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----- acquire / release ---------------------------------------------------------------------
    def acquire_nowait(self) -> C | None:
        """A free connection, or None at once."""
        while self._idle:
            conn = self._idle.popleft()
            if conn.alive and self._conns[conn.slot] is conn:
                conn.in_use = True
                return conn
        return None

    async def acquire(self, timeout: float | None = None) -> C:
        """A free connection, waiting at most ``timeout`` (default ``acquire_timeout_s``)."""
        if self._closing:
            raise PoolClosed("pool closed")
        conn = self.acquire_nowait()
        if conn is not None:
            return conn
        fut: asyncio.Future[C] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        wait = self.config.acquire_timeout_s if timeout is None else timeout
        try:
            return await asyncio.wait_for(fut, wait)
        except asyncio.TimeoutError:
            self._acquire_timeouts += 1
            raise PoolTimeout(f"no free connection within {wait:g} s") from None
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    def release(self, conn: C) -> None:
        """Give a connection back (a dead one is ignored: its slot is reconnecting)."""
        conn.in_use = False
        if not conn.alive or self._closing or self._conns[conn.slot] is not conn:
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                conn.in_use = True
                fut.set_result(conn)
                return
        self._idle.append(conn)

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[C]:
        """``async with pool.connection() as conn``: acquire, then release even on error."""
        conn = await self.acquire(timeout)
        try:
            yield conn
        finally:
            self.release(conn)

    # ----- facts ------------------------------------------------------------------------------------
    @property
    def _where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def size_open(self) -> int:
        return sum(1 for c in self._conns if c is not None and c.alive)

    @property
    def connections(self) -> list[C]:
        """The open connections (in slot order)."""
        return [c for c in self._conns if c is not None and c.alive]

    @property
    def closing(self) -> bool:
        return self._closing

    def stats(self) -> PoolStats:
        open_ = self.size_open
        idle = sum(1 for c in self._idle if c.alive)
        return PoolStats(
            size=self.config.size, open=open_, idle=idle,
            in_use=sum(1 for c in self._conns if c is not None and c.alive and c.in_use),
            connects=self._connects, reconnects=self._reconnects, drops=self._drops,
            connect_failures=self._connect_failures, health_failures=self._health_failures,
            acquire_timeouts=self._acquire_timeouts, gave_up=self._gave_up,
        )

    # ----- internals --------------------------------------------------------------------------------
    def _event(self, name: str, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event(name, fields)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_once(self, slot: int) -> bool:
        """One attempt for ``slot``; True when it is now open."""
        loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {"family": self.family}
        if self.ssl is not None:
            kwargs.update(ssl=self.ssl, server_hostname=self.server_hostname or self.host,
                          ssl_handshake_timeout=self.config.connect_timeout_s)
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: self.connection_class(self, slot), self.host, self.port, **kwargs),
                self.config.connect_timeout_s,
            )
        except asyncio.TimeoutError:
            self._connect_failed(slot, "connect timed out")
            return False
        except ssl_mod.SSLError as exc:
            self._connect_failed(slot, f"TLS: {exc.reason or exc}")
            return False
        except OSError as exc:
            self._connect_failed(slot, failure_reason(exc))
            return False
        if self._closing:
            conn.abort()
            return False
        if not conn.alive:  # closed before create_connection returned: a failed attempt
            self._connect_failed(slot, "connection closed at once")
            return False
        self._connects += 1
        self._conns[slot] = conn
        conn.connected_ns = now_ns()
        if self.preamble:
            conn.write(self.preamble() if callable(self.preamble) else self.preamble)
        self._event("connect", slot=slot)
        self._ready(conn)
        return True

    def _connect_failed(self, slot: int, message: str) -> None:
        self._connect_failures += 1
        self.last_error = message
        self._event("connect-failed", slot=slot, error=message)

    def _ready(self, conn: C) -> None:
        if self.on_ready is not None:
            conn.in_use = True  # the hook owns it now; it may keep it or release() it itself
            if self.on_ready(conn):
                return
        self.release(conn)

    def _lost(self, conn: C, exc: Exception | None) -> None:
        if self._conns[conn.slot] is not conn:
            return
        self._conns[conn.slot] = None
        conn.in_use = False
        if self._closing:
            return
        self._drops += 1
        self._event("drop", slot=conn.slot, error=None if exc is None else str(exc))
        # A connection that dies soon after it was made (a server over its connection limit
        # accepts and closes at once) must not turn reconnecting into a busy loop: each quick
        # death moves the slot one step further along the backoff schedule.
        if now_ns() - conn.connected_ns < QUICK_DROP_NS:
            self._streak[conn.slot] += 1
        else:
            self._streak[conn.slot] = 0
        self._spawn(self._reconnect(conn.slot, skip=self._streak[conn.slot]))

    async def _reconnect(self, slot: int, first_failed: bool = False, skip: int = 0) -> None:
        """Reconnect ``slot`` on the probe's backoff schedule, within the reconnect window."""
        backoff = self.config.backoff
        if self.config.jitter != backoff.jitter:
            backoff = Backoff(backoff.base_ns, backoff.factor, backoff.cap_ns, self.config.jitter)
        start = now_ns()
        plan = RetryPlan(backoff, None, start + int(self.config.reconnect_window_s * NS))
        # The failed first connect counts as attempt 1; ``skip``: quick deaths in a row.
        attempts = (1 if first_failed else 0) + skip
        at: int | None = plan.next_attempt_ns(attempts, start, self.rng)
        while at is not None and not self._closing:
            delay = (at - now_ns()) / NS
            if delay > 0:
                await asyncio.sleep(delay)
            attempts += 1
            if await self._connect_once(slot):
                self._reconnects += 1
                self._event("reconnect", slot=slot, attempts=attempts)
                return
            at = plan.next_attempt_ns(attempts, now_ns(), self.rng)  # None past the window: bounded
        if not self._closing:
            self._gave_up += 1
            self._event("gave-up", slot=slot, attempts=attempts)

    async def _health_loop(self) -> None:
        interval = self.config.health_interval_s
        while not self._closing:
            await asyncio.sleep(interval)
            for conn in list(self._idle):
                if self._closing:
                    return
                if not conn.alive:
                    continue
                transport = conn.transport
                if transport is None or transport.is_closing():
                    self._health_failed(conn, "transport closing")
                    continue
                if self.health_check is None:
                    continue
                # Take it out of the idle set while probing, so nobody else uses it meanwhile.
                try:
                    self._idle.remove(conn)
                except ValueError:
                    continue
                conn.in_use = True
                try:
                    ok = await asyncio.wait_for(self.health_check(conn), self.config.connect_timeout_s)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a failing check is a failed check, never a dead health loop
                    ok = False
                if ok:
                    self.release(conn)
                else:
                    conn.in_use = False
                    self._health_failed(conn, "health check failed")

    def _health_failed(self, conn: C, why: str) -> None:
        self._health_failures += 1
        self._event("health-failed", slot=conn.slot, error=why)
        conn.abort()  # connection_lost -> _lost -> reconnect
