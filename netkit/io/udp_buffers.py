"""UDP socket buffers: ask for room for bursts, and read what the kernel dropped for lack of it.

A meter that overflows its own receive buffer must not report those datagrams as lost on the
network: ``socket_drops`` reads the socket's own drop counter so callers report it apart.
"""

from __future__ import annotations

import os
import socket
import sys

from netkit.core.procnet import udp_socket_drops

BUFFER_BYTES = 16 * 1024 * 1024  # ~20k small datagrams: rides out 0.2 s of not being scheduled at 100k pps

_LINUX = sys.platform.startswith("linux")
#: Python's socket module does not export these; the Linux values (asm-generic/socket.h).
SO_SNDBUFFORCE: int | None = getattr(socket, "SO_SNDBUFFORCE", 32 if _LINUX else None)
SO_RCVBUFFORCE: int | None = getattr(socket, "SO_RCVBUFFORCE", 33 if _LINUX else None)


def tune_buffers(sock: socket.socket, size: int = BUFFER_BYTES) -> None:
    """Ask for large socket buffers (bursts at high rates).

    The FORCE variants pass ``net.core.rmem_max``/``wmem_max`` and work with CAP_NET_ADMIN
    (root); otherwise the plain options give what those limits allow.
    """
    for opt, force in ((socket.SO_RCVBUF, SO_RCVBUFFORCE), (socket.SO_SNDBUF, SO_SNDBUFFORCE)):
        done = False
        if force is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, size)
                done = True
            except OSError:
                pass
        if not done:
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
            except OSError:
                pass


def socket_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped on this socket's receive side so far; None where unknown.

    Read from the socket's row in ``/proc/net/udp`` (or ``udp6``), found by the socket's inode:
    no per-datagram cost, so callers read it once before and once after a run.
    """
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except OSError:
        return None
    table = "/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp"
    try:
        with open(table, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return udp_socket_drops(text, inode)


def drops_since(sock: socket.socket | None, at_open: int | None) -> int | None:
    """Datagrams the kernel dropped on ``sock`` since ``at_open`` (its :func:`socket_drops` when
    the run began); None when either reading is unknown or the socket is gone."""
    if sock is None or at_open is None:
        return None
    now = socket_drops(sock)
    return None if now is None else max(0, now - at_open)
