"""The gate in front of measurement sessions on a keyed or limited ``netkit serve tcp``.

With a guard on the server (``--key``, ``--max-sessions``, ``--max-duration``...), a connection that
opens with the session header goes through :class:`KeyGate` first: it reads the whole header (and,
keyed, its 32-byte trailer), checks the key and the session limit, strips the trailer and then
starts the session with a :class:`GatedSessionHost`, which frees the ``--max-sessions`` slot when
the connection closes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netkit.core import keyed
from netkit.core import session_header as sh
from netkit.core.serve_models import CloseReason
from netkit.io.servers.session_host import ConnRecord, SessionHost

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.serve_models import TcpServerConfig
    from netkit.io.servers.server_guard import Guard
    from netkit.io.servers.throughput_session import SinkPool

#: Starts the session a header asks for (``netkit.io.servers.tcp_sessions.start_session``).
StartSession = Callable[[asyncio.Transport, bytes, SessionHost], asyncio.BaseProtocol]

GATE_WAIT_S = 5.0  # a client that never completes its (keyed) header is closed after this
_FLAGS_AT = 10  # magic(5) version kind direction stream_id(2): then flags u16


class GatedSessionHost:
    """The server as a session behind the gate sees it: the same server, except that ``closed``
    also frees the session's ``--max-sessions`` slot (once)."""

    def __init__(self, server: SessionHost, guard: Guard) -> None:
        self._server = server
        self._guard = guard
        self._freed = False

    @property
    def config(self) -> TcpServerConfig:
        return self._server.config

    @property
    def guard(self) -> Guard:
        return self._guard

    @property
    def sink_pool(self) -> SinkPool | None:
        return self._server.sink_pool

    @property
    def stopping(self) -> bool:
        return self._server.stopping

    def record(self, transport: asyncio.BaseTransport) -> ConnRecord | None:
        return self._server.record(transport)

    def add_bytes(self, transport: asyncio.BaseTransport, bytes_in: int = 0, bytes_out: int = 0) -> bool:
        return self._server.add_bytes(transport, bytes_in=bytes_in, bytes_out=bytes_out)

    def emit(self, event: str, **fields: Any) -> None:
        self._server.emit(event, **fields)

    def error(self, message: str) -> None:
        self._server.error(message)

    def hit_limit(self, rec: ConnRecord, which: str) -> None:
        self._server.hit_limit(rec, which)

    def closed(self, transport: asyncio.BaseTransport, reason: CloseReason = CloseReason.EOF,
               error: str | None = None) -> None:
        if not self._freed:
            self._freed = True
            self._guard.session_closed()
        self._server.closed(transport, reason, error)


class KeyGate(asyncio.Protocol):
    """Reads the header (and, keyed, its 32-byte trailer) before any session sees a byte.

    Wrong, missing or replayed keys: the connection is closed without an answer (a stranger
    learns nothing) and counted as ``rejected_by_key``. Over ``--max-sessions``: the client gets
    an ack with ``STATUS_REFUSED`` and the connection closes (counted as ``over_limit``).
    A throughput session's length is capped at ``--max-duration`` (the session's own timer).
    """

    def __init__(self, transport: asyncio.Transport, server: SessionHost, guard: Guard,
                 start: StartSession) -> None:
        self.transport = transport
        self.server = server
        self.guard = guard
        self.start = start
        self.buf = b""
        self.done = False
        self.timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(GATE_WAIT_S, self._timeout)

    def _peer(self) -> tuple[str, int] | str:
        return self.transport.get_extra_info("peername") or "?"

    def data_received(self, data: bytes) -> None:
        if self.done or not data:
            return
        self.buf += data
        if len(self.buf) < sh.HEADER_LEN:
            return
        now = time.perf_counter_ns()
        head = self.buf[: sh.HEADER_LEN]
        flags = int.from_bytes(head[_FLAGS_AT:_FLAGS_AT + 2], "big")
        trailer = None
        rest = self.buf[sh.HEADER_LEN:]
        if flags & keyed.FLAG_KEYED:
            if len(rest) < keyed.HEADER_TRAILER_LEN:
                return
            trailer, rest = rest[: keyed.HEADER_TRAILER_LEN], rest[keyed.HEADER_TRAILER_LEN:]
        self._finish()
        self.server.add_bytes(self.transport, bytes_in=len(self.buf) - len(head) - len(rest))
        if not self.guard.check_header(head, trailer, self._peer(), now):
            self.server.error("session header rejected: wrong or missing key")
            self.transport.close()
            return
        if not self.guard.session_opened(self._peer(), now):
            self.transport.write(sh.encode_ack(sh.Ack(sh.STATUS_REFUSED)))
            self.transport.close()
            return
        try:
            self.start(self.transport, head + rest, GatedSessionHost(self.server, self.guard))
        except Exception:
            self.guard.session_closed()
            raise

    def _finish(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timeout(self) -> None:
        self.timer = None
        if not self.done:
            self.done = True
            self.guard.reject("rejected_by_key" if self.guard.key is not None else "over_limit",
                              "header-timeout", self._peer(), time.perf_counter_ns())
            self.transport.close()

    def eof_received(self) -> bool:
        if not self.done:
            self._finish()
            self.transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()
        self.server.closed(self.transport, CloseReason.EOF if exc is None else CloseReason.RESET)
