"""Pairing kernel timestamps with probes: the RTT a meter reports. Pure.

The kernel stamps a packet when it arrives (``SO_TIMESTAMPNS`` or ``SO_TIMESTAMPING`` with
``SOF_TIMESTAMPING_RX_SOFTWARE``, CLOCK_REALTIME, as iputils ping uses), so the time Python takes
to wake up and read it does not inflate the RTT. Where the platform also stamps the send
(``SOF_TIMESTAMPING_TX_SOFTWARE``: the moment the datagram is handed to the device, read back from
the socket's error queue), the RTT is kernel to kernel, and the time Python takes between reading
the clock and the send does not count either. The three ways, best first:

- ``kernel-both``: kernel receive stamp minus kernel transmit stamp;
- ``kernel-rx``: kernel receive stamp minus a wall-clock time read just before the send;
- ``user``: the monotonic clock around the send and the read.

Kernel stamps are wall-clock time, and a wall-clock step (NTP) between send and receive would give
nonsense, so each kernel RTT is checked against the monotonic RTT of the same probe and used only
when ``0 < kernel <= monotonic`` (a kernel stamp is always later than our send and earlier than our
read); a transmit stamp must also not be earlier than the wall-clock time read before the send (it
would then belong to another datagram). Otherwise the next way down is used.

Which transmit stamp belongs to which probe is ``TxStampBook``'s job: the kernel tags each stamp
with a key (``SOF_TIMESTAMPING_OPT_ID``), either one the sender chose per datagram
(``SCM_TS_OPT_ID``, Linux 6.13+) or the socket's own counter of stamped datagrams. The socket side
lives in ``netkit.io.timestamps``; the error-queue records in ``netkit.core.errqueue``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from enum import Enum

#: ``struct timespec`` as the kernel hands it over in ancillary data (native layout).
TIMESPEC = struct.Struct("@qq")
#: ``SCM_TIMESTAMPING``: three timespecs (software, legacy, raw hardware).
SCM_TIMESTAMPING = struct.Struct("@qqqqqq")
#: OPT_ID keys are 32-bit and wrap.
KEY_MASK = 0xFFFF_FFFF


class Timestamps(str, Enum):
    """Which clocks timed a probe's round trip; the values are the JSON words."""

    KERNEL_BOTH = "kernel-both"  # kernel transmit and receive stamps
    KERNEL_RX = "kernel-rx"  # wall clock before the send, kernel receive stamp
    USER = "user"  # monotonic clock in this process around send and read

    def __str__(self) -> str:
        return self.value


#: Weakest first: a tie between kinds names the weaker one.
_RANK = {Timestamps.USER: 0, Timestamps.KERNEL_RX: 1, Timestamps.KERNEL_BOTH: 2}


def pick_rtt(mono_rtt_ns: int, kernel_rx_real_ns: int | None, send_real_ns: int | None) -> tuple[int, bool]:
    """``(rtt_ns, used_kernel)``: the kernel RTT when it is sane, else the monotonic one."""
    if kernel_rx_real_ns is not None and send_real_ns is not None:
        k = kernel_rx_real_ns - send_real_ns
        if 0 < k <= mono_rtt_ns:
            return k, True
    return mono_rtt_ns, False


def pick_rtt_stamped(mono_rtt_ns: int, send_real_ns: int | None, kernel_tx_ns: int | None,
                     kernel_rx_ns: int | None) -> tuple[int, Timestamps]:
    """``(rtt_ns, kind)``: kernel to kernel when sane, else kernel receive, else monotonic."""
    if kernel_tx_ns is not None and kernel_rx_ns is not None:
        k = kernel_rx_ns - kernel_tx_ns
        if 0 < k <= mono_rtt_ns and (send_real_ns is None or kernel_tx_ns >= send_real_ns):
            return k, Timestamps.KERNEL_BOTH
    rtt, used = pick_rtt(mono_rtt_ns, kernel_rx_ns, send_real_ns)
    return rtt, Timestamps.KERNEL_RX if used else Timestamps.USER


def prevailing(counts: Mapping[Timestamps, int]) -> Timestamps | None:
    """The kind that timed the most replies (a tie: the weaker); None when nothing was timed."""
    best: Timestamps | None = None
    for kind, n in counts.items():
        if n <= 0:
            continue
        if best is None or n > counts[best] or (n == counts[best] and _RANK[kind] < _RANK[best]):
            best = kind
    return best


def decode_timespec(data: bytes) -> int | None:
    """A ``struct timespec`` as integer nanoseconds; None when ``data`` is too short for one."""
    if len(data) < TIMESPEC.size:
        return None
    sec, nsec = TIMESPEC.unpack_from(data)
    return int(sec) * 1_000_000_000 + int(nsec)


def decode_scm_timestamping(data: bytes) -> int | None:
    """The software stamp of an ``SCM_TIMESTAMPING`` cmsg in ns; None when absent (all zero)."""
    stamp = decode_timespec(data)
    return stamp if stamp else None


class TxStampBook:
    """Which kernel transmit stamp belongs to which probe, by the stamps' OPT_ID keys.

    Two ways to key a datagram, both in ``SOF_TIMESTAMPING_OPT_ID``'s 32 bits:

    - ``explicit``: the sender passes the key with each datagram (``SCM_TS_OPT_ID``); the key is
      the probe's sequence number, so a failed send loses nothing.
    - counter (not ``explicit``): the kernel numbers the stamped datagrams of the socket 0, 1, 2...
      and a probe's key is the number of sends before it. A send that fails leaves it unknown
      whether the kernel counted it, so after one the book stops pairing (``active`` turns False)
      rather than pair stamps with the wrong probes.

    Memory is bounded by the probes in flight: ``take`` (on a reply) and ``forget`` (on a timeout)
    drop a probe's entries; a stamp with no probe waiting for it is dropped. Sequence numbers must
    not repeat (a probe is one datagram).
    """

    def __init__(self, *, explicit: bool) -> None:
        self.explicit = explicit
        self.active = True
        self._next = 0  # counter mode: the key of the next stamped datagram
        self._seq_of: dict[int, int] = {}  # key -> seq, for probes whose stamp has not come
        self._key_of: dict[int, int] = {}  # seq -> key
        self._stamp: dict[int, int] = {}  # seq -> stamp (ns), until the reply takes it
        self.unmatched = 0  # stamps that fit no probe in flight (after a timeout, or foreign)

    def key_for(self, seq: int) -> int:
        """The key to send probe ``seq`` with (``explicit`` only)."""
        return seq & KEY_MASK

    def to_counter(self) -> None:
        """The kernel refused per-datagram keys: number datagrams as the kernel counts them."""
        self.explicit = False

    def on_sent(self, seq: int) -> None:
        """Probe ``seq`` was accepted by the kernel: its stamp will come with its key."""
        if not self.active:
            return
        if self.explicit:
            key = self.key_for(seq)
        else:
            key = self._next
            self._next = (self._next + 1) & KEY_MASK
        self._seq_of[key] = seq
        self._key_of[seq] = key

    def on_send_failed(self, seq: int) -> None:
        """Probe ``seq`` was not sent. Counter mode loses track: stop pairing."""
        if not self.explicit:
            self.active = False
            self._seq_of.clear()
            self._key_of.clear()
            self._stamp.clear()

    def on_stamp(self, key: int, stamp_ns: int) -> int | None:
        """A transmit stamp arrived; the probe it belongs to, or None (kept nowhere)."""
        seq = self._seq_of.pop(key, None)
        if seq is None or not self.active:
            self.unmatched += 1
            return None
        self._stamp[seq] = stamp_ns
        return seq

    def take(self, seq: int) -> int | None:
        """Probe ``seq``'s transmit stamp for its reply, once; None when it has not come."""
        key = self._key_of.pop(seq, None)
        if key is not None:
            self._seq_of.pop(key, None)
        return self._stamp.pop(seq, None)

    def forget(self, seq: int) -> None:
        """Probe ``seq`` timed out: a stamp that comes for it later is not kept."""
        self.take(seq)

    @property
    def pending(self) -> int:
        """Entries held (probes waiting for a stamp or a reply); bounded by the probes in flight."""
        return len(self._seq_of) + len(self._stamp)
