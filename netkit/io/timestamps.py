"""Kernel receive timestamps (``SO_TIMESTAMPNS``) on a socket: switching them on and reading them.

How a kernel stamp is paired with the send time (and when it is not trusted) is pure code in
``netkit.core.kernel_rtt``; the send time must be read from the wall clock (``time.time_ns()``)
right before the send, since the kernel stamps in CLOCK_REALTIME.
"""

from __future__ import annotations

import socket
import sys

from netkit.core.kernel_rtt import TIMESPEC, decode_timespec

#: Linux value of SO_TIMESTAMPNS (= SCM_TIMESTAMPNS); Python's socket module does not export it.
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
#: Ancillary buffer size for one timespec.
CMSG_SIZE = socket.CMSG_SPACE(TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


def enable(sock: socket.socket) -> bool:
    """Ask for nanosecond receive timestamps on ``sock``; False where the platform has none."""
    if SO_TIMESTAMPNS is None or not hasattr(sock, "recvmsg"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def from_ancdata(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The receive timestamp in CLOCK_REALTIME ns from ``recvmsg`` ancillary data, or None."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            stamp = decode_timespec(data)
            if stamp is not None:
                return stamp
    return None
