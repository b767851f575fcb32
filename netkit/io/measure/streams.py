"""The stream engine of ``netkit measure throughput``: one OS thread per stream, the main thread as clock.

Every client (netkit or plain TCP servers :mod:`netkit.io.measure.throughput_tcp`, iperf3
:mod:`netkit.io.measure.iperf3`, UDP :mod:`netkit.io.measure.throughput_udp` and
:mod:`netkit.io.measure.iperf3_udp`) runs its streams here; this module knows none of them.

Why threads and blocking sockets: ``socket.send``/``recv_into`` release the GIL for the whole
system call, so a plain loop over a preallocated ``memoryview`` moves data at close to the
kernel's speed (38 Gbit/s on loopback with 1 MiB buffers, more than iperf3) with no
per-chunk Python object and no event-loop overhead. ``socket.sendfile`` was measured slower
(20 Gbit/s) on loopback, so it is not used.

Every data socket is blocking with kernel-level ``SO_SNDTIMEO``/``SO_RCVTIMEO`` of ``IO_TICK_S``:
a call blocked behind a full buffer returns every tick, so a worker sees the deadline and stop
requests whatever the path does, and no ``poll()`` is added before each call (Python's own socket
timeout would add one).

The main thread is the clock (:func:`run_clock`): it samples the per-stream byte counters at each
interval tick (reads of plain ints written by one thread each), emits interval rows, watches every
stream's progress (bytes acknowledged by the peer, or read), and ends the test: at the deadline,
on a stop request, or when no stream has moved a byte for ``STALL_S`` (a stalled path is a failure).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from netkit.core import session_header as sh
from netkit.core.errors import CheckFailed
from netkit.core.targets import format_host_port
from netkit.core.throughput_models import (
    NS,
    RECV,
    SEND,
    Direction,
    ServerKind,
    TcpInfo,
    ThroughputConfig,
    ThroughputInterval,
    interval_row,
    parse_tcp_info,
    tick_times,
)
from netkit.core.units import seconds_text
from netkit.io.resolve import resolve_error

IntervalSink = Callable[[ThroughputInterval], None]
ProgressSink = Callable[[float], None]

# A blocked send/recv on a data socket returns after IO_TICK_S (kernel SO_SNDTIMEO/SO_RCVTIMEO), so a
# worker stuck behind a stalled path still sees the deadline and stop requests within a tick.
IO_TICK_S = 0.2
STALL_S = 5.0  # no byte acknowledged (sender) or read (receiver) for this long: the data path has stalled
END_GRACE_S = 5.0  # after the deadline: at most this long to deliver what was queued and get the count
REPORT_TIMEOUT_S = END_GRACE_S  # how long a sender waits for the netkit server's count
JOIN_TIMEOUT_S = END_GRACE_S + 2.0
RECV_BUF_MIN = 1024 * 1024  # fewer, larger reads: less CPU per GB
SEND_PATTERN = 4096  # random bytes repeated to fill a send block (nothing compresses them away)
PROGRESS_EVERY_NS = 200_000_000
CUT_CHECK_EVERY = 16  # sends between peeks for a report the server sent early (its --max-duration ended the stream)
_SIOCOUTQ = 0x5411  # Linux: bytes in a TCP socket's send queue not yet acknowledged (TIOCOUTQ)


def tcp_info(sock: socket.socket) -> TcpInfo | None:
    """Retransmits and smoothed RTT from ``TCP_INFO`` (Linux); None where the platform lacks it."""
    opt = getattr(socket, "TCP_INFO", None)
    if opt is None:
        return None
    try:
        return parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, opt, 256))
    except OSError:
        return None


def send_queue_bytes(sock: socket.socket) -> int | None:
    """Bytes in this socket's send queue (Linux SIOCOUTQ), or None where unknown: for TCP what
    the peer has not acknowledged yet; for UDP what has not left the host (a datagram stays
    charged to its socket while it waits in a qdisc)."""
    try:
        import fcntl

        raw = fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0")
    except (ImportError, OSError, ValueError):
        return None
    return max(0, int(struct.unpack("i", raw)[0]))


def set_kernel_timeouts(sock: socket.socket, seconds: float) -> None:
    """Blocking socket whose send/recv fail with EAGAIN after ``seconds`` without progress."""
    sock.settimeout(None)
    tv = struct.pack("ll", int(seconds), int((seconds % 1) * 1e6))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    except OSError:  # pragma: no cover - not on this platform: fall back to Python's timeout
        sock.settimeout(seconds)


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """A connected TCP socket, or CheckFailed (ResolveError included) with one line that says why."""
    where = format_host_port(host, port)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise resolve_error(host, port, exc) from None
    except ConnectionRefusedError:
        raise CheckFailed(f"{where}: connection refused") from None
    except TimeoutError:
        raise CheckFailed(f"{where}: connect timed out after {seconds_text(timeout)}") from None
    except OSError as exc:
        raise CheckFailed(f"{where}: {exc.strerror or exc}") from None
    return sock


def stall_text(seconds: float) -> str:
    return (f"no data got through for {seconds_text(seconds)}: the path or the peer stopped passing data "
            "(the connection is open)")


_WAITING = (BlockingIOError, TimeoutError, InterruptedError)  # a kernel timeout tick: nothing moved


class StreamWorker:
    """One data stream: a thread that sends or receives as fast as the kernel allows.

    ``proto`` says what happens around the data: ``netkit`` (header already exchanged; sender
    half-closes and reads the server's report; receiver sends GO, half-closes to stop and finds
    the report in the last bytes), ``iperf3`` (raw data; the control connection ends it) or
    ``plain`` (raw data; sender-side counting).

    Progress is what reached the other end: for a sender the bytes the peer acknowledged (queued
    minus SIOCOUTQ), for a receiver the bytes read. A sender's own count keeps growing while its
    socket buffer fills, so it cannot tell a stalled path from a slow one.
    """

    def __init__(self, sid: int, direction: Direction, sock: socket.socket, proto: ServerKind, send_view: memoryview,
                 recv_size: int, pre_bytes: int = 0) -> None:
        self.id = sid
        self.direction = direction
        self.sock = sock
        self.proto = proto
        self.send_view = send_view
        self.recv_buf = memoryview(bytearray(recv_size)) if direction == RECV else None
        self.bytes = pre_bytes  # written by the worker thread only
        self.bytes_at_omit = 0
        self.deadline_ns = 0
        self.stopping = False
        self.draining = False
        self.drain_deadline_ns = 0
        self.start_ns = 0
        self.stop_ns = 0  # sender: last send returned; receiver: last byte arrived
        self.tail = b""
        self.error: str | None = None
        self.remark: str | None = None  # something the figures should be read with (not a failure)
        self.stalled = False  # no progress for STALL_S: the path stopped passing data
        self.report: sh.Report | None = None
        self.report_ns = 0  # when the report was read (the receiver's end, one trip later)
        self.info: TcpInfo | None = None
        self.eof = False
        self.cut = False  # the server ended the stream before the client did (its --max-duration)
        self._seen = -1  # progress as last looked at, and when it last moved
        self._seen_ns = 0
        self._fin = 0  # 1 once we half-closed: the FIN takes one place in the send queue's sequence
        self.thread = threading.Thread(target=self._run, name=f"netkit-stream-{sid}", daemon=True)

    def start(self, start_ns: int, deadline_ns: int) -> None:
        self.start_ns = start_ns
        self.deadline_ns = deadline_ns
        self._seen, self._seen_ns = self.progress(), start_ns
        self.thread.start()

    # ----- progress -----------------------------------------------------------------------------
    def progress(self) -> int:
        """Bytes that reached the other end so far (see the class docstring)."""
        if self.direction == SEND:
            queued = self.bytes + self._fin  # read before the queue: a send in between only lowers the figure
            unacked = send_queue_bytes(self.sock)
            return queued if unacked is None else max(0, queued - unacked)
        return self.bytes

    def idle_ns(self, now_ns: int) -> int:
        """How long progress has not grown (called by one thread at a time)."""
        p = self.progress()
        if p > self._seen:
            self._seen, self._seen_ns = p, now_ns
        return now_ns - self._seen_ns

    def mark_stalled(self) -> None:
        self.stalled = True
        self.error = self.error or stall_text(STALL_S)

    # ----- the hot loops ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self.direction == SEND:
                self._send_loop()
            else:
                self._recv_loop()
        except OSError as exc:
            if not self.stopping or self.direction == SEND:
                self.error = self.error or _oserror_text(exc)
        finally:
            if self.stop_ns == 0:
                self.stop_ns = time.perf_counter_ns()

    def _drain(self) -> None:
        """Plain servers may answer (an echo service): read and drop, so neither side stalls."""
        buf = bytearray(65536)
        while True:
            try:
                if not self.sock.recv_into(buf):
                    return
            except _WAITING:
                if self.eof or self.sock.fileno() < 0:
                    return
            except OSError:
                return

    def _send_loop(self) -> None:
        if self.proto == ServerKind.PLAIN:
            threading.Thread(target=self._drain, name=f"netkit-drain-{self.id}", daemon=True).start()
        send = self.sock.send
        view = self.send_view
        now = time.perf_counter_ns
        peek = self.proto == ServerKind.NETKIT
        sends = 0
        while True:
            try:
                self.bytes += send(view)  # a partial send after a kernel timeout tick counts what went
            except _WAITING:
                pass  # a tick without room in the socket buffer: look at the deadline below
            # the deadline is read each time round: the clock moves it to 0 to end the test early
            if now() >= self.deadline_ns or self.stopping:
                break
            sends += 1
            if peek and sends % CUT_CHECK_EVERY == 0 and self._server_ended():
                self.cut = True  # the server ended the stream early (its --max-duration)
                break
        self.stop_ns = now()
        if self.proto == ServerKind.IPERF3:
            self.info = tcp_info(self.sock)
            return
        self._fin = 1
        self.sock.shutdown(socket.SHUT_WR)
        if self.proto == ServerKind.NETKIT:
            data = self._await_report()
            pending = max(0, (send_queue_bytes(self.sock) or 0) - self._fin)  # data bytes not yet acknowledged
            if self.error:  # stalled while waiting: that says more than "no count"
                pass
            elif not data and pending:
                # Still moving, slowly: -t bounds the run, so the count that would come later is
                # lost. A slow path is a result, not a failure: say so and keep the sender's figures.
                self.remark = (f"the server's byte count did not come within {seconds_text(REPORT_TIMEOUT_S)} "
                              f"after the test: {pending} bytes were still on their way (figures are the sender's)")
            elif not data:
                # Nothing came back at all: the server (or the path to it) is gone, not confused.
                self.error = (f"the server sent no byte count within {seconds_text(REPORT_TIMEOUT_S)} after the test: "
                              "the server or the path to it went away (figures are the sender's)")
            else:
                self.report_ns = now()
                try:
                    self.report = sh.decode_report(data)
                except sh.HeaderError as exc:
                    self.error = f"bad report from server: {exc}"
        else:
            self._await_delivery()
        self.info = tcp_info(self.sock)

    def _end_wait_over(self, t: int, until: int) -> bool:
        """Give up waiting after the test: the path stalled, or the grace period is over."""
        if self.stalled or self.idle_ns(t) >= STALL_S * NS:
            self.mark_stalled()
            return True
        return t >= until

    def _await_report(self) -> bytes:
        """The server's 40-byte count, read while what we queued drains (kernel timeout ticks)."""
        now = time.perf_counter_ns
        until = now() + int(REPORT_TIMEOUT_S * NS)
        parts = bytearray()
        while len(parts) < sh.REPORT_LEN:
            try:
                chunk = self.sock.recv(sh.REPORT_LEN - len(parts))
            except _WAITING:
                if self._end_wait_over(now(), until):
                    break
                continue
            if not chunk:
                break
            parts += chunk
        return bytes(parts)

    def _await_delivery(self) -> None:
        """A plain peer sends no count: wait (bounded) until it acknowledged what we queued."""
        now = time.perf_counter_ns
        until = now() + int(END_GRACE_S * NS)
        while (send_queue_bytes(self.sock) or 0) > self._fin:  # the FIN is not data
            if self._end_wait_over(now(), until):
                return
            time.sleep(0.01)

    def _server_ended(self) -> bool:
        """Has the server sent its report while we were still sending? (A non-blocking peek.)"""
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _recv_loop(self) -> None:
        sock = self.sock
        if self.proto == ServerKind.NETKIT:
            sock.sendall(sh.GO)
        recv_into = sock.recv_into
        buf = self.recv_buf
        assert buf is not None
        now = time.perf_counter_ns
        keep = sh.REPORT_LEN
        while True:
            try:
                n = recv_into(buf)
            except _WAITING:
                # a tick with nothing to read: stop when asked (plain, iperf3) or when the end
                # of the stream does not come (netkit drain) within the grace period
                if self.draining and self._end_wait_over(now(), self.drain_deadline_ns):
                    break
                if self.stopping and not self.draining:
                    break
                continue
            if n == 0:
                self.eof = True
                break
            self.bytes += n
            # the report is the last bytes: after our stop, or whenever the server ends first
            # (its --max-duration cut the stream), so keep the tail of every read (40 bytes)
            if self.draining or self.proto == ServerKind.NETKIT:
                t = now()
                self.stop_ns = t
                if self.draining and t >= self.drain_deadline_ns:
                    break  # still arriving after the grace period: stop here, -t bounds the run
            self.tail = (self.tail + bytes(buf[max(0, n - keep):n]))[-keep:]
        if self.proto == ServerKind.NETKIT:
            if not self.draining:
                self.cut = True  # EOF before we asked to stop: the server cut the stream
            if not self.eof:
                self.error = self.error or (f"the server's count did not arrive within {seconds_text(END_GRACE_S)} "
                                            "after the test (figures are the client's)")
            else:
                self.report_ns = self.stop_ns  # the report is the last bytes of the stream
                try:
                    self.report = sh.decode_report(self.tail)
                    self.bytes -= sh.REPORT_LEN
                except sh.HeaderError as exc:
                    self.error = f"no report from server at the end of the stream: {exc}"
        self.info = tcp_info(sock)

    # ----- control from the main thread --------------------------------------------------------
    def stop_receiving(self) -> None:
        """Netkit source stream: tell the server to stop (half-close) and drain to its EOF."""
        if not self.eof:  # after a server cut the last byte already set stop_ns
            self.stop_ns = time.perf_counter_ns()
        self.drain_deadline_ns = time.perf_counter_ns() + int(END_GRACE_S * NS)
        self.draining = True
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.error = self.error or "stream did not finish in time"
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.thread.join(1.0)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a helper thread still blocked in recv
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _oserror_text(exc: OSError) -> str:
    if isinstance(exc, _WAITING):
        return stall_text(STALL_S)
    return exc.strerror or str(exc)


# ----- the clock ------------------------------------------------------------------------------------

class ClockedStream(Protocol):
    """What :func:`run_clock` needs of a stream (TCP :class:`StreamWorker`, the UDP senders)."""

    bytes_at_omit: int
    deadline_ns: int  # the clock sets it to 0 to end the stream early
    stopping: bool

    @property
    def id(self) -> int: ...

    @property
    def direction(self) -> Direction: ...

    @property
    def bytes(self) -> int: ...

    @property
    def thread(self) -> threading.Thread: ...

    def start(self, start_ns: int, deadline_ns: int) -> None: ...


class StallWatched(Protocol):
    """A stream whose progress the clock watches for a stall (TCP: bytes acknowledged or read)."""

    def idle_ns(self, now_ns: int) -> int: ...

    def mark_stalled(self) -> None: ...


@dataclass
class RunClock:
    start_ns: int = 0
    end_ns: int = 0
    cpu_seconds: float | None = None
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    interrupted: bool = False
    measure_start_ns: int = 0  # the end of the omit period (the start when there is none)
    stalled: bool = False  # every stream stopped making progress: the run ended early


def _cpu_times() -> tuple[float, float] | None:
    try:
        import psutil

        t = psutil.Process().cpu_times()
        return t.user, t.system
    except Exception:  # psutil missing or denied: CPU is reported as null
        return None


def run_clock(
    workers: Sequence[ClockedStream],
    cfg: ThroughputConfig,
    on_interval: IntervalSink | None,
    on_progress: ProgressSink | None,
    stop: threading.Event | None,
    watch: Callable[[], None] | None = None,
    stall_watched: Sequence[StallWatched] = (),
) -> tuple[list[ThroughputInterval], RunClock]:
    """Start the workers, sample them at each interval until the end (or ``stop``), return rows.

    ``watch`` is called at every wake-up (the iperf3 client checks its control connection there;
    the UDP clients their replies). Senders stop themselves at the deadline; the caller ends
    receivers. When none of ``stall_watched`` has moved data for ``STALL_S`` the run ends at once
    (a stalled path only burns time) with each of them marked stalled. Interval times restart at 0
    at the end of the omit period, as iperf3's do.
    """
    clock = RunClock()
    duration_ns = int(cfg.duration_s * NS)
    interval_ns = max(int(cfg.interval_s * NS), 1_000_000)
    omit_ns = int(cfg.omit_s * NS)
    cpu0 = _cpu_times()
    t0 = time.perf_counter_ns()
    clock.start_ns = clock.measure_start_ns = t0
    for w in workers:
        w.start(t0, t0 + omit_ns + duration_ns)
    rows: list[ThroughputInterval] = []
    last = [w.bytes for w in workers]
    prev = 0
    base = 0  # interval times are relative to this: 0, then the end of the omit period
    total_ns = omit_ns + duration_ns
    watched = list(stall_watched)
    stall_ns = int(STALL_S * NS)
    for tick in tick_times(total_ns, interval_ns, omit_ns):
        target = t0 + tick
        while True:
            now = time.perf_counter_ns()
            if now >= target:
                break
            if all(not w.thread.is_alive() for w in workers):
                break  # every stream ended early (errors): stop waiting
            wait_ns = min(target - now, PROGRESS_EVERY_NS)  # wake often enough to see a stall
            if stop is not None:
                if stop.wait(wait_ns / NS):
                    break
            else:
                time.sleep(wait_ns / NS)
            if on_progress is not None:
                on_progress((time.perf_counter_ns() - t0) / NS)
            if watch is not None:
                watch()
            now = time.perf_counter_ns()
            if watched and all(s.idle_ns(now) >= stall_ns for s in watched):
                clock.stalled = True
                for s in watched:
                    s.mark_stalled()
                break
        now = time.perf_counter_ns()
        interrupted = stop is not None and stop.is_set()
        ended = clock.stalled or all(not w.thread.is_alive() for w in workers)
        end = min(now, target)  # an early end (stop, stall, errors) is now; a late wake-up is the tick
        cur = [w.bytes for w in workers]
        deltas = [(w.id, w.direction, c - p) for w, c, p in zip(workers, cur, last, strict=True)]
        rel = end - t0
        omitted = omit_ns > 0 and base == 0 and rel <= omit_ns
        row = interval_row(prev - base, rel - base, deltas, omitted=omitted)
        rows.append(row)
        if on_interval is not None:
            on_interval(row)
        last, prev = cur, rel
        if omit_ns > 0 and tick == omit_ns:
            base = rel
            clock.measure_start_ns = t0 + rel
            for w, c in zip(workers, cur, strict=True):
                w.bytes_at_omit = c
        if interrupted or ended:
            clock.interrupted = interrupted
            for w in workers:
                w.deadline_ns = 0
                w.stopping = True
            break
    clock.end_ns = time.perf_counter_ns()
    if cpu0 is not None:
        cpu1 = _cpu_times()
        if cpu1 is not None:
            clock.cpu_user = cpu1[0] - cpu0[0]
            clock.cpu_system = cpu1[1] - cpu0[1]
            clock.cpu_seconds = clock.cpu_user + clock.cpu_system
    return rows, clock


def _nothing_arrived(w: StreamWorker) -> bool:
    """The receiving end of this stream counted no byte at all (a stall shorter than the test)."""
    if w.stalled:
        return True
    if w.direction == RECV:
        return w.bytes <= 0 and w.error is None  # another failure is named by its own error
    return w.report is not None and w.report.bytes == 0


def fail_if_nothing_moved(workers: Sequence[StreamWorker], clock: RunClock) -> None:
    """No stream of a direction got a byte through: that path is broken, whatever the sender
    queued (exit 1). With ``--bidir`` each direction is a path of its own.

    One line for all streams: they failed the same way, and the per-stream figures are only what
    the client's socket buffers took in.
    """
    if clock.interrupted or not workers:
        return
    for direction in (SEND, RECV):
        mine = [w for w in workers if w.direction == direction]
        if not mine or not all(_nothing_arrived(w) for w in mine):
            continue
        streams = "the stream" if len(mine) == 1 else f"any of the {len(mine)} streams"
        if len(mine) < len(workers):
            streams += " to the server" if direction == SEND else " from the server"
        if all(w.stalled for w in mine):
            raise CheckFailed(f"no data got through for {seconds_text(STALL_S)} on {streams}: the path or the "
                              "server stopped passing data after the connection was set up")
        raise CheckFailed(f"no data arrived on {streams} during the test: the path or the server passed "
                          "none after the connection was set up")


def own_elapsed_ns(w: StreamWorker, measure_start_ns: int) -> int | None:
    """This side's measured time after the omit period; None when no stop time was taken."""
    if w.stop_ns == 0 or w.stop_ns <= measure_start_ns:
        return None
    return w.stop_ns - measure_start_ns


def send_block(block_size: int, pattern: bytes = b"") -> memoryview:
    """The block every send stream writes: ``pattern`` repeated to ``block_size`` bytes (zeros without one)."""
    if not pattern:
        return memoryview(bytearray(block_size))
    return memoryview(bytearray(pattern) * (block_size // len(pattern) + 1))[:block_size]
