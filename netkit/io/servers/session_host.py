"""What ``netkit serve tcp`` offers the measurement sessions it hands connections to.

A session (throughput, request/response) takes over a connection's transport after the first
bytes were sniffed, and talks back to the server only through :class:`SessionHost`:
:class:`netkit.io.servers.tcp_server.TcpServer` is one, and
:class:`netkit.io.servers.key_gate.GatedSessionHost` (a keyed or limited server) is another that
also frees the session's ``--max-sessions`` slot when the connection closes.

The server keeps tracking a connection after its hand-over: the idle timeout (fed by
``add_bytes``) and the shutdown (``transport.close()`` for every open connection) still apply.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from netkit.core.serve_models import CloseReason

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.serve_models import TcpServerConfig
    from netkit.io.servers.server_guard import Guard
    from netkit.io.servers.throughput_session import SinkPool


class ConnRecord:
    """Per-connection counters of an accepted connection. Plain attributes: updated on every read.

    The server creates it when the connection is accepted (before the session header is sniffed),
    so a session never "opens" a connection.
    """

    __slots__ = ("_active_ns", "_snap", "bytes_in", "bytes_out", "closed", "id", "opened_ns", "peer",
                 "reason", "session", "transport")

    def __init__(self, conn_id: int, peer: str, opened_ns: int, transport: asyncio.Transport) -> None:
        self.id = conn_id
        self.peer = peer  # "host:port", IPv6 bracketed
        self.opened_ns = opened_ns
        self.transport = transport
        self.bytes_in = 0
        self.bytes_out = 0
        self.closed = False
        self.session = False
        self.reason: CloseReason | None = None  # set by whoever decides to close (limits, stop)
        self._snap = 0
        self._active_ns = opened_ns


class SessionHost(Protocol):
    """The server as a session sees it."""

    @property
    def config(self) -> TcpServerConfig:
        """The server's frozen configuration: ``max_bytes``, ``max_request``, ``high_water``..."""

    @property
    def guard(self) -> Guard | None:
        """Keys and limits (``--key``, ``--max-sessions``, ``--max-duration``), or None."""

    @property
    def sink_pool(self) -> SinkPool | None:
        """Receive threads shared by plain-TCP throughput sinks."""

    @property
    def stopping(self) -> bool:
        """True once the server is shutting down: sessions stop producing data."""

    def record(self, transport: asyncio.BaseTransport) -> ConnRecord | None:
        """The bookkeeping record of an accepted connection (None once it was closed)."""

    def add_bytes(self, transport: asyncio.BaseTransport, bytes_in: int = 0, bytes_out: int = 0) -> bool:
        """Count bytes on that connection (summary, close event, idle timer).

        False when the connection is now over ``--max-bytes``: the server has counted and logged
        the limit; the caller closes the transport.
        """

    def emit(self, event: str, **fields: Any) -> None:
        """One event for ``--format jsonl``: ``{"event": event, "time": ISO-8601, **fields}`` (JSON values)."""

    def closed(self, transport: asyncio.BaseTransport, reason: CloseReason = CloseReason.EOF,
               error: str | None = None) -> None:
        """Close bookkeeping, from the session's ``connection_lost``: the ``close`` event, once."""

    def error(self, message: str) -> None:
        """Count an error in the summary and show it at ``-v``."""

    def hit_limit(self, rec: ConnRecord, which: str) -> None:
        """A limit (``max_bytes``, ``max_request``, ``amplification``) ends this connection: count and log it."""
