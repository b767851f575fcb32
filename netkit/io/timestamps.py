"""Kernel receive timestamps (``SO_TIMESTAMPNS``) and how to pair them with send times.

The kernel stamps a packet when it arrives (CLOCK_REALTIME, as iputils ping uses), so the time
Python takes to wake up and read it does not inflate the RTT. Because the stamp is wall-clock
time, the send time must be read from the same clock (``time.time_ns()``) right before the send.
A wall-clock step (NTP) between send and receive would give nonsense, so each kernel RTT is
checked against the monotonic RTT of the same probe and used only when ``0 < kernel <= monotonic``
(the kernel stamp is always earlier than our read); otherwise the monotonic RTT is used.
"""

from __future__ import annotations

import socket
import struct
import sys

#: Linux value of SO_TIMESTAMPNS (= SCM_TIMESTAMPNS); Python's socket module does not export it.
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_TIMESPEC = struct.Struct("@qq")
#: Ancillary buffer size for one timespec.
CMSG_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


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
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return sec * 1_000_000_000 + nsec
    return None


def pick_rtt(mono_rtt_ns: int, kernel_rx_real_ns: int | None, send_real_ns: int | None) -> tuple[int, bool]:
    """``(rtt_ns, used_kernel)``: the kernel RTT when it is sane, else the monotonic one."""
    if kernel_rx_real_ns is not None and send_real_ns is not None:
        k = kernel_rx_real_ns - send_real_ns
        if 0 < k <= mono_rtt_ns:
            return k, True
    return mono_rtt_ns, False
