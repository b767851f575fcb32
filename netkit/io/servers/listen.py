"""Binding a server's socket, and the one message when that fails.

``netkit: cannot listen on 127.0.0.1:8000: address already in use`` (exit 3) for TCP and UDP
alike: the reason comes from the errno, never from the event loop's own wording (asyncio's
names the address as a Python tuple, uvloop's UDP one names no reason at all).
"""

from __future__ import annotations

import errno as _errno
import os
import socket

from netkit.core.errors import RuntimeFailure
from netkit.core.targets import format_host_port

#: Reasons people read better than the C library's wording.
_REASONS = {
    _errno.EADDRINUSE: "address already in use",
    _errno.EADDRNOTAVAIL: "address not available on this host",
    _errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def bind_failure(host: str, port: int, exc: OSError) -> RuntimeFailure:
    """The one-line failure for a socket that could not be bound on ``host:port``."""
    where = format_host_port(host, port)
    if isinstance(exc, socket.gaierror):
        return RuntimeFailure(f"cannot listen on {where}: cannot resolve {host}: {exc.strerror or exc}")
    if exc.errno is not None:
        reason = _REASONS.get(exc.errno) or os.strerror(exc.errno)
        reason = reason[:1].lower() + reason[1:]
    else:
        reason = exc.strerror or str(exc)
    return RuntimeFailure(f"cannot listen on {where}: {reason}")


def bound_udp_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``host:port``; a failure raises :func:`bind_failure`'s error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise bind_failure(host, port, exc) from None
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise bind_failure(host, port, exc) from None
    return sock
