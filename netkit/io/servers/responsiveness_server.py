"""``netkit serve responsiveness``: the draft's test server (config document, /large, /small, /upload).

One asyncio loop (uvloop when installed), no thread per connection. HTTP/2 over TLS (ALPN ``h2``)
and HTTP/1.1 (ALPN ``http/1.1`` or none) share the port; in cleartext (``--no-tls``) a connection
that opens with the HTTP/2 preface speaks HTTP/2 (prior knowledge, "h2c"), any other HTTP/1.1.
The HTTP itself is :mod:`netkit.io.servers.nq_http`'s.

Limits, all the server's own (a client's announcement never raises them):

- At accept, before any TLS work: ``max_conns``, ``max_conns_per_ip``, ``--allow/--deny``. A refused
  connection is closed at once and counted (one ``limit`` event per second per reason in a flood).
- TLS handshakes end within :data:`TLS_HANDSHAKE_TIMEOUT_S`.
- Every connection: ``max_duration_s`` (its lifetime) and ``idle_timeout_s`` (no byte either way),
  checked by one sweeper; an HTTP/2 connection gets a GOAWAY first, one with unsent data (a client
  that stopped reading) is aborted. The transport pauses its writers at ``high_water`` bytes queued
  and a connection holding more than ``max_write_buffer`` (control frames a non-reading client
  provoked) is cut: memory per connection is bounded.
- Per request: ``max_upload``, ``max_header_bytes``, HTTP/2 ``max_streams``.

Unsent data is kept to about 5 ms of each connection's rate, as the draft advises test servers:
TCP_NOTSENT_LOWAT bounds the kernel's unsent queue, the transport's high-water mark the queue before
it, and the writers write no more than that at once. Every :data:`ADAPT_S` of writing, a connection
sizes them from the bytes it wrote (:meth:`NqConn.adapt_unsent`), between :data:`UNSENT_FLOOR` and
``high_water`` (the kernel's part at most ``notsent_lowat``), starting at the floor: a fast
connection reaches the fixed sizes it would have had within its first sizing, and the answer to a
probe on a slow loaded connection waits behind milliseconds of data, not the hundreds of KiB those
fixed sizes hold (at 2 Mbit/s, 384 KiB is 1.5 s).

:func:`serving_responsiveness` runs a server in a background thread for tests and tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from netkit.core.limits import CidrFilter
from netkit.core.nq_config import WELL_KNOWN_PATH
from netkit.core.nq_server import (
    TLS_HANDSHAKE_TIMEOUT_S,
    ConnEnd,
    NqConnSummary,
    NqServerConfig,
    NqServeSummary,
    Route,
    base_url,
    empty_limits,
    url_host,
)
from netkit.core.responsiveness_algo import unsent_allowance
from netkit.core.serve_models import ServerEventSink, ms
from netkit.core.targets import format_host_port, format_sockaddr
from netkit.io.clock import wall_iso
from netkit.io.servers.listen import bind_failure

if TYPE_CHECKING:  # pragma: no cover
    from netkit.io.aio import StopSignal
    from netkit.io.servers.nq_http import H1Handler, H2Handler

TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)  # Linux's number where Python lacks the name
ADAPT_S = 0.05  # how often a writing connection sizes its unsent allowance from its rate
UNSENT_FLOOR = 4096  # the least a connection may hold unsent (a few packets: any slower is idle anyway)
STOP_GRACE_S = 1.0
CLOSE_GRACE_S = 1.0  # a connection closed by the server is aborted if it has not gone this long after
REFUSAL_EVENT_INTERVAL_S = 1.0
SWEEP_MAX_S = 0.5
TLS_SHUTDOWN_TIMEOUT_S = 2.0



class NqConn(asyncio.Protocol):
    """One connection: bookkeeping, limits and flow control; the HTTP is its handler's."""

    def __init__(self, server: ResponsivenessServer, admitted: NqConn | None = None) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.handler: H1Handler | H2Handler | None = None
        self.protocol = "-"
        self.tls = False
        self.paused = False
        self.reading_paused = False
        self.ending = False
        self.reason: ConnEnd | None = None
        self.error: str | None = None
        self.head = b""  # cleartext: the first bytes, until they show HTTP/2's preface or not
        self.bytes_in = 0
        self.bytes_out = 0
        #: Bytes this connection may hold written but unsent: its TCP_NOTSENT_LOWAT, its transport's
        #: high-water mark and the most a writer writes at once (see adapt_unsent).
        #: It starts at the floor and grows with the first sizing: a connection starting at the
        #: ceiling queues that much before it knows its rate, and a slow flow takes seconds to drain it.
        self.unsent_cap = min(UNSENT_FLOOR, server.config.high_water)
        self.requests = 0
        self.large = 0
        self.uploads = 0
        self.id = 0
        self.peer = "?"
        self.ip = ""
        self.opened = time.monotonic()
        self.active_at = self.opened
        self._rate_mark = (self.opened, 0)  # (when, bytes_out) the last sizing of unsent_cap began
        self.snap = -1
        self.reported = False
        self.handing_over = False
        self.sock: Any = None  # the TCP socket (over TLS, the duplicate the TLS transport runs on)
        self._abort_timer: asyncio.TimerHandle | None = None
        self._admitted = admitted  # the plain-TCP record this TLS connection continues

    # ----- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted is not None:  # the TLS transport of a connection admitted at accept
            self._continue(self._admitted, transport)  # type: ignore[arg-type]
            return
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if not self.server.admit(self, peer):
            self.ending = True
            transport.close()  # a clean FIN before any TLS work
            return
        sock = transport.get_extra_info("socket")
        self.sock = sock
        for level, opt, value in ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
                                  (socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT,
                                   min(self.unsent_cap, self.server.config.notsent_lowat))):
            try:
                sock.setsockopt(level, opt, value)
            except (OSError, AttributeError):
                pass
        if self.server.tls is not None:
            self.server.start_tls(self, transport)  # type: ignore[arg-type]
            return
        self._begin(transport, None)  # type: ignore[arg-type]

    def _continue(self, first: NqConn, transport: asyncio.Transport) -> None:
        """This protocol replaces ``first`` (the accepted plain connection) once TLS is up."""
        for name in ("id", "peer", "ip", "opened", "active_at", "bytes_in", "bytes_out", "_rate_mark"):
            setattr(self, name, getattr(first, name))
        self.server.replace(first, self)
        if first.reason is not None or self.server.stopping:  # ended (a cap, the stop) during the handshake
            self.ending = True
            transport.close()
            return
        self.tls = True
        self.sock = transport.get_extra_info("socket")  # the duplicate descriptor the TLS runs on
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        self._begin(transport, alpn or "http/1.1")

    def _begin(self, transport: asyncio.Transport, alpn: str | None) -> None:
        from netkit.io.servers.nq_http import H1Handler, H2Handler

        self.transport = transport
        transport.set_write_buffer_limits(high=self.unsent_cap, low=self.unsent_cap // 4)
        if alpn == "h2":
            self.protocol = "h2"
            self.handler = H2Handler(self)
        elif alpn is not None:
            self.protocol = "http/1.1"
            self.handler = H1Handler(self)
        # cleartext: the first bytes decide (data_received)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.ending:
            return
        h = self.handler
        if h is not None:
            h.data(data)
            return
        from netkit.io.servers.nq_http import H2_PREFACE, H1Handler, H2Handler

        self.head += data
        n = min(len(self.head), len(H2_PREFACE))
        if self.head[:n] != H2_PREFACE[:n]:
            self.protocol = "http/1.1"
            self.handler = H1Handler(self)
        elif n == len(H2_PREFACE):
            self.protocol = "h2c"
            self.handler = H2Handler(self)
        else:
            return  # a prefix of the preface: wait for more
        first, self.head = self.head, b""
        self.handler.data(first)

    def eof_received(self) -> bool:
        if self.handler is not None and not self.ending:
            self.handler.eof()
        return False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.handler is not None and not self.ending:
            self.adapt_unsent()
            self.handler.resume()

    def adapt_unsent(self) -> None:
        """Size the unsent allowance from the rate written since the last sizing (at most every
        ADAPT_S; called as the transport drains, which a connection held back by its rate does
        often and one that never fills it never needs)."""
        now = time.monotonic()
        since, written = self._rate_mark
        if now - since < ADAPT_S:
            return
        self._rate_mark = (now, self.bytes_out)
        cfg = self.server.config
        cap = unsent_allowance((self.bytes_out - written) * 8 / (now - since), floor=UNSENT_FLOOR,
                               ceiling=cfg.high_water, power_of_two=True)
        if cap == self.unsent_cap:
            return
        self.unsent_cap = cap
        if self.sock is not None:
            with contextlib.suppress(OSError, ValueError):
                self.sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, min(cap, cfg.notsent_lowat))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.set_write_buffer_limits(high=cap, low=cap // 4)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handing_over:
            return  # its TLS transport goes on (or the handshake task reports its failure)
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        if self.reason is None:
            if exc is None:
                self.reason = ConnEnd.EOF
            elif isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                self.reason = ConnEnd.RESET
            else:
                self.reason, self.error = ConnEnd.ERROR, f"{type(exc).__name__}: {exc}"
        self.ending = True
        self.server.lost(self)

    # ----- for the handlers ---------------------------------------------------------------------
    def write(self, data: bytes | memoryview) -> None:
        t = self.transport
        if t is None or self.ending:
            return
        t.write(data)
        self.bytes_out += len(data)
        if t.get_write_buffer_size() > self.server.config.max_write_buffer:
            self.server.limit_hit("write_buffer", self, self.server.config.max_write_buffer)
            self.end(ConnEnd.WRITE_BUFFER, abort=True)

    def closing(self) -> bool:
        t = self.transport
        return t is None or t.is_closing()

    def transport_write(self, data: memoryview) -> None:
        """The hot path (/large over HTTP/1.1): the transport's flow control bounds what it holds."""
        assert self.transport is not None
        self.transport.write(data)
        self.bytes_out += len(data)

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.ending:
            self.reading_paused = False
            self.transport.resume_reading()

    def request(self, r: Route) -> None:
        self.requests += 1
        if r is Route.LARGE:
            self.large += 1
        elif r is Route.UPLOAD:
            self.uploads += 1
        self.server.count_request(r)

    def end(self, reason: ConnEnd, error: str | None = None, *, abort: bool = False, goaway: bool = False) -> None:
        """Close this connection (once): flushed (aborted if that takes over CLOSE_GRACE_S), or at
        once with ``abort`` (data stuck unsent); ``goaway`` tells an HTTP/2 client first."""
        if self.ending and self.reason is not None:
            return
        self.reason = self.reason or reason
        self.error = self.error or error
        if goaway and self.handler is not None and not abort:
            self.handler.goaway()
        self.ending = True
        t = self.transport
        if t is None:
            return
        if abort:
            t.abort()
            return
        t.close()
        self._abort_timer = asyncio.get_running_loop().call_later(CLOSE_GRACE_S, t.abort)

    def summary(self) -> NqConnSummary:
        return NqConnSummary(
            id=self.id, peer=self.peer, protocol=self.protocol, tls=self.tls, requests=self.requests,
            bytes_in=self.bytes_in, bytes_out=self.bytes_out,
            duration_ms=round((time.monotonic() - self.opened) * 1000, 3),
            reason=(self.reason or ConnEnd.EOF).value, large=self.large, uploads=self.uploads, error=self.error,
        )


class ResponsivenessServer:
    """A running ``serve responsiveness``: start(), then wait for ``done`` or stop()."""

    def __init__(self, config: NqServerConfig, *, tls: ssl.SSLContext | None = None,
                 on_event: ServerEventSink | None = None, on_debug: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.tls = tls
        self.on_event = on_event
        self.on_debug = on_debug
        self.host = config.host
        self.port = config.port
        self.filter = CidrFilter(config.allow, config.deny)
        self.done = asyncio.Event()  # never set by itself: the server runs until stopped
        self.stopping = False
        self.conns: set[NqConn] = set()
        self.per_ip: dict[str, int] = {}
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self._next_id = 1
        self._total = 0
        self._peak = 0
        self._rx = 0
        self._tx = 0
        self._errors = 0
        self._requests = dict.fromkeys((r.value for r in Route), 0)
        self._protocols: dict[str, int] = {}
        self.upload_bytes = 0
        self._limits = empty_limits()
        self._limit_logged: dict[str, float] = {}
        self._start_ns = 0

    # ----- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        cfg = self.config
        try:
            self._server = await loop.create_server(lambda: NqConn(self), cfg.host, cfg.port, backlog=1024,
                                                    reuse_address=True)
        except OSError as exc:
            raise bind_failure(cfg.host, cfg.port, exc) from None
        name = self._server.sockets[0].getsockname()
        self.host, self.port = str(name[0]), int(name[1])
        self._start_ns = time.perf_counter_ns()
        self._sweeper = asyncio.ensure_future(self._sweep())
        self.emit("listening", host=self.host, port=self.port, config_url=self.config_url, tls=self.tls is not None)
        return self.host, self.port

    @property
    def address(self) -> str:
        return format_host_port(self.host, self.port)

    @property
    def config_url(self) -> str:
        return base_url(self.tls is not None, url_host(self.config, self.host, None), self.port) + WELL_KNOWN_PATH

    async def stop(self) -> None:
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._handshakes):
            task.cancel()
        if self._server is not None:
            self._server.close()
        for c in list(self.conns):
            c.end(ConnEnd.SERVER_STOP, goaway=True)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.conns and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.abort()
        await asyncio.sleep(0)
        for c in list(self.conns):  # never reported lost: account for them anyway
            self.lost(c)

    def summary(self, stopped_by: str | None = None) -> NqServeSummary:
        open_in = sum(c.bytes_in for c in self.conns)
        open_out = sum(c.bytes_out for c in self.conns)
        return NqServeSummary(
            host=self.host, port=self.port, tls=self.tls is not None, config_url=self.config_url,
            connections=self._total, peak_concurrent=self._peak, requests=dict(self._requests),
            protocols=dict(self._protocols), bytes_in=self._rx + open_in, bytes_out=self._tx + open_out,
            errors=self._errors, limits_hit=dict(self._limits),
            elapsed_ms=ms(time.perf_counter_ns() - self._start_ns) if self._start_ns else 0.0, stopped_by=stopped_by,
        )

    # ----- connections --------------------------------------------------------------------------
    def admit(self, conn: NqConn, peer: Any) -> bool:
        cfg = self.config
        ip = str(peer[0]) if isinstance(peer, tuple) else ""
        text = format_sockaddr(peer)
        if self.stopping:
            return False
        if cfg.max_conns is not None and len(self.conns) >= cfg.max_conns:
            self.limit_hit("max_conns", None, cfg.max_conns, peer=text)
            return False
        if cfg.max_conns_per_ip is not None and self.per_ip.get(ip, 0) >= cfg.max_conns_per_ip:
            self.limit_hit("max_conns_per_ip", None, cfg.max_conns_per_ip, peer=text)
            return False
        if self.filter.active and not self.filter.permits(ip):
            self.limit_hit("denied", None, None, peer=text)
            return False
        conn.id = self._next_id
        self._next_id += 1
        conn.peer, conn.ip = text, ip
        self._total += 1
        self.conns.add(conn)
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        self._peak = max(self._peak, len(self.conns))
        return True

    def replace(self, old: NqConn, new: NqConn) -> None:
        if old in self.conns:
            self.conns.discard(old)
            self.conns.add(new)
        old.reported = True  # the TLS connection reports for both

    def lost(self, conn: NqConn) -> None:
        if conn.reported or conn.id == 0:
            return
        conn.reported = True
        if conn in self.conns:
            self.conns.discard(conn)
            left = self.per_ip.get(conn.ip, 1) - 1
            if left > 0:
                self.per_ip[conn.ip] = left
            else:
                self.per_ip.pop(conn.ip, None)
        self._rx += conn.bytes_in
        self._tx += conn.bytes_out
        if conn.protocol != "-":
            self._protocols[conn.protocol] = self._protocols.get(conn.protocol, 0) + 1
        if conn.reason in (ConnEnd.PROTOCOL, ConnEnd.ERROR, ConnEnd.TLS_HANDSHAKE):
            self._errors += 1
            if self.on_debug is not None and conn.error:
                self.on_debug(f"connection {conn.id} {conn.peer}: {conn.error}")
        s = conn.summary()
        self.emit("close", **{k: v for k, v in s.__dict__.items() if v is not None})

    def count_request(self, r: Route) -> None:
        self._requests[r.value] += 1

    def uploaded(self, n: int) -> None:
        """Upload body bytes read and dropped (the part of bytes_in that /upload took)."""
        self.upload_bytes += n

    def limit_hit(self, which: str, conn: NqConn | None, value: float | None, *, peer: str | None = None) -> None:
        count = self._limits[which] = self._limits.get(which, 0) + 1
        if conn is None:  # a refusal at accept: a flood logs one event per second per reason
            now = time.monotonic()
            if now - self._limit_logged.get(which, -1e9) < REFUSAL_EVENT_INTERVAL_S:
                return
            self._limit_logged[which] = now
        self.emit("limit", limit=which, id=conn.id if conn is not None else None,
                  peer=conn.peer if conn is not None else peer, value=value, count=count)

    def emit(self, event: str, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event({"event": event, "time": wall_iso(), **{k: v for k, v in fields.items() if v is not None}})

    # ----- TLS ----------------------------------------------------------------------------------
    def start_tls(self, conn: NqConn, raw: asyncio.Transport) -> None:
        """Hand an admitted connection's socket to a TLS transport (handshake bounded in time).

        The plain transport is dropped inside ``connection_made``, before the loop has read a byte:
        the ClientHello stays in the kernel for the TLS transport made from a duplicate descriptor.
        """
        sock = raw.get_extra_info("socket")
        try:
            dup = socket.socket(fileno=os.dup(sock.fileno()))
        except (AttributeError, OSError, ValueError) as exc:
            conn.end(ConnEnd.ERROR, f"cannot start TLS: {exc}", abort=True)
            return
        raw.abort()  # closes the loop's descriptor only; the connection lives on in ``dup``
        conn.handing_over = True  # the plain protocol's own connection_lost must not report it
        task = asyncio.ensure_future(self._handshake(dup, conn))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, dup: socket.socket, conn: NqConn) -> None:
        assert self.tls is not None
        loop = asyncio.get_running_loop()
        shutdown: dict[str, Any] = {"ssl_shutdown_timeout": TLS_SHUTDOWN_TIMEOUT_S} \
            if sys.version_info >= (3, 11) or type(loop).__module__.startswith("uvloop") else {}
        try:
            await loop.connect_accepted_socket(lambda: NqConn(self, conn), dup, ssl=self.tls,
                                               ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S, **shutdown)
        except asyncio.CancelledError:
            dup.close()
            conn.reason = ConnEnd.SERVER_STOP
            self.lost(conn)
            raise
        except Exception as exc:  # a failed or timed-out handshake: counted, closed
            dup.close()
            if conn not in self.conns:
                return
            from netkit.io.tls import tls_error_message

            conn.reason = ConnEnd.TLS_HANDSHAKE
            conn.error = f"TLS handshake not done within {TLS_HANDSHAKE_TIMEOUT_S:g}s" \
                if isinstance(exc, TimeoutError) or "longer than" in str(exc) else tls_error_message(exc)
            self.lost(conn)

    # ----- the sweeper --------------------------------------------------------------------------
    async def _sweep(self) -> None:
        """Lifetime and idle caps: one pass every quarter of the shorter one (at most every 0.5 s)."""
        cfg = self.config
        caps = [c for c in (cfg.max_duration_s, cfg.idle_timeout_s) if c]
        interval = min([SWEEP_MAX_S, *(c / 4 for c in caps)])
        while True:
            await asyncio.sleep(max(interval, 0.02))
            now = time.monotonic()
            for c in list(self.conns):
                if c.ending or c.handing_over or c.transport is None:
                    continue  # (a TLS handshake has its own bound)
                total = c.bytes_in + c.bytes_out
                if total != c.snap:
                    c.snap = total
                    c.active_at = now
                if cfg.max_duration_s and now - c.opened >= cfg.max_duration_s:
                    self.limit_hit("max_duration", c, cfg.max_duration_s)
                    c.end(ConnEnd.MAX_DURATION, goaway=True)
                elif cfg.idle_timeout_s and now - c.active_at >= cfg.idle_timeout_s:
                    self.limit_hit("idle_timeout", c, cfg.idle_timeout_s)
                    # Data still queued after a quiet spell: the client stopped reading, nothing
                    # would flush (not even a GOAWAY): cut it.
                    c.end(ConnEnd.IDLE_TIMEOUT, goaway=True, abort=c.transport.get_write_buffer_size() > 0)


def server_tls(config: NqServerConfig, on_tls: Callable[[bool, str, str | None], None] | None = None,
               ) -> ssl.SSLContext | None:
    """The TLS context (ALPN h2 and http/1.1), or None for ``tls=False``; ``on_tls(ephemeral,
    fingerprint, cert_path)`` names the certificate a client may trust."""
    if not config.tls:
        return None
    from netkit.io.tls import server_context

    st = server_context(config.tls_cert, config.tls_key, host=config.host, keep_cert_at=config.cert_out)
    st.context.set_alpn_protocols(["h2", "http/1.1"])
    if on_tls is not None:
        on_tls(st.ephemeral, st.fingerprint_sha256, str(st.cert_path) if st.cert_path is not None else None)
    return st.context


async def serve_responsiveness(
    config: NqServerConfig,
    *,
    tls: ssl.SSLContext | None = None,
    on_event: ServerEventSink | None = None,
    on_ready: Callable[[ResponsivenessServer], None] | None = None,
    on_debug: Callable[[str], None] | None = None,
    on_tls: Callable[[bool, str, str | None], None] | None = None,
    stop: StopSignal | None = None,
    on_stop: Callable[[StopSignal], None] | None = None,
) -> NqServeSummary:
    """Serve until ``stop`` fires (SIGINT/SIGTERM when None)."""
    from netkit.io.servers.tcp_server import raise_nofile_limit, run_until_stopped

    if tls is None:
        tls = server_tls(config, on_tls)
    raise_nofile_limit((config.max_conns or 65536) + 64)
    server = ResponsivenessServer(config, tls=tls, on_event=on_event, on_debug=on_debug)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def quiet(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, (OSError, ssl.SSLError, asyncio.CancelledError)):
            return  # resets and failed TLS closes are counted per connection, not printed
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(quiet)
    return server.summary(await run_until_stopped(server, stop=stop, on_ready=on_ready, on_stop=on_stop))


def serve_responsiveness_sync(config: NqServerConfig, **kwargs: Any) -> NqServeSummary:
    """Blocking twin of :func:`serve_responsiveness` (until SIGINT/SIGTERM)."""
    from netkit.io.aio import run

    return run(serve_responsiveness(config, **kwargs))


# ----- in-process, for tests and tools ------------------------------------------------------------

@dataclass
class ServingHandle:
    """A server running in a background thread (:func:`serving_responsiveness`)."""

    host: str
    port: int
    config_url: str  # https://127.0.0.1:PORT/.well-known/nq
    cafile: str | None  # the certificate to trust (the ephemeral one, written to a temporary file)
    fingerprint: str | None
    events: list[dict[str, Any]]
    summary: NqServeSummary | None = None

    @property
    def base_url(self) -> str:
        return self.config_url[: -len(WELL_KNOWN_PATH)]


@contextlib.contextmanager
def serving_responsiveness(config: NqServerConfig | None = None, *, ready_timeout: float = 10.0,
                           ) -> Iterator[ServingHandle]:
    """Run ``netkit serve responsiveness`` in a background thread (its own loop) while the block runs::

        with serving_responsiveness(NqServerConfig(port=0)) as srv:
            fetch(srv.config_url, cafile=srv.cafile)

    The port defaults to one the kernel picks; ``srv.summary`` is filled in when the block ends and
    the server has stopped. ``srv.events`` collects its events (``close``, ``limit``) as they happen.
    """
    from netkit.io.aio import StopSignal, run

    cfg = config or NqServerConfig(port=0)
    tmp = tempfile.TemporaryDirectory(prefix="netkit-nq-")
    if cfg.tls and cfg.tls_cert is None and cfg.cert_out is None:
        cfg = replace(cfg, cert_out=os.path.join(tmp.name, "cert.pem"))
    events: list[dict[str, Any]] = []
    ready = threading.Event()
    state: dict[str, Any] = {}

    def on_tls(ephemeral: bool, fp: str, path: str | None) -> None:
        state["fp"], state["cafile"] = fp, path

    async def main() -> NqServeSummary:
        stop = StopSignal(signals=())
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop

        def on_ready(srv: ResponsivenessServer) -> None:
            state["server"] = srv
            ready.set()

        return await serve_responsiveness(cfg, on_event=events.append, on_ready=on_ready, on_tls=on_tls, stop=stop)

    def target() -> None:
        try:
            state["summary"] = run(main())
        except BaseException as exc:  # handed to the caller's thread
            state["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="netkit-serve-responsiveness", daemon=True)
    thread.start()
    try:
        if not ready.wait(ready_timeout) or "error" in state:
            raise state.get("error") or RuntimeError("serve responsiveness did not start")
        srv: ResponsivenessServer = state["server"]
        handle = ServingHandle(host=srv.host, port=srv.port, config_url=srv.config_url,
                               cafile=state.get("cafile"), fingerprint=state.get("fp"), events=events)
        try:
            yield handle
        finally:
            loop: asyncio.AbstractEventLoop = state["loop"]
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(state["stop"].set)
            thread.join(timeout=STOP_GRACE_S * 3 + 5)
            handle.summary = state.get("summary")
    finally:
        tmp.cleanup()


__all__ = ["NqConn", "ResponsivenessServer", "ServingHandle", "serve_responsiveness", "serve_responsiveness_sync",
           "server_tls", "serving_responsiveness"]
