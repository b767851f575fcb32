"""Paced UDP streams for ``netkit measure throughput --udp``: the UDP part of the stream engine.

:class:`PacedSender` is a thread that sends fixed-size datagrams at a rate and stops at the
deadline even while catching up (a sender that cannot reach the rate ends on time and says so: a
shortfall is not loss). The main thread is the clock (:func:`netkit.io.measure.streams.run_clock`),
exactly as for TCP streams. Its users write their header into each datagram: netkit's echo
reflector client (:mod:`netkit.io.measure.throughput_udp`) and iperf3's UDP test
(:mod:`netkit.io.measure.iperf3_udp`).
"""

from __future__ import annotations

import socket
import threading
import time

from netkit.core.errors import CheckFailed
from netkit.core.targets import format_host_port
from netkit.core.throughput_models import (
    NS,
    Direction,
    ThroughputConfig,
    rate_reached,
    udp_buffer_bytes,
)
from netkit.io.measure.streams import send_queue_bytes, set_kernel_timeouts
from netkit.io.resolve import resolve_error
from netkit.io.udp_buffers import tune_buffers

SOCKET_TIMEOUT_S = 0.2  # every send/recv returns within this (the threads re-check their flags)
UNPACED_BATCH = 64  # unpaced: datagrams per look at the clock (the deadline is still checked for each)
MAX_SLEEP_NS = 50_000_000  # the pacing sleep never outlasts this: the deadline is re-checked
SENDER_STOP_S = 2.0  # a sender checks its deadline every datagram: this is a generous bound


class PacedSender:
    """A thread that sends ``size``-byte datagrams on a connected socket at ``rate_bps``.

    Pacing is by slot: slot ``n`` is due ``n * gap`` after the start. A sender that falls behind
    sends the overdue slots back to back, but checks the deadline before *every* datagram, so the
    run ends on time whatever the rate. ``rate_bps`` 0 sends as fast as the kernel takes them
    (iperf3's ``-b 0``). Subclasses write their header in :meth:`_stamp`.

    Counters are written by the sender thread only: ``accepted`` datagrams (and ``sent_bytes``)
    the kernel took, ``send_failures`` it refused (own socket buffer full, or an ICMP error
    reported on this socket: ``refused``).
    """

    direction: Direction = Direction.SEND

    def __init__(self, sid: int, sock: socket.socket, size: int, rate_bps: float) -> None:
        self.id = sid
        self.sock = sock
        self.size = size
        self.rate_bps = rate_bps
        self.gap_ns = max(1, int(size * 8 * NS / rate_bps)) if rate_bps > 0 else 0  # 0: unpaced
        self.accepted = 0
        self.sent_bytes = 0
        self.send_failures = 0
        self.refused = False
        self.bytes_at_omit = 0
        self.start_ns = 0
        self.deadline_ns = 0
        self.stop_ns = 0  # set when the send loop has ended, never left at 0 after the thread ends
        self.stopping = False
        self.error: str | None = None
        self.thread = threading.Thread(target=self._send_loop, name=f"netkit-udp-send-{sid}", daemon=True)

    def start(self, start_ns: int, deadline_ns: int) -> None:
        self.start_ns = start_ns
        self.deadline_ns = deadline_ns
        self.thread.start()

    # ----- what subclasses put in each datagram ------------------------------------------------
    def _stamp(self, buf: bytearray, slot: int, t_ns: int) -> None:
        """Write the header of the datagram for ``slot`` sent at ``t_ns`` into ``buf``."""

    def _failed(self, slot: int) -> None:
        """The kernel did not take the datagram of ``slot``."""

    # ----- the hot loop ------------------------------------------------------------------------
    def _send_loop(self) -> None:
        buf = bytearray(self.size)
        send = self.sock.send
        now = time.perf_counter_ns
        stamp, failed = self._stamp, self._failed
        gap, t0, size = self.gap_ns, self.start_ns, self.size
        slot = 0
        try:
            while not self.stopping:
                t = now()
                if t >= self.deadline_ns:
                    break
                due = (t - t0) // gap + 1 if gap else slot + UNPACED_BATCH  # slots that should have left by now
                ended = False
                while slot < due:
                    ts = now()
                    if ts >= self.deadline_ns or self.stopping:
                        ended = True  # the deadline holds inside the catch-up too
                        break
                    stamp(buf, slot, ts)
                    try:
                        send(buf)
                    except (BlockingIOError, TimeoutError, InterruptedError):
                        self.send_failures += 1  # our own socket buffer stayed full
                        failed(slot)
                    except ConnectionRefusedError:
                        self.refused = True  # an ICMP port unreachable came back for an earlier one
                        self.send_failures += 1
                        failed(slot)
                    else:
                        self.accepted += 1
                        self.sent_bytes += size
                    slot += 1
                if ended:
                    break
                if not gap:
                    continue
                wait = t0 + slot * gap - now()
                if wait > 200_000:
                    time.sleep(min(wait - 100_000, MAX_SLEEP_NS) / NS)
                elif wait > 0:
                    time.sleep(0)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
        finally:
            self.stop_ns = now()

    # ----- after the run -----------------------------------------------------------------------
    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def stop_time(self, fallback_ns: int) -> int:
        """When sending ended: the sender's own stop time, or ``fallback_ns`` if it never took one."""
        return self.stop_ns or fallback_ns

    def reached(self, fallback_ns: int) -> bool:
        if self.rate_bps <= 0:
            return True  # unpaced: whatever it sent is the rate
        return rate_reached(self.rate_bps, self.sent_bytes, max(self.stop_time(fallback_ns) - self.start_ns, 1))


def open_udp(cfg: ThroughputConfig, rate_bps: float) -> socket.socket:
    """A UDP socket connected to the target, buffers sized for ``rate_bps``, kernel timeouts set."""
    where = format_host_port(cfg.host, cfg.port)
    try:
        info = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_DGRAM)[0]
    except socket.gaierror as exc:
        raise resolve_error(cfg.host, cfg.port, exc) from None
    sock = socket.socket(info[0], socket.SOCK_DGRAM)
    try:
        tune_buffers(sock, udp_buffer_bytes(rate_bps))
        set_kernel_timeouts(sock, SOCKET_TIMEOUT_S)
        sock.connect(info[4])
    except OSError as exc:
        sock.close()
        raise CheckFailed(f"{where}: {exc.strerror or exc}") from None
    return sock


def wait_sent(socks: list[socket.socket], timeout_s: float) -> None:
    """Wait until every datagram of ``socks`` has left this host (or ``timeout_s`` passes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any((send_queue_bytes(s) or 0) > 0 for s in socks):
        time.sleep(0.002)


