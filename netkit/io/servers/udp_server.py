"""``netkit serve udp``: show each datagram, or reflect it through ``netkit.io.servers.reflector``.

In ``show`` mode every datagram becomes a ``datagram`` event (time, peer, size, escaped
preview) and nothing is answered. In ``echo`` mode the socket loop is ``reflector_server.ReflectorServer``
(it drains the socket per wake-up, far faster than a callback per datagram): each datagram
goes to ``Reflector.reflect(data, addr, recv_ns)`` (``recv_ns`` is ``time.perf_counter_ns()``
at receipt) and the returned bytes, unless None and unless ReflectorServer's reply policy
refuses them, go back to the sender. A thin wrapper counts datagrams, bytes and senders for the
summary, which also carries the reflector's ``stats`` and why datagrams were not answered;
``datagrams_out``/``bytes_out`` are what the kernel accepted.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netkit.core.escape import safe_text
from netkit.core.serve_models import ServerEventSink, UdpMode, UdpServerConfig, UdpServeSummary, ms
from netkit.core.targets import format_host_port
from netkit.io.clock import wall_iso
from netkit.io.servers.listen import bind_failure, bound_udp_socket
from netkit.io.servers.reflector import Reflecting

if TYPE_CHECKING:  # pragma: no cover
    from netkit.io.aio import StopSignal


class UdpServer(asyncio.DatagramProtocol):
    """A bound UDP endpoint that counts, shows or reflects what arrives."""

    def __init__(
        self,
        config: UdpServerConfig,
        *,
        on_event: ServerEventSink | None = None,
        on_debug: Callable[[str], None] | None = None,
        reflector: Reflecting | None = None,
    ) -> None:
        self.config = config
        self.mode = UdpMode(config.mode)
        self.on_event = on_event
        self.on_debug = on_debug
        self.host, self.port = config.host, config.port
        self.transport: asyncio.DatagramTransport | None = None
        self.datagrams = 0
        self.bytes_in = 0
        self.datagrams_out = 0
        self.bytes_out = 0
        self.errors = 0
        self.senders: set[Any] = set()
        self.senders_overflow = 0
        self._start_ns = 0
        self._rserver: Any = None
        self._not_answered: dict[str, int] = {}
        self.reflector = reflector
        if self.mode is UdpMode.ECHO and reflector is None:
            from netkit.io.servers.reflector import Reflector

            self.reflector = Reflector()

    # ----- DatagramProtocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _count_sender(self, addr: Any) -> None:
        key = addr[:2] if isinstance(addr, tuple) else addr
        if key not in self.senders:
            if len(self.senders) < self.config.max_senders:
                self.senders.add(key)
            else:
                self.senders_overflow += 1

    def reflect(self, data: bytes, addr: Any, recv_ns: int) -> bytes | None:
        """The counting wrapper ReflectorServer calls instead of the reflector itself.

        Replies are counted by ReflectorServer once the kernel took them, not here.
        """
        self.datagrams += 1
        self.bytes_in += len(data)
        self._count_sender(addr)
        try:
            assert self.reflector is not None  # echo mode always has one
            return self.reflector.reflect(data, addr, recv_ns)
        except Exception as exc:  # a reflector bug is an error count, not a crash
            self._error(f"reflector: {type(exc).__name__}: {exc}")
            return None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        # show mode: count and show, never answer (echo mode runs ReflectorServer's own loop)
        self.datagrams += 1
        self.bytes_in += len(data)
        self._count_sender(addr)
        if self.on_event is not None:
            self.on_event({
                "event": "datagram", "time": wall_iso(),
                "peer": format_host_port(str(addr[0]), int(addr[1])) if isinstance(addr, tuple) else str(addr),
                "size": len(data), "preview": safe_text(data, limit=self.config.preview),
            })

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for an earlier reply (the sender went away): count it.
        self._error(f"{type(exc).__name__}: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def _error(self, message: str) -> None:
        self.errors += 1
        if self.on_debug is not None:
            self.on_debug(message)

    # ----- lifecycle ----------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        if self.mode is UdpMode.ECHO:
            return self._start_reflector()
        sock = bound_udp_socket(self.config.host, self.config.port)
        try:
            await loop.create_datagram_endpoint(lambda: self, sock=sock)
        except OSError as exc:
            sock.close()
            raise bind_failure(self.config.host, self.config.port, exc) from None
        assert self.transport is not None
        name = self.transport.get_extra_info("sockname")
        self.host, self.port = str(name[0]), int(name[1])
        self._start_ns = time.perf_counter_ns()
        if self.on_event is not None:
            self.on_event({"event": "listening", "time": wall_iso(), "host": self.host, "port": self.port})
        return self.host, self.port

    def _start_reflector(self) -> tuple[str, int]:
        from netkit.io.servers.reflector_server import ReflectorServer

        try:
            self._rserver = ReflectorServer(self.config.host, self.config.port, reflector=self)
        except OSError as exc:
            raise bind_failure(self.config.host, self.config.port, exc) from None
        self._rserver.start()
        self.host, self.port = self._rserver.address
        self._start_ns = time.perf_counter_ns()
        if self.on_event is not None:
            self.on_event({"event": "listening", "time": wall_iso(), "host": self.host, "port": self.port})
        return self.host, self.port

    @property
    def address(self) -> str:
        return format_host_port(self.host, self.port)

    def _take_counts(self, rs: Any) -> None:
        """Echo mode: datagrams in (refused ones too) and out as ReflectorServer counted them."""
        self.datagrams, self.bytes_in = rs.datagrams_in, rs.bytes_in
        self.datagrams_out, self.bytes_out = rs.datagrams_out, rs.bytes_out
        self._not_answered = rs.not_answered

    def stop(self) -> None:
        if self._rserver is not None:
            rs = self._rserver
            self._take_counts(rs)
            self.errors += rs.send_errors
            rs.close()
            self._rserver = None
        if self.transport is not None:
            self.transport.close()

    def summary(self, stopped_by: str | None = None) -> UdpServeSummary:
        stats = getattr(self.reflector, "stats", None) if self.reflector is not None else None
        if self._rserver is not None:  # still serving: the live counts
            self._take_counts(self._rserver)
        if stats or self._not_answered:
            stats = {**(stats or {}), **self._not_answered}
        return UdpServeSummary(
            host=self.host, port=self.port, mode=self.mode.value, datagrams=self.datagrams,
            bytes_in=self.bytes_in, datagrams_out=self.datagrams_out, bytes_out=self.bytes_out,
            senders=len(self.senders) + self.senders_overflow, errors=self.errors,
            reflector=dict(stats) if stats else {},
            elapsed_ms=ms(time.perf_counter_ns() - self._start_ns) if self._start_ns else 0.0,
            stopped_by=stopped_by,
        )


async def serve_udp(
    config: UdpServerConfig,
    *,
    on_event: ServerEventSink | None = None,
    on_ready: Callable[[UdpServer], None] | None = None,
    on_debug: Callable[[str], None] | None = None,
    stop: StopSignal | None = None,
    reflector: Reflecting | None = None,
    on_stop: Callable[[StopSignal], None] | None = None,
) -> UdpServeSummary:
    """Serve until ``stop`` (a :class:`netkit.io.aio.StopSignal`) fires; return the summary.

    In echo mode with a key or limits (``config.key``, ``config.limits``) the reflector sits behind
    a guard: key, limits, and never a reply larger than its request (a forged source cannot use
    the server to amplify a flood). ``reflector`` replaces the reflector altogether.

    ``on_stop`` is handed the stop event once it exists (see :func:`netkit.io.servers.tcp_server.serve_tcp`).
    """
    from netkit.io.aio import StopSignal

    if reflector is None and UdpMode(config.mode) is UdpMode.ECHO:
        from netkit.io.servers.server_guard import guard_for

        guard = guard_for(config.key, config.limits, on_event)
        if guard is not None:
            from netkit.io.servers.server_guard import guarded_reflector

            reflector = guarded_reflector(guard)
    server = UdpServer(config, on_event=on_event, on_debug=on_debug, reflector=reflector)
    own = stop is None
    cm = StopSignal() if own else None
    if cm is not None:
        stop = await cm.__aenter__()
    assert stop is not None
    if on_stop is not None:
        on_stop(stop)
    try:
        await server.start()
        if on_ready is not None:
            on_ready(server)
        await stop.wait()
        stopped_by = signal.Signals(stop.signum).name if stop.signum else "stop"
    finally:
        server.stop()
        if cm is not None:
            await cm.__aexit__(None, None, None)
    return server.summary(stopped_by)


def serve_udp_sync(config: UdpServerConfig, **kwargs: Any) -> UdpServeSummary:
    """Blocking twin of :func:`serve_udp` (until SIGINT/SIGTERM)."""
    from netkit.io.aio import run

    return run(serve_udp(config, **kwargs))
