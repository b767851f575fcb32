"""Measurement sessions on ``netkit serve tcp``: the one place a session is chosen.

The server (``netkit.io.servers.tcp_server``) calls :func:`netkit.core.session_header.sniff` on
the first bytes of every connection; when they open with the session magic it calls
``open_session(transport, first_bytes, server)`` and stops touching the transport.

- ``open_session``: with a guard on the server (``--key``, ``--max-sessions``...) the connection
  first goes through :class:`netkit.io.servers.key_gate.KeyGate`, which checks the header and then
  calls :func:`start_session` itself; without one, :func:`start_session` at once.
- ``start_session``: the header's kind byte picks the session (the table in :func:`_session_for`):
  throughput (:mod:`netkit.io.servers.throughput_session`) or request/response
  (:mod:`netkit.io.servers.request_session`, ``measure requests --netkit-header``); an unknown kind
  is answered ``STATUS_UNSUPPORTED`` and closed. Until the kind byte has arrived the connection
  waits in :class:`_KindWait`.

Every session talks to the server through :class:`netkit.io.servers.session_host.SessionHost`.
"""

from __future__ import annotations

import asyncio

from netkit.core import session_header as sh
from netkit.core.serve_models import close_reason
from netkit.core.session_header import MAGIC, MAGIC_LEN, sniff
from netkit.io.servers.key_gate import KeyGate
from netkit.io.servers.session_host import SessionHost
from netkit.io.servers.throughput_session import SinkPool, ThroughputSession, sink_lowat

__all__ = ["MAGIC", "MAGIC_LEN", "SinkPool", "open_session", "sink_lowat", "sniff", "start_session"]


def open_session(transport: asyncio.Transport, first_bytes: bytes, server: SessionHost) -> asyncio.BaseProtocol:
    """Take over ``transport`` (see module docstring) and return the protocol now in charge."""
    guard = server.guard
    if guard is not None:
        gate = KeyGate(transport, server, guard, start_session)
        transport.set_protocol(gate)
        gate.data_received(first_bytes)
        return gate
    return start_session(transport, first_bytes, server)


def start_session(transport: asyncio.Transport, head: bytes, host: SessionHost) -> asyncio.BaseProtocol:
    """Hand the connection to the session its header's kind asks for (waiting for that byte if need be)."""
    kind = sh.session_kind(head)
    if kind is None:
        wait = _KindWait(transport, host, head)
        transport.set_protocol(wait)
        return wait
    return _session_for(kind, transport, head, host)


def _session_for(kind: int, transport: asyncio.Transport, head: bytes, host: SessionHost) -> asyncio.BaseProtocol:
    from netkit.io.servers import request_session

    if kind == sh.KIND_THROUGHPUT:
        proto = ThroughputSession(transport, host)
        transport.set_protocol(proto)
        proto.feed(head)
        return proto
    if request_session.wants(head):
        return request_session.open_session(transport, head, host)  # counts the bytes itself
    host.add_bytes(transport, bytes_in=len(head))
    host.error(f"unsupported session kind {kind}")
    transport.write(sh.encode_ack(sh.Ack(sh.STATUS_UNSUPPORTED)))
    transport.close()
    return transport.get_protocol()


class _KindWait(asyncio.Protocol):
    """Holds the first bytes of a session until its kind byte arrives (a client may send the
    header in pieces), then starts the session with all of them."""

    def __init__(self, transport: asyncio.Transport, host: SessionHost, head: bytes) -> None:
        self.transport = transport
        self.host = host
        self.head = head

    def data_received(self, data: bytes) -> None:
        self.head += data
        kind = sh.session_kind(self.head)
        if kind is not None:
            _session_for(kind, self.transport, self.head, self.host)

    def eof_received(self) -> bool:
        self.transport.close()  # EOF before the kind: nothing to serve
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.host.add_bytes(self.transport, bytes_in=len(self.head))
        self.host.closed(self.transport, *close_reason(exc))
