"""Pairing a kernel receive timestamp with a send time: the RTT a meter reports. Pure.

The kernel stamps a packet when it arrives (``SO_TIMESTAMPNS``, CLOCK_REALTIME, as iputils ping
uses), so the time Python takes to wake up and read it does not inflate the RTT. Because the stamp
is wall-clock time, the send time must come from the same clock. A wall-clock step (NTP) between
send and receive would give nonsense, so each kernel RTT is checked against the monotonic RTT of
the same probe and used only when ``0 < kernel <= monotonic`` (the kernel stamp is always earlier
than our read); otherwise the monotonic RTT is used. The socket side lives in
``netkit.io.timestamps``.
"""

from __future__ import annotations

import struct

#: ``struct timespec`` as the kernel hands it over in ancillary data (native layout).
TIMESPEC = struct.Struct("@qq")


def pick_rtt(mono_rtt_ns: int, kernel_rx_real_ns: int | None, send_real_ns: int | None) -> tuple[int, bool]:
    """``(rtt_ns, used_kernel)``: the kernel RTT when it is sane, else the monotonic one."""
    if kernel_rx_real_ns is not None and send_real_ns is not None:
        k = kernel_rx_real_ns - send_real_ns
        if 0 < k <= mono_rtt_ns:
            return k, True
    return mono_rtt_ns, False


def decode_timespec(data: bytes) -> int | None:
    """A ``struct timespec`` as integer nanoseconds; None when ``data`` is too short for one."""
    if len(data) < TIMESPEC.size:
        return None
    sec, nsec = TIMESPEC.unpack_from(data)
    return int(sec) * 1_000_000_000 + int(nsec)
