"""Kernel timestamps on a socket: switching them on, sending stamped, reading them back.

Two levels, best first, each falling back to the next where the platform lacks it:

- ``enable_tx_rx(sock)``: ``SO_TIMESTAMPING`` with software transmit and receive stamps
  (``SOF_TIMESTAMPING_TX_SOFTWARE | RX_SOFTWARE | SOFTWARE | OPT_ID | OPT_TSONLY``). Receive stamps
  come with each datagram (``SCM_TIMESTAMPING``, read by ``from_ancdata``); transmit stamps come
  back on the socket's error queue, one per datagram sent, keyed by ``OPT_ID`` (``drain_errqueue``).
  ``OPT_TSONLY`` keeps the sent bytes out of the queue (and is what lets an unprivileged process
  have the stamps whatever ``net.core.tstamp_allow_data`` says). Returns ``Timestamps.KERNEL_BOTH``.
- ``enable(sock)``: ``SO_TIMESTAMPNS`` receive stamps only (``Timestamps.KERNEL_RX``).
- neither: the caller times in user space (``Timestamps.USER``).

Sending: ``send_stamped(sock, data, addr, seq, book)`` passes the probe's key with the datagram
(``SCM_TS_OPT_ID``, Linux 6.13+) where the kernel takes it, and otherwise tells the
``netkit.core.kernel_rtt.TxStampBook`` to follow the kernel's own counter; it records the send in the
book either way. Pairing stamps with probes, and checking them against the monotonic RTT, is pure
code in ``netkit.core.kernel_rtt``.

Reading the error queue: ``drain_errqueue(sock)`` empties it and returns every record decoded
(``netkit.core.errqueue``): ``TxStamp`` (origin ``SO_EE_ORIGIN_TIMESTAMPING``) for the stamps, and
``QueuedError`` for ICMP errors (origin ICMP/ICMP6, on a socket with ``IP_RECVERR``/``IPV6_RECVERR``,
see ``enable_recverr``) and local errors, with the offender, the quoted datagram and the error's
receive stamp, for the caller to interpret.

Watching such a socket: a socket with records queued polls EPOLLERR. asyncio's selector loops call
the reader for it, but libuv (uvloop) takes EPOLLERR on a watched descriptor for a dead one and
stops watching it for good. ``ErrQueueWatch`` puts the socket in an epoll set of its own and has the
loop watch that set instead, which only ever polls readable: the callback runs on any loop when
the socket has data or error records. It must drain both on each call (level-triggered: it runs
again while either is non-empty).

The stamps are CLOCK_REALTIME; where only receive stamps exist, the send time must be read from the
wall clock (``time.time_ns()``) right before the send.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from netkit.core.errqueue import ErrQueueRecord, decode_extended_err, decode_record
from netkit.core.kernel_rtt import (
    SCM_TIMESTAMPING,
    TIMESPEC,
    Timestamps,
    TxStampBook,
    decode_scm_timestamping,
    decode_timespec,
)

if TYPE_CHECKING:  # pragma: no cover - the trace engine imports this module without asyncio (start-up)
    import asyncio

_LINUX = sys.platform.startswith("linux")
#: Linux values; Python's socket module does not export them (asm-generic numbers; the errqueue
#: and OPT_ID exist only on Linux, whose common architectures all use these).
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if _LINUX else None)
SO_TIMESTAMPING: int | None = getattr(socket, "SO_TIMESTAMPING", 37 if _LINUX else None)
SCM_TS_OPT_ID = 81
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
SOL_IPV6 = getattr(socket, "SOL_IPV6", 41)
MSG_ERRQUEUE: int = getattr(socket, "MSG_ERRQUEUE", 0x2000)

SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
#: What ``enable_tx_rx`` asks for.
TX_RX_FLAGS = (SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
               | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY)

_HAS_CMSG = hasattr(socket, "CMSG_SPACE")
#: Ancillary buffer for a datagram's receive stamp of either kind (``SCM_TIMESTAMPING`` is the larger).
CMSG_SIZE = (socket.CMSG_SPACE(SCM_TIMESTAMPING.size) + socket.CMSG_SPACE(TIMESPEC.size)) if _HAS_CMSG else 0
#: Ancillary buffer for an error-queue record: the stamp, the extended error with a sockaddr_in6,
#: and room for what IP_PKTINFO-like options add.
ERRQUEUE_CMSG_SIZE = 512
_KEY = struct.Struct("=I")


def enable(sock: socket.socket) -> bool:
    """Ask for nanosecond receive timestamps on ``sock``; False where the platform has none."""
    if SO_TIMESTAMPNS is None or not hasattr(sock, "recvmsg"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def enable_tx_rx(sock: socket.socket) -> Timestamps:
    """Kernel transmit and receive stamps on ``sock`` where possible; what it got.

    ``KERNEL_BOTH``: ``SO_TIMESTAMPING`` took the flags (transmit stamps on the error queue, receive
    stamps with each datagram). Else ``KERNEL_RX`` (``SO_TIMESTAMPNS``), else ``USER``.
    """
    if SO_TIMESTAMPING is not None and _HAS_CMSG and hasattr(sock, "recvmsg"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, TX_RX_FLAGS)
            if sock.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING) & TX_RX_FLAGS == TX_RX_FLAGS:
                return Timestamps.KERNEL_BOTH
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, 0)
        except OSError:
            pass
    return Timestamps.KERNEL_RX if enable(sock) else Timestamps.USER


def enable_recverr(sock: socket.socket) -> bool:
    """Queue ICMP errors about what ``sock`` sends on its error queue (``IP_RECVERR`` or
    ``IPV6_RECVERR`` by the socket's family; ``drain_errqueue`` hands them on); False where not."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(SOL_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    except OSError:
        return False
    return True


def from_ancdata(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The receive timestamp in CLOCK_REALTIME ns from ``recvmsg`` ancillary data, or None.

    Reads ``SCM_TIMESTAMPING``'s software stamp (``enable_tx_rx``) or ``SCM_TIMESTAMPNS`` (``enable``).
    """
    for level, kind, data in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == SO_TIMESTAMPING:
            stamp = decode_scm_timestamping(data)
        elif kind == SO_TIMESTAMPNS:
            stamp = decode_timespec(data)
        else:
            continue
        if stamp is not None:
            return stamp
    return None


def send_stamped(sock: socket.socket, data: bytes | bytearray, addr: tuple | None, seq: int,
                 book: TxStampBook) -> None:
    """Send probe ``seq`` (to ``addr``, or connected when None) and record it in ``book``.

    With ``book.explicit`` the datagram carries its key (``SCM_TS_OPT_ID``); a kernel that refuses
    the option (EINVAL: older than 6.13) turns the book to the kernel's counter and the datagram is
    sent again without it, once. Raises ``OSError`` as ``send`` does (the book is told first).
    """
    try:
        if book.explicit and book.active:
            try:
                anc = [(socket.SOL_SOCKET, SCM_TS_OPT_ID, _KEY.pack(book.key_for(seq)))]
                if addr is None:
                    sock.sendmsg([data], anc)
                else:
                    sock.sendmsg([data], anc, 0, addr)
                book.on_sent(seq)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                book.to_counter()
        if addr is None:
            sock.send(data)
        else:
            sock.sendto(data, addr)
    except OSError:
        book.on_send_failed(seq)
        raise
    book.on_sent(seq)


def drain_errqueue(sock: socket.socket, *, bufsize: int = 2048, limit: int = 1024) -> list[ErrQueueRecord]:
    """Empty ``sock``'s error queue (at most ``limit`` records); every record it held, decoded.

    Never blocks on a non-blocking socket or one without a timeout. ``bufsize`` bounds the quoted
    datagram kept with an ICMP error. Messages that carry no extended error are skipped. An ICMP
    error also sets the socket's pending error, which the next ``send`` on it would raise
    (ECONNREFUSED, EHOSTUNREACH...) instead of sending; reading the last ICMP error here clears it.
    """
    out: list[ErrQueueRecord] = []
    for _ in range(limit):
        try:
            data, anc, _flags, _addr = sock.recvmsg(bufsize, ERRQUEUE_CMSG_SIZE, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:  # nothing queued on some kernels (EAGAIN spelled otherwise), or closed
            break
        rec = parse_errqueue_message(data, anc)
        if rec is not None:
            out.append(rec)
    return out


def parse_errqueue_message(data: bytes, ancdata: list[tuple[int, int, bytes]]) -> ErrQueueRecord | None:
    """One ``recvmsg(MSG_ERRQUEUE)`` result as a record (or None): the cmsgs picked apart by level."""
    err = None
    scm_ts: bytes | None = None
    scm_tsns: bytes | None = None
    for level, kind, payload in ancdata:
        if (level == socket.IPPROTO_IP and kind == IP_RECVERR) or (level == SOL_IPV6 and kind == IPV6_RECVERR):
            err = decode_extended_err(payload, af_inet=socket.AF_INET, af_inet6=socket.AF_INET6)
        elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING:
            scm_ts = payload
        elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            scm_tsns = payload
    return decode_record(bytes(data), err, scm_ts, scm_tsns)


class ErrQueueWatch:
    """Run ``callback`` on ``loop`` whenever ``sock`` has data or error-queue records.

    On Linux the loop watches an epoll set holding only ``sock`` (EPOLLIN and EPOLLERR), so an
    error record never reaches the loop's own poller as EPOLLERR (which uvloop would take for a
    dead descriptor). Elsewhere (no epoll, and no error queue either) it is ``loop.add_reader``.
    ``close`` stops watching; it does not close ``sock``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._ep: select.epoll | None = None
        epoll = getattr(select, "epoll", None)
        if epoll is not None:
            self._ep = epoll()
            self._ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLERR)
            self._fd = self._ep.fileno()
        else:  # pragma: no cover - non-Linux
            self._fd = sock.fileno()
        loop.add_reader(self._fd, callback)

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self._loop.remove_reader(self._fd)
        except (ValueError, OSError, RuntimeError):
            pass
        if self._ep is not None:
            self._ep.close()
        self._fd = -1
