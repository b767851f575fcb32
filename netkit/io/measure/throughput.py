"""The client data path of ``netkit measure throughput``: one OS thread per stream.

Why threads and blocking sockets: ``socket.send``/``recv_into`` release the GIL for the whole
system call, so a plain loop over a preallocated ``memoryview`` moves data at close to the
kernel's speed (ANCHORS: 38 Gbit/s on loopback with 1 MiB buffers, more than iperf3) with no
per-chunk Python object and no event-loop overhead. ``socket.sendfile`` was measured slower
(20 Gbit/s) on loopback, so it is not used.

Every data socket is blocking with kernel-level ``SO_SNDTIMEO``/``SO_RCVTIMEO`` of ``IO_TICK_S``:
a call blocked behind a full buffer returns every tick, so a worker sees the deadline and stop
requests whatever the path does, and no ``poll()`` is added before each call (Python's own socket
timeout would add one).

The main thread is the clock: it samples the per-stream byte counters at each interval tick
(reads of plain ints written by one thread each), emits interval rows, watches every stream's
progress (bytes acknowledged by the peer, or read), and ends the test: at the deadline, on a stop
request, or when no stream has moved a byte for ``STALL_S`` (a stalled path is a failure).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from netkit.core import session_header as sh
from netkit.core.errors import CheckFailed
from netkit.core.targets import format_host_port
from netkit.core.throughput_models import (
    NS,
    RECV,
    SEND,
    IntervalRow,
    StreamResult,
    TcpInfo,
    ThroughputConfig,
    ThroughputResult,
    after_omit,
    interval_row,
    overall_counted_by,
    parse_tcp_info,
    stream_result,
    summarize,
)
from netkit.io.resolve import resolve_error

IntervalSink = Callable[[IntervalRow], None]
ProgressSink = Callable[[float], None]

# A blocked send/recv on a data socket returns after IO_TICK_S (kernel SO_SNDTIMEO/SO_RCVTIMEO), so a
# worker stuck behind a stalled path still sees the deadline and stop requests within a tick.
IO_TICK_S = 0.2
STREAM_IO_TIMEOUT_S = IO_TICK_S  # the kernel timeout set on every data socket (name kept for callers)
STALL_S = 5.0  # no byte acknowledged (sender) or read (receiver) for this long: the data path has stalled
END_GRACE_S = 5.0  # after the deadline: at most this long to deliver what was queued and get the count
REPORT_TIMEOUT_S = END_GRACE_S  # how long a sender waits for the netkit server's count
JOIN_TIMEOUT_S = END_GRACE_S + 2.0
RECV_BUF_MIN = 1024 * 1024  # fewer, larger reads: less CPU per GB
PROGRESS_EVERY_NS = 200_000_000
CUT_CHECK_EVERY = 16  # sends between peeks for an early server report (issue 10, --max-duration)
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
        raise CheckFailed(f"{where}: connect timed out after {timeout:g}s") from None
    except OSError as exc:
        raise CheckFailed(f"{where}: {exc.strerror or exc}") from None
    return sock


def stall_text(seconds: float) -> str:
    return (f"no data got through for {seconds:g}s: the path or the peer stopped passing data "
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

    def __init__(self, sid: int, direction: str, sock: socket.socket, proto: str, send_view: memoryview,
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
        self.cut = False  # issue 10: the server ended the stream before the client did
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
        if self.proto == "plain":
            threading.Thread(target=self._drain, name=f"netkit-drain-{self.id}", daemon=True).start()
        send = self.sock.send
        view = self.send_view
        now = time.perf_counter_ns
        peek = self.proto == "netkit"
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
        if self.proto == "iperf3":
            self.info = tcp_info(self.sock)
            return
        self._fin = 1
        self.sock.shutdown(socket.SHUT_WR)
        if self.proto == "netkit":
            data = self._await_report()
            pending = max(0, (send_queue_bytes(self.sock) or 0) - self._fin)  # data bytes not yet acknowledged
            if self.error:  # stalled while waiting: that says more than "no count"
                pass
            elif not data and pending:
                # Still moving, slowly: -t bounds the run, so the count that would come later is
                # lost. A slow path is a result, not a failure: say so and keep the sender's figures.
                self.remark = (f"the server's byte count did not come within {REPORT_TIMEOUT_S:g}s after the "
                              f"test: {pending} bytes were still on their way (figures are the sender's)")
            elif not data:
                # Nothing came back at all: the server (or the path to it) is gone, not confused.
                self.error = (f"the server sent no byte count within {REPORT_TIMEOUT_S:g}s after the test: "
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
        if self.proto == "netkit":
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
            # (issue 10: its --max-duration), so keep the tail of every read (40 bytes)
            if self.draining or self.proto == "netkit":
                t = now()
                self.stop_ns = t
                if self.draining and t >= self.drain_deadline_ns:
                    break  # still arriving after the grace period: stop here, -t bounds the run
            self.tail = (self.tail + bytes(buf[max(0, n - keep):n]))[-keep:]
        if self.proto == "netkit":
            if not self.draining:
                self.cut = True  # EOF before we asked to stop: the server cut the stream
            if not self.eof:
                self.error = self.error or (f"the server's count did not arrive within {END_GRACE_S:g}s "
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

def tick_times(duration_ns: int, interval_ns: int, omit_ns: int) -> Iterator[int]:
    """Interval boundaries relative to the start: every interval through the omit period, one at
    its end, then every interval after it, and the end of the test last."""
    t = 0
    if omit_ns > 0:
        while t + interval_ns < omit_ns:
            t += interval_ns
            yield t
        t = omit_ns
        yield t
    while t + interval_ns < duration_ns:
        t += interval_ns
        yield t
    if t < duration_ns:
        yield duration_ns


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
    workers: list[StreamWorker],
    cfg: ThroughputConfig,
    on_interval: IntervalSink | None,
    on_progress: ProgressSink | None,
    stop: threading.Event | None,
    watch: Callable[[], None] | None = None,
) -> tuple[list[IntervalRow], RunClock]:
    """Start the workers, sample them at each interval until the end (or ``stop``), return rows.

    ``watch`` is called at every wake-up (the iperf3 client checks its control connection there).
    Senders stop themselves at the deadline; the caller ends receivers. When no stream has moved
    data for ``STALL_S`` the run ends at once (a stalled path only burns time) with every stream
    marked stalled. Interval times restart at 0 at the end of the omit period, as iperf3's do.
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
    rows: list[IntervalRow] = []
    last = [w.bytes for w in workers]
    prev = 0
    base = 0  # interval times are relative to this: 0, then the end of the omit period
    total_ns = omit_ns + duration_ns
    watched = [w for w in workers if hasattr(w, "idle_ns")]  # UDP workers duck-type without it
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
            if watched and all(w.idle_ns(now) >= stall_ns for w in watched):
                clock.stalled = True
                for w in watched:
                    w.mark_stalled()
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


# ----- netkit / plain measurement -----------------------------------------------------------------

@dataclass
class Probe:
    """What answered the first stream's header."""

    kind: str  # netkit | iperf3 | plain
    sock: socket.socket
    extra: bytes = b""  # bytes read while probing that belong to the data (plain reverse)
    header: bytes = b""


def make_header(cfg: ThroughputConfig, direction: str, sid: int, cookie: bytes) -> sh.Header:
    bound_ms = int((cfg.duration_s + cfg.omit_s) * 1000) + 10_000
    return sh.Header(
        direction=sh.SOURCE if direction == RECV else sh.SINK, stream_id=sid, duration_ms=bound_ms,
        omit_ms=int(cfg.omit_s * 1000), block_size=cfg.block_size, cookie=cookie,
    )


def probe_stream(cfg: ThroughputConfig, header: sh.Header, *, expect: str) -> Probe:
    """Connect, send the header, and classify the answer (``expect``: auto or netkit)."""
    sock = connect(cfg.host, cfg.port, cfg.connect_timeout_s)
    raw = sh.encode_header(header)
    wire = raw
    if cfg.key is not None:  # issue 10: keyed header = header with FLAG_KEYED + 32-byte trailer
        from netkit.core import keyed

        raw = sh.encode_header(dataclasses.replace(header, flags=header.flags | keyed.FLAG_KEYED))
        wire = raw + keyed.encode_header_trailer(cfg.key, raw, time.time_ns() // 1_000_000, os.urandom(8))
    try:
        sock.settimeout(cfg.connect_timeout_s)
        sock.sendall(wire)
        sock.settimeout(cfg.detect_timeout_s if expect == "auto" else cfg.connect_timeout_s)
        try:
            got = sock.recv(1)
            if not got and cfg.key is not None:
                raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: the server refused the keyed "
                                  "session header: check the key")
            if not got:
                # Keyed is one cause among several a user cannot tell apart from here: name them all.
                raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: the server closed the connection at once "
                                  "(a keyed netkit server needs --key; a TLS server, a full one (--max-conns) "
                                  "or one that refuses this address close it too)")
        except TimeoutError:
            got = b""  # silent: a discard-like service
        except ConnectionResetError:
            if cfg.key is None:
                raise
            raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: the server refused the keyed "
                              "session header: check the key") from None
        if got and expect == "auto" and got in (b"\x09", b"\xff", b"\xfe"):
            return Probe("iperf3", sock, got, raw)  # PARAM_EXCHANGE / ACCESS_DENIED / SERVER_ERROR
        if got == sh.ACK_MAGIC[:1]:
            sock.settimeout(cfg.connect_timeout_s)
            while len(got) < sh.ACK_LEN:
                chunk = sock.recv(sh.ACK_LEN - len(got))
                if not chunk:
                    break
                got += chunk
        ack = sh.decode_ack(got)
        if ack is not None:
            if ack.status == sh.STATUS_REFUSED:
                raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: the netkit server refused the "
                                  "stream: it is at its --max-sessions limit")
            if not ack.ok:
                raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: netkit server refused the stream "
                                  f"(status {ack.status})")
            return Probe("netkit", sock, b"", raw)
        if expect == "netkit":
            raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: not a netkit server (no session ack)")
        return Probe("plain", sock, got, raw)
    except OSError as exc:
        sock.close()
        raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise


def open_streams(cfg: ThroughputConfig) -> tuple[str, list[tuple[str, socket.socket, bytes]], Probe | None]:
    """Open every data stream. Returns (server kind, [(direction, sock, extra)], iperf3 probe)."""
    cookie = secrets.token_bytes(sh.COOKIE_LEN)
    dirs = cfg.directions()
    opened: list[tuple[str, socket.socket, bytes]] = []
    kind = cfg.server
    try:
        for i, d in enumerate(dirs):
            if kind == "plain":
                sock = connect(cfg.host, cfg.port, cfg.connect_timeout_s)
                opened.append((d, sock, b""))
                continue
            probe = probe_stream(cfg, make_header(cfg, d, i, cookie), expect="auto" if kind == "auto" else "netkit")
            if probe.kind == "iperf3":
                return "iperf3", opened, probe
            kind = probe.kind
            opened.append((d, probe.sock, probe.extra))
    except BaseException:
        for _, s, _ in opened:
            s.close()
        raise
    return kind, opened, None


def measure_throughput(
    cfg: ThroughputConfig,
    on_interval: IntervalSink | None = None,
    *,
    on_progress: ProgressSink | None = None,
    stop: threading.Event | None = None,
    on_info: Callable[[str], None] | None = None,
) -> ThroughputResult:
    """Run one TCP measurement against a netkit server, an iperf3 server or a plain service."""
    if cfg.server == "iperf3":
        from netkit.io.measure import iperf3
        return iperf3.run_iperf3(cfg, on_interval, on_progress=on_progress, stop=stop)
    kind, opened, probe = open_streams(cfg)
    if probe is not None:
        for _, s, _ in opened:
            s.close()
        if on_info is not None:
            on_info("the server is an iperf3 server: speaking iperf3's protocol")
        from netkit.io.measure import iperf3
        return iperf3.run_iperf3(cfg, on_interval, on_progress=on_progress, stop=stop,
                                 ctrl=probe.sock, cookie=probe.header, first_state=probe.extra)
    proto = "netkit" if kind == "netkit" else "plain"
    send_view = memoryview(bytearray(os.urandom(min(cfg.block_size, 4096))) * (cfg.block_size // 4096 + 1))
    send_view = send_view[: cfg.block_size]
    recv_size = max(cfg.block_size, RECV_BUF_MIN)
    workers: list[StreamWorker] = []
    for i, (d, sock, extra) in enumerate(opened):
        set_kernel_timeouts(sock, IO_TICK_S)
        workers.append(StreamWorker(i, d, sock, proto, send_view, recv_size, pre_bytes=len(extra)))
    try:
        rows, clock = run_clock(workers, cfg, on_interval, on_progress, stop)
        for w in workers:
            if w.direction == RECV:
                if proto == "netkit":
                    w.stop_receiving()
                else:
                    w.stopping = True
                    w.stop_ns = time.perf_counter_ns()
                    try:
                        w.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        for w in workers:
            w.join(JOIN_TIMEOUT_S)
    finally:
        for w in workers:
            w.close()
    fail_if_nothing_moved(workers, clock)
    errors = [f"stream {w.id}: {w.error}" for w in workers if w.error]
    if errors and all(w.error for w in workers) and not clock.interrupted:
        raise CheckFailed("; ".join(errors))
    server_starts = _server_starts(workers)
    results = [_stream_result(w, proto, clock.measure_start_ns, cfg.omit_s > 0, server_starts.get(w.id, 0))
               for w in workers]
    summary = summarize(results, clock.cpu_seconds, max(clock.end_ns - clock.start_ns, 1))
    note = None
    if proto == "plain":
        note = "not a netkit server: rates are counted by the sender (bytes queued, not bytes arrived)"
        if cfg.reverse and not cfg.bidir:
            note = "not a netkit server: the client counted what it received"
    if errors:
        note = (note + "; " if note else "") + "; ".join(errors)
    remarks = [f"stream {w.id}: {w.remark}" for w in workers if w.remark]
    if remarks:
        note = (note + "; " if note else "") + "; ".join(remarks)
    if any(w.cut for w in workers):
        cut = "the server ended the test early (its --max-duration limit)"
        note = (note + "; " if note else "") + cut
    return ThroughputResult(
        protocol="tcp", streams=cfg.parallel, reverse=cfg.reverse, duration_s=cfg.duration_s,
        intervals=tuple(rows), summary=summary, counted_by=overall_counted_by(results),
        target=format_host_port(cfg.host, cfg.port), server=proto, bidir=cfg.bidir, omit_s=cfg.omit_s,
        block_size=cfg.block_size, interrupted=clock.interrupted, note=note,
    )


def _nothing_arrived(w: StreamWorker) -> bool:
    """The receiving end of this stream counted no byte at all (a stall shorter than the test)."""
    if w.stalled:
        return True
    if w.direction == RECV:
        return w.bytes <= 0 and w.error is None  # another failure is named by its own error
    return w.report is not None and w.report.bytes == 0


def fail_if_nothing_moved(workers: list[StreamWorker], clock: RunClock) -> None:
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
            raise CheckFailed(f"no data got through for {STALL_S:g}s on {streams}: the path or the server "
                              "stopped passing data after the connection was set up")
        raise CheckFailed(f"no data arrived on {streams} during the test: the path or the server passed "
                          "none after the connection was set up")


def own_elapsed_ns(w: StreamWorker, measure_start_ns: int) -> int | None:
    """This side's measured time after the omit period; None when no stop time was taken."""
    if w.stop_ns == 0 or w.stop_ns <= measure_start_ns:
        return None
    return w.stop_ns - measure_start_ns


def _server_starts(workers: list[StreamWorker]) -> dict[int, int]:
    """When the netkit server began timing each stream, relative to the earliest one (ns).

    Each report arrives one trip after the server's end of that stream, and carries how long the
    server timed it: their difference is the server's start plus the same trip for every stream,
    so the differences between streams are exact. Streams start together but their first bytes
    reach the server apart (they queue behind each other), and a total over them spans from the
    first start to the last end (``common_rate``).
    """
    begun = {w.id: w.report_ns - w.report.elapsed_ns for w in workers if w.report is not None and w.report_ns}
    if not begun:
        return {}
    first = min(begun.values())
    return {sid: t - first for sid, t in begun.items()}


def _stream_result(w: StreamWorker, proto: str, measure_start_ns: int, omitting: bool,
                   server_start_ns: int = 0) -> StreamResult:
    """Combine what this side counted with the server's report (when there is one).

    With ``--omit`` both sides leave out the same leading bytes (``after_omit``): the receiver's
    omit-period count when the receiver reported it, else the client's own.
    """
    own_ns = own_elapsed_ns(w, measure_start_ns)
    info = w.info
    rep = w.report
    if w.direction == SEND:
        if proto == "netkit" and rep is not None:
            prefix = rep.omitted_bytes if omitting else 0
            sent, received = after_omit(w.bytes, rep.bytes, prefix)
            return stream_result(
                w.id, SEND, sent_bytes=sent, sent_ns=own_ns, received_bytes=received,
                received_ns=rep.elapsed_ns, retransmits=info.retransmits if info else None,
                rtt_us=info.rtt_us if info else None, counted_by="receiver", received_start_ns=server_start_ns,
            )
        return stream_result(
            w.id, SEND, sent_bytes=w.bytes - w.bytes_at_omit, sent_ns=own_ns, received_bytes=None,
            received_ns=None, retransmits=info.retransmits if info else None,
            rtt_us=info.rtt_us if info else None, counted_by="sender",
        )
    if proto == "netkit" and rep is not None:
        sent, received = after_omit(rep.bytes, w.bytes, w.bytes_at_omit)
        return stream_result(
            w.id, RECV, sent_bytes=sent, sent_ns=rep.elapsed_ns, received_bytes=received,
            received_ns=own_ns, retransmits=rep.retransmits, rtt_us=rep.rtt_us, counted_by="receiver",
            sent_start_ns=server_start_ns,
        )
    return stream_result(
        w.id, RECV, sent_bytes=None, sent_ns=None, received_bytes=w.bytes - w.bytes_at_omit, received_ns=own_ns,
        retransmits=None, rtt_us=None, counted_by="receiver",
    )


async def measure_throughput_async(cfg: ThroughputConfig, on_interval: IntervalSink | None = None,
                                   *, stop: threading.Event | None = None) -> ThroughputResult:
    """The async twin: the measurement runs in a thread (its data path is threads anyway)."""
    import asyncio

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: measure_throughput(cfg, on_interval, stop=stop))
