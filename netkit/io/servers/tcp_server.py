"""``netkit serve tcp``: an asyncio Protocol server (uvloop when installed) with limits.

:class:`TcpServer` is the :class:`netkit.io.servers.session_host.SessionHost` that measurement
sessions (``netkit.io.servers.tcp_sessions.open_session(transport, first_bytes, server)``) are
handed: ``config``, ``guard``, ``sink_pool``, ``stopping``, ``record``, ``add_bytes``, ``emit``,
``closed``, ``error`` and ``hit_limit``, documented there.

Limits first: ``--max-conns``, ``--allow/--deny`` and the per-source rate are checked when a
connection is accepted, before any TLS work. With ``--tls`` an admitted connection's socket is
then handed to a TLS transport (``connect_accepted_socket``) whose handshake must finish within
``TLS_HANDSHAKE_TIMEOUT_S`` and whose close waits at most ``TLS_SHUTDOWN_TIMEOUT_S``; a failed
handshake is counted (``errors``, ``tls_handshake_failed``) and ends with a ``close`` event whose
reason is ``tls-handshake``.

Every connection starts in :class:`_Sniff`: bookkeeping and limits at accept, TLS if asked, then
its first bytes decide (:func:`netkit.core.session_header.sniff`) between a measurement session
(:mod:`netkit.io.servers.tcp_sessions`) and the plain mode's protocol
(:mod:`netkit.io.servers.tcp_modes`, the hot path). The server's totals are summed on demand.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from netkit.core.serve_models import (
    TLS_HANDSHAKE_TIMEOUT_S,
    TLS_SHUTDOWN_TIMEOUT_S,
    CloseReason,
    ServerEventSink,
    TcpMode,
    TcpServerConfig,
    TcpServeSummary,
    close_reason,
    empty_limits,
    ms,
)
from netkit.core.session_header import sniff
from netkit.core.targets import format_host_port, format_sockaddr
from netkit.io.clock import wall_iso
from netkit.io.servers.listen import bind_failure
from netkit.io.servers.session_host import ConnRecord
from netkit.io.servers.tcp_modes import MODE_PROTOCOLS, EchoUnlimited, Source
from netkit.io.servers.throughput_session import SinkPool

if TYPE_CHECKING:  # pragma: no cover
    from netkit.io.aio import StopSignal
    from netkit.io.servers.server_guard import Guard


SNIFF_WAIT_S = 0.1  # a plain client sending fewer bytes than the header waits at most this long
STOP_GRACE_S = 1.0  # after close(), connections still open are aborted
REFUSAL_EVENT_INTERVAL_NS = 1_000_000_000  # a flood of refusals logs one event per second (with the count)



def peer_text(transport: asyncio.BaseTransport) -> str:
    return format_sockaddr(transport.get_extra_info("peername"))


class _Sniff(asyncio.Protocol):
    """First protocol of every connection: bookkeeping, limits, then the session sniff."""

    def __init__(self, server: TcpServer, rec: ConnRecord | None = None) -> None:
        self.server = server
        self.limit_free = server.config.max_bytes is None
        self.transport: asyncio.Transport | None = None
        self.rec: ConnRecord | None = rec  # given: a TLS connection admitted at accept (_start_tls)
        self.buf = b""
        self.timer: asyncio.TimerHandle | None = None
        self.decided = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.rec is not None:  # the TLS transport of a connection admitted at accept
            self.server._tls_ready(self.rec, transport)  # type: ignore[arg-type]  # uvloop's is not a subclass
            self.begin(transport)  # type: ignore[arg-type]
            return
        self.transport = raw = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        # Limits are counted here, at accept, before any TLS work: a refused connection costs
        # one accept and one close, never a handshake or a descriptor held through one.
        self.rec = self.server._opened(raw)  # type: ignore[arg-type]
        if self.rec is None:  # refused by --max-conns, --allow/--deny or the per-source rate
            self.decided = True
            return
        if self.server.tls is not None:
            self.handshaking = True  # the handshake task reports this connection's end, not us
            self.server._start_tls(raw, self.rec)  # type: ignore[arg-type]
            return
        self.begin(raw)  # type: ignore[arg-type]

    def begin(self, transport: asyncio.Transport) -> None:
        """The connection is ready for bytes (accepted, or its TLS handshake done)."""
        self.handshaking = False
        self.transport = transport
        transport.set_write_buffer_limits(high=self.server.config.high_water)
        self.timer = asyncio.get_running_loop().call_later(SNIFF_WAIT_S, self._timeout)

    def _timeout(self) -> None:
        self.timer = None
        if not self.decided:
            self._switch(False)

    def data_received(self, data: bytes) -> None:
        if self.decided:
            return
        self.buf += data
        verdict = sniff(self.buf)
        if verdict is None:
            return  # a prefix of the session magic: wait for more (at most SNIFF_WAIT_S)
        self._switch(verdict)

    def _switch(self, session: bool) -> None:
        self.decided = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        transport, rec, first = self.transport, self.rec, self.buf
        self.buf = b""
        assert transport is not None and rec is not None
        if transport.is_closing():
            return
        if session:
            self.server._hand_over(transport, rec, first)
            return
        guard = self.server.guard  # a keyed server serves keyed sessions only: a plain client is refused
        if guard is not None and guard.key is not None:
            guard.reject("rejected_by_key", "no-key", transport.get_extra_info("peername") or rec.peer,
                         time.perf_counter_ns())
            rec.reason = CloseReason.REJECTED_BY_KEY
            transport.close()
            return
        mode = self.server.mode
        cls = EchoUnlimited if mode is TcpMode.ECHO and self.limit_free else MODE_PROTOCOLS[mode]
        proto = cls(self.server, transport, rec)
        transport.set_protocol(proto)
        if first:
            proto.data_received(first)
        if isinstance(proto, Source):
            proto.start()
        if self._eof:
            self._keep_open = bool(proto.eof_received())

    _eof = False
    _keep_open = False
    handshaking = False

    def eof_received(self) -> bool:
        if not self.decided:
            self._eof = True
            self._switch(False)  # a client that sent less than a header and closed: plain client
        # The mode's answer (False: close once writes are flushed); never True over TLS modes
        # that close, which asyncio would warn about.
        return self._keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.decided = True
        if self.transport is not None and not self.handshaking:
            self.server._lost(self.transport, exc)


# ----- the server ----------------------------------------------------------------------------

class TcpServer:
    """A running ``serve tcp``: start(), then wait for ``done`` or stop(); see module docstring."""

    def __init__(
        self,
        config: TcpServerConfig,
        *,
        tls: ssl.SSLContext | None = None,
        on_event: ServerEventSink | None = None,
        on_debug: Callable[[str], None] | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.config = config
        self.mode = TcpMode(config.mode)
        self.guard = guard  # keys and limits (--key, --allow/--deny, rates, sessions), or None
        self.tls = tls
        self.on_event = on_event
        self.on_debug = on_debug
        self.host = config.host
        self.port = config.port
        self.stopping = False
        self.done = asyncio.Event()  # set by --once after its connection closes
        self._server: asyncio.AbstractServer | None = None
        self._conns: dict[asyncio.BaseTransport, ConnRecord] = {}  # keyed by the connection's current transport
        self._next_id = 1
        self._peak = 0
        self._total_conns = 0
        self._closed_in = 0
        self._closed_out = 0
        self._errors = 0
        self._sessions = 0
        self._limits = empty_limits()
        self._start_ns = 0
        self._sweeper: asyncio.Task[None] | None = None
        self._tls_failed = 0
        self._handshakes: set[asyncio.Task[None]] = set()
        self._refusal_event_ns: int | None = None
        self.sink_pool: SinkPool | None = None  # receive threads shared by plain-TCP throughput sinks

    # ----- public API for sessions ------------------------------------------------------------
    def record(self, transport: asyncio.BaseTransport) -> ConnRecord | None:
        return self._conns.get(transport)

    def add_bytes(self, transport: asyncio.BaseTransport, bytes_in: int = 0, bytes_out: int = 0) -> bool:
        rec = self._conns.get(transport)
        if rec is None:
            return True
        rec.bytes_in += bytes_in
        rec.bytes_out += bytes_out
        limit = self.config.max_bytes
        if limit is not None and rec.bytes_in + rec.bytes_out > limit:
            if rec.reason is None:
                self.hit_limit(rec, "max_bytes")
            return False
        return True

    def emit(self, event: str, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event({"event": event, "time": wall_iso(), **fields})

    def closed(self, transport: asyncio.BaseTransport, reason: CloseReason = CloseReason.EOF,
               error: str | None = None) -> None:
        rec = self._conns.pop(transport, None)
        if rec is None or rec.closed:
            return
        rec.closed = True
        if error is not None:
            if rec.reason is None:
                self.error(f"connection {rec.id} {rec.peer}: {error}")
            elif self.on_debug is not None:
                # The server chose to close (a limit, idle, stop) and the close itself ended badly,
                # typically the TLS close_notify cut at its own 2 s bound by a peer that no longer
                # reads: already counted under its reason, not a second time as an error.
                self.on_debug(f"connection {rec.id} {rec.peer}: while closing ({rec.reason.value}): {error}")
        reason = rec.reason or reason
        self._closed_in += rec.bytes_in
        self._closed_out += rec.bytes_out
        self.emit(
            "close", id=rec.id, peer=rec.peer, bytes_in=rec.bytes_in, bytes_out=rec.bytes_out,
            duration_ms=ms(time.perf_counter_ns() - rec.opened_ns), reason=CloseReason(reason).value,
        )
        if self.config.once:
            self.done.set()

    def error(self, message: str) -> None:
        self._errors += 1
        if self.on_debug is not None:
            self.on_debug(message)

    # ----- lifecycle ------------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        """Bind and listen; return the real (host, port). Bind failures raise RuntimeFailure."""
        loop = asyncio.get_running_loop()
        self.sink_pool = SinkPool(self.config.sink_threads)
        try:
            # Plain TCP even with --tls: _Sniff starts TLS itself once the limits admitted the
            # connection (see _start_tls), so --max-conns and the guard count at accept.
            self._server = await loop.create_server(
                lambda: _Sniff(self), self.config.host, self.config.port,
                backlog=self.config.backlog, reuse_address=True,
            )
        except OSError as exc:
            raise bind_failure(self.config.host, self.config.port, exc) from None
        sock = self._server.sockets[0]
        name = sock.getsockname()
        self.host, self.port = str(name[0]), int(name[1])
        self._start_ns = time.perf_counter_ns()
        if self.config.idle_timeout is not None:
            self._sweeper = asyncio.ensure_future(self._sweep(self.config.idle_timeout))
        self.emit("listening", host=self.host, port=self.port)
        return self.host, self.port

    @property
    def address(self) -> str:
        return format_host_port(self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, close every connection (abort those that do not drain), wait."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._handshakes):
            task.cancel()
        if self._server is not None:
            self._server.close()
        for rec in list(self._conns.values()):
            rec.reason = rec.reason or CloseReason.SERVER_STOP
            rec.transport.close()
        deadline = time.monotonic() + STOP_GRACE_S
        while self._conns and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for rec in list(self._conns.values()):
            rec.transport.abort()
        deadline = time.monotonic() + STOP_GRACE_S
        while self._conns and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for transport in list(self._conns):  # never reported lost: account for them anyway
            self.closed(transport, CloseReason.SERVER_STOP)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), STOP_GRACE_S)
            except (asyncio.TimeoutError, Exception):
                pass

    def summary(self, stopped_by: str | None = None) -> TcpServeSummary:
        open_in = sum(r.bytes_in for r in self._conns.values())
        open_out = sum(r.bytes_out for r in self._conns.values())
        return TcpServeSummary(
            host=self.host, port=self.port, mode=self.mode.value, tls=self.tls is not None,
            connections=self._total_conns, peak_concurrent=self._peak,
            bytes_in=self._closed_in + open_in, bytes_out=self._closed_out + open_out,
            errors=self._errors, sessions=self._sessions,
            # The guard's refusals (keys, --allow/--deny, rates, sessions) count as limits hit too.
            limits_hit={**self._limits, **(self.guard.stats() if self.guard is not None else {})},
            elapsed_ms=ms(time.perf_counter_ns() - self._start_ns) if self._start_ns else 0.0,
            stopped_by=stopped_by, tls_handshake_failed=self._tls_failed,
        )

    @property
    def active(self) -> int:
        return len(self._conns)

    # ----- internals ------------------------------------------------------------------------
    def _opened(self, transport: asyncio.Transport) -> ConnRecord | None:
        peer = peer_text(transport)
        limit = self.config.max_conns
        if self.stopping or (limit is not None and len(self._conns) >= limit):
            if not self.stopping:
                self._limits["max_conns"] += 1
                now = time.perf_counter_ns()
                last = self._refusal_event_ns
                if last is None or now - last >= REFUSAL_EVENT_INTERVAL_NS:  # a flood logs once a second
                    self._refusal_event_ns = now
                    self.emit("limit", limit="max_conns", id=None, peer=peer, value=limit,
                              count=self._limits["max_conns"])
            transport.close()  # a clean FIN (plain TCP: TLS has not started), not a reset
            return None
        # --allow/--deny and the per-source rate, at accept (counted and logged by the guard)
        if self.guard is not None and not self.guard.admit(transport.get_extra_info("peername") or peer,
                                                           time.perf_counter_ns()):
            transport.close()
            return None
        rec = ConnRecord(self._next_id, peer, time.perf_counter_ns(), transport)
        self._next_id += 1
        self._total_conns += 1
        self._conns[transport] = rec
        if len(self._conns) > self._peak:
            self._peak = len(self._conns)
        self.emit("open", id=rec.id, peer=peer)
        if self.config.once and self._server is not None:
            self._server.close()  # serve this one connection only
        return rec

    def _hand_over(self, transport: asyncio.Transport, rec: ConnRecord, first: bytes) -> None:
        from netkit.io.servers import tcp_sessions  # looked up per call: tests replace open_session

        rec.session = True
        self._sessions += 1
        try:
            tcp_sessions.open_session(transport, first, self)
        except Exception as exc:
            rec.reason = CloseReason.ERROR
            self.error(f"connection {rec.id} {rec.peer}: session failed: {type(exc).__name__}: {exc}")
            transport.close()

    def hit_limit(self, rec: ConnRecord, which: str) -> None:
        """A limit ends this connection: count it in ``limits_hit`` and log a ``limit`` event."""
        rec.reason = CloseReason(which.replace("_", "-"))
        self._limits[which] = self._limits.get(which, 0) + 1
        from netkit.core.serve_models import REQUEST_AMPLIFICATION

        value = {"max_bytes": self.config.max_bytes, "idle_timeout": self.config.idle_timeout,
                 "max_request": self.config.max_request, "amplification": REQUEST_AMPLIFICATION}.get(which)
        self.emit("limit", limit=which, id=rec.id, peer=rec.peer, value=value)

    def _start_tls(self, raw: asyncio.Transport, rec: ConnRecord) -> None:
        """Hand an admitted connection's socket to a TLS transport (handshake bounded in time).

        The plain transport is dropped inside ``connection_made``, before the loop has read a byte
        (uvloop starts reading right after ``connection_made``, whatever the protocol asked): the
        ClientHello stays in the kernel for the TLS transport made from a duplicate descriptor.
        """
        sock = raw.get_extra_info("socket")
        try:
            dup = socket.socket(fileno=os.dup(sock.fileno()))
        except (AttributeError, OSError, ValueError) as exc:
            rec.reason = CloseReason.ERROR
            raw.close()
            self.error(f"connection {rec.id} {rec.peer}: cannot start TLS: {exc}")
            return
        raw.abort()  # closes the loop's descriptor only; the connection lives on in ``dup``
        task = asyncio.ensure_future(self._handshake(dup, raw, rec))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, dup: socket.socket, raw: asyncio.BaseTransport, rec: ConnRecord) -> None:
        assert self.tls is not None
        loop = asyncio.get_running_loop()
        # The close's bound is an argument from Python 3.11 (and uvloop) on; 3.10 keeps its default.
        shutdown: dict[str, Any] = {"ssl_shutdown_timeout": TLS_SHUTDOWN_TIMEOUT_S} \
            if sys.version_info >= (3, 11) or type(loop).__module__.startswith("uvloop") else {}
        try:
            await loop.connect_accepted_socket(
                lambda: _Sniff(self, rec), dup, ssl=self.tls, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S,
                **shutdown,
            )
        except asyncio.CancelledError:  # the server is stopping
            self.closed(raw, CloseReason.SERVER_STOP)
            raise
        except Exception as exc:  # a failed or timed-out handshake: counted, shown, closed
            if raw not in self._conns:
                return  # the server already ended it (stop)
            self._tls_failed += 1
            from netkit.io.tls import tls_error_message

            if isinstance(exc, TimeoutError) or "longer than" in str(exc):  # uvloop: ConnectionAbortedError
                why = f"TLS handshake not done within {TLS_HANDSHAKE_TIMEOUT_S:g}s"
            else:
                why = tls_error_message(exc)
            # Counted in errors whatever else ended it (an idle timeout during the handshake too).
            self.error(f"connection {rec.id} {rec.peer}: {why}")
            rec.reason = CloseReason.TLS_HANDSHAKE
            self.closed(raw, CloseReason.TLS_HANDSHAKE)

    def _tls_ready(self, rec: ConnRecord, tls: asyncio.Transport) -> None:
        """The handshake is done: the connection is now its TLS transport for sessions and limits."""
        old = rec.transport
        self._conns.pop(old, None)
        rec.transport = tls
        if rec.closed or self.stopping:
            tls.close()
            return
        self._conns[tls] = rec

    def _lost(self, transport: asyncio.BaseTransport, exc: Exception | None) -> None:
        self.closed(transport, *close_reason(exc))

    async def _sweep(self, idle_timeout: float) -> None:
        """Close connections with no byte in either direction for ``idle_timeout`` seconds.

        No clock read on the hot path: each sweep compares a connection's byte total with the
        one it saw last time and notes when it last changed.
        """
        interval = min(max(idle_timeout / 4, 0.05), 1.0)
        limit_ns = int(idle_timeout * 1e9)
        while True:
            await asyncio.sleep(interval)
            now = time.perf_counter_ns()
            for rec in list(self._conns.values()):
                total = rec.bytes_in + rec.bytes_out
                if total != rec._snap:
                    rec._snap = total
                    rec._active_ns = now
                elif now - rec._active_ns >= limit_ns and rec.reason is None:
                    t = rec.transport
                    if self.tls is not None and t.get_extra_info("ssl_object") is None:
                        # Still in its TLS handshake: the plain transport is already gone, so
                        # closing it does nothing; the handshake's own 5 s bound ends it, and it
                        # is counted there, not as closed by the idle timeout.
                        continue
                    self.hit_limit(rec, "idle_timeout")
                    if getattr(t, "get_write_buffer_size", lambda: 0)():
                        t.abort()  # a client that stopped reading: nothing would drain
                    else:
                        t.close()


async def serve_tcp(
    config: TcpServerConfig,
    *,
    tls: ssl.SSLContext | None = None,
    on_event: ServerEventSink | None = None,
    on_ready: Callable[[TcpServer], None] | None = None,
    on_debug: Callable[[str], None] | None = None,
    stop: StopSignal | None = None,
    guard: Guard | None = None,
    on_stop: Callable[[StopSignal], None] | None = None,
    on_tls: Callable[[bool, str], None] | None = None,
) -> TcpServeSummary:
    """Serve until ``stop`` (a :class:`netkit.io.aio.StopSignal`) fires or ``--once`` is done.

    The TLS context (``config.tls``) and the guard (``config.key``, ``config.limits``) are built
    here unless given (``tls``, ``guard``); ``on_tls(ephemeral, sha256_fingerprint)`` then names
    the certificate a client may pin. ``on_stop`` is handed the stop event once it exists, for
    whoever else may end the run (the CLI's stdout guard sets it when the reader goes away).
    """
    if tls is None and config.tls:
        from netkit.io.tls import server_context

        server_tls = server_context(config.tls_cert, config.tls_key, host=config.host)
        tls = server_tls.context
        if on_tls is not None:
            on_tls(server_tls.ephemeral, server_tls.fingerprint_sha256)
    if guard is None:
        from netkit.io.servers.server_guard import guard_for

        guard = guard_for(config.key, config.limits, on_event)
    raise_nofile_limit((config.max_conns or 65536) + 64)
    server = TcpServer(config, tls=tls, on_event=on_event, on_debug=on_debug, guard=guard)
    loop = asyncio.get_running_loop()
    _quiet_loop_errors(loop, server)
    return server.summary(await run_until_stopped(server, stop=stop, on_ready=on_ready, on_stop=on_stop))


S = TypeVar("S", bound="StoppableServer")


class StoppableServer(Protocol):
    """What :func:`run_until_stopped` drives: a server that starts, may finish by itself (``done``,
    e.g. ``--once``) and stops."""

    done: asyncio.Event

    async def start(self) -> Any: ...
    async def stop(self) -> None: ...


async def run_until_stopped(server: S, *, stop: StopSignal | None = None,
                            on_ready: Callable[[S], None] | None = None,
                            on_stop: Callable[[StopSignal], None] | None = None) -> str:
    """Start ``server`` and serve until ``stop`` fires (its own SIGINT/SIGTERM handler when None)
    or the server is done by itself; then stop it. What ended it: the signal's name, ``stop``
    (set without a signal) or ``once``. ``on_stop`` is handed the stop event once it exists."""
    from netkit.io.aio import StopSignal

    stop_cm = StopSignal() if stop is None else None
    if stop_cm is not None:
        stop = await stop_cm.__aenter__()
    assert stop is not None
    if on_stop is not None:
        on_stop(stop)
    try:
        await server.start()
        if on_ready is not None:
            on_ready(server)
        done = asyncio.ensure_future(server.done.wait())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({done, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            stopper.cancel()
        if not stop.is_set():
            return "once"
        import signal as _signal

        return _signal.Signals(stop.signum).name if stop.signum else "stop"
    finally:
        await server.stop()
        if stop_cm is not None:
            await stop_cm.__aexit__(None, None, None)


def raise_nofile_limit(want: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``want`` (up to the hard limit); return the soft limit.

    A server that may hold --max-conns connections needs that many descriptors; many systems
    start processes at 1024.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return want
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def serve_tcp_sync(config: TcpServerConfig, **kwargs: Any) -> TcpServeSummary:
    """Blocking twin of :func:`serve_tcp` (until SIGINT/SIGTERM, or ``--once``)."""
    from netkit.io.aio import run

    return run(serve_tcp(config, **kwargs))


def _quiet_loop_errors(loop: asyncio.AbstractEventLoop, server: TcpServer) -> None:
    """Failed TLS handshakes and resets are counted, not printed as asyncio tracebacks."""

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        msg = context.get("message", "")
        server.error(f"{msg}: {type(exc).__name__}: {exc}" if exc else str(msg))

    loop.set_exception_handler(handler)
