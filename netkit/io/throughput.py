"""The client data path of ``netkit measure throughput``: one OS thread per stream.

Why threads and blocking sockets: ``socket.send``/``recv_into`` release the GIL for the whole
system call, so a plain loop over a preallocated ``memoryview`` moves data at close to the
kernel's speed (ANCHORS: 38 Gbit/s on loopback with 1 MiB buffers, more than iperf3) with no
per-chunk Python object and no event-loop overhead. ``socket.sendfile`` was measured slower
(20 Gbit/s) on loopback, so it is not used.

Every data socket is blocking with kernel-level ``SO_SNDTIMEO``/``SO_RCVTIMEO``: a stalled peer
ends the stream with an error instead of hanging, and no ``poll()`` is added before each call
(Python's own socket timeout would add one).

The main thread is the clock: it samples the per-stream byte counters at each interval tick
(reads of plain ints written by one thread each), emits interval rows, and ends the test.
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
from typing import Any

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
    interval_row,
    overall_counted_by,
    parse_tcp_info,
    stream_result,
    summarize,
)
from netkit.io.resolve import resolve_error

IntervalSink = Callable[[IntervalRow], None]
ProgressSink = Callable[[float], None]

STREAM_IO_TIMEOUT_S = 10.0  # no byte moved for this long: the stream has failed
REPORT_TIMEOUT_S = 10.0  # how long a sender waits for the netkit server's count
JOIN_TIMEOUT_S = 15.0
RECV_BUF_MIN = 1024 * 1024  # fewer, larger reads: less CPU per GB
PROGRESS_EVERY_NS = 200_000_000
CUT_CHECK_EVERY = 16  # sends between peeks for an early server report (issue 10, --max-duration)


def tcp_info(sock: socket.socket) -> TcpInfo | None:
    """Retransmits and smoothed RTT from ``TCP_INFO`` (Linux); None where the platform lacks it."""
    opt = getattr(socket, "TCP_INFO", None)
    if opt is None:
        return None
    try:
        return parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, opt, 256))
    except OSError:
        return None


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


class StreamWorker:
    """One data stream: a thread that sends or receives as fast as the kernel allows.

    ``proto`` says what happens around the data: ``netkit`` (header already exchanged; sender
    half-closes and reads the server's report; receiver sends GO, half-closes to stop and finds
    the report in the last bytes), ``iperf3`` (raw data; the control connection ends it) or
    ``plain`` (raw data; sender-side counting).
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
        self.start_ns = 0
        self.stop_ns = 0  # sender: last send returned; receiver: last byte arrived
        self.tail = b""
        self.error: str | None = None
        self.report: sh.Report | None = None
        self.info: TcpInfo | None = None
        self.eof = False
        self.cut = False  # issue 10: the server ended the stream before the client did
        self.thread = threading.Thread(target=self._run, name=f"netkit-stream-{sid}", daemon=True)

    def start(self, start_ns: int, deadline_ns: int) -> None:
        self.start_ns = start_ns
        self.deadline_ns = deadline_ns
        self.thread.start()

    # ----- the hot loops ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self.direction == SEND:
                self._send_loop()
            else:
                self._recv_loop()
        except OSError as exc:
            if not self.stopping or self.direction == SEND:
                self.error = _oserror_text(exc)
        finally:
            if self.stop_ns == 0:
                self.stop_ns = time.perf_counter_ns()

    def _drain(self) -> None:
        """Plain servers may answer (an echo service): read and drop, so neither side stalls."""
        buf = bytearray(65536)
        try:
            while self.sock.recv_into(buf):
                pass
        except OSError:
            pass

    def _send_loop(self) -> None:
        if self.proto == "plain":
            threading.Thread(target=self._drain, name=f"netkit-drain-{self.id}", daemon=True).start()
        send = self.sock.send
        view = self.send_view
        now = time.perf_counter_ns
        deadline = self.deadline_ns
        peek = self.proto == "netkit"
        sends = 0
        while True:
            self.bytes += send(view)
            if now() >= deadline or self.stopping:
                break
            sends += 1
            if peek and sends % CUT_CHECK_EVERY == 0 and self._server_ended():
                self.cut = True  # the server ended the stream early (its --max-duration)
                break
        self.stop_ns = now()
        if self.proto == "iperf3":
            self.info = tcp_info(self.sock)
            return
        self.sock.shutdown(socket.SHUT_WR)
        if self.proto == "netkit":
            self.sock.settimeout(REPORT_TIMEOUT_S)
            try:
                data = _recv_exact(self.sock, sh.REPORT_LEN)
            except (TimeoutError, BlockingIOError):
                data = b""
            if not data:
                # Nothing came back at all: the server (or the path to it) is gone, not confused.
                self.error = (f"the server sent no byte count within {REPORT_TIMEOUT_S:g}s after the test: "
                              "the server or the path to it went away (figures are the sender's)")
            else:
                try:
                    self.report = sh.decode_report(data)
                except sh.HeaderError as exc:
                    self.error = f"bad report from server: {exc}"
        self.info = tcp_info(self.sock)

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
            n = recv_into(buf)
            if n == 0:
                self.eof = True
                break
            self.bytes += n
            # the report is the last bytes: after our stop, or whenever the server ends first
            # (issue 10: its --max-duration), so keep the tail of every read (40 bytes)
            self.stop_ns = now() if self.draining or self.proto == "netkit" else self.stop_ns
            self.tail = (self.tail + bytes(buf[max(0, n - keep):n]))[-keep:]
        if self.proto == "netkit":
            if not self.draining:
                self.cut = True  # EOF before we asked to stop: the server cut the stream
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
    if isinstance(exc, (BlockingIOError, TimeoutError)):
        return f"no progress for {STREAM_IO_TIMEOUT_S:g}s: the peer or the path to it went away"
    return exc.strerror or str(exc)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes, or fewer if the peer closed first (the caller validates)."""
    parts = bytearray()
    deadline = time.monotonic() + REPORT_TIMEOUT_S
    while len(parts) < n and time.monotonic() < deadline:
        chunk = sock.recv(n - len(parts))
        if not chunk:
            break
        parts += chunk
    return bytes(parts)


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
    Senders stop themselves at the deadline; the caller ends receivers.
    """
    clock = RunClock()
    duration_ns = int(cfg.duration_s * NS)
    interval_ns = max(int(cfg.interval_s * NS), 1_000_000)
    omit_ns = int(cfg.omit_s * NS)
    cpu0 = _cpu_times()
    t0 = time.perf_counter_ns()
    clock.start_ns = t0
    for w in workers:
        w.start(t0, t0 + omit_ns + duration_ns)
    rows: list[IntervalRow] = []
    last = [w.bytes for w in workers]
    prev = 0
    total_ns = omit_ns + duration_ns
    for tick in tick_times(total_ns, interval_ns, omit_ns):
        target = t0 + tick
        while True:
            now = time.perf_counter_ns()
            if now >= target:
                break
            if all(not w.thread.is_alive() for w in workers):
                break  # every stream ended early (errors): stop waiting
            wait_ns = target - now
            if on_progress is not None:
                wait_ns = min(wait_ns, PROGRESS_EVERY_NS)
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
        interrupted = stop is not None and stop.is_set()
        ended = all(not w.thread.is_alive() for w in workers)
        end = min(now, target) if not (interrupted or ended) else now
        cur = [w.bytes for w in workers]
        deltas = [(w.id, w.direction, c - p) for w, c, p in zip(workers, cur, last, strict=True)]
        rel = end - t0
        row = interval_row(prev, rel, deltas, omitted=rel <= omit_ns and omit_ns > 0)
        rows.append(row)
        if on_interval is not None:
            on_interval(row)
        last, prev = cur, rel
        if omit_ns > 0 and tick == omit_ns:
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
                raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: the server closed the connection at once "
                                  "(a keyed netkit server needs --key)")
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
        from netkit.io import iperf3

        return iperf3.run_iperf3(cfg, on_interval, on_progress=on_progress, stop=stop)
    kind, opened, probe = open_streams(cfg)
    if probe is not None:
        for _, s, _ in opened:
            s.close()
        if on_info is not None:
            on_info("the server is an iperf3 server: speaking iperf3's protocol")
        from netkit.io import iperf3

        return iperf3.run_iperf3(cfg, on_interval, on_progress=on_progress, stop=stop,
                                 ctrl=probe.sock, cookie=probe.header, first_state=probe.extra)
    proto = "netkit" if kind == "netkit" else "plain"
    send_view = memoryview(bytearray(os.urandom(min(cfg.block_size, 4096))) * (cfg.block_size // 4096 + 1))
    send_view = send_view[: cfg.block_size]
    recv_size = max(cfg.block_size, RECV_BUF_MIN)
    workers: list[StreamWorker] = []
    for i, (d, sock, extra) in enumerate(opened):
        set_kernel_timeouts(sock, STREAM_IO_TIMEOUT_S)
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
    errors = [f"stream {w.id}: {w.error}" for w in workers if w.error]
    if errors and all(w.error for w in workers) and not clock.interrupted:
        raise CheckFailed("; ".join(errors))
    omit_ns = int(cfg.omit_s * NS)
    results = [_stream_result(w, proto, clock.start_ns + omit_ns) for w in workers]
    summary = summarize(results, clock.cpu_seconds, max(clock.end_ns - clock.start_ns, 1))
    note = None
    if proto == "plain":
        note = "not a netkit server: rates are counted by the sender (bytes queued, not bytes arrived)"
        if cfg.reverse and not cfg.bidir:
            note = "not a netkit server: the client counted what it received"
    if errors:
        note = (note + "; " if note else "") + "; ".join(errors)
    if any(w.cut for w in workers):
        cut = "the server ended the test early (its --max-duration limit)"
        note = (note + "; " if note else "") + cut
    return ThroughputResult(
        protocol="tcp", streams=cfg.parallel, reverse=cfg.reverse, duration_s=cfg.duration_s,
        intervals=tuple(rows), summary=summary, counted_by=overall_counted_by(results),
        target=format_host_port(cfg.host, cfg.port), server=proto, bidir=cfg.bidir, omit_s=cfg.omit_s,
        block_size=cfg.block_size, interrupted=clock.interrupted, note=note,
    )


def _stream_result(w: StreamWorker, proto: str, measure_start_ns: int) -> StreamResult:
    """Combine what this side counted with the server's report (when there is one)."""
    own = w.bytes - w.bytes_at_omit
    own_ns = max(w.stop_ns - measure_start_ns, 1)
    info = w.info
    rep = w.report
    if w.direction == SEND:
        if proto == "netkit" and rep is not None:
            return stream_result(
                w.id, SEND, sent_bytes=own, sent_ns=own_ns, received_bytes=rep.bytes - rep.omitted_bytes,
                received_ns=rep.elapsed_ns, retransmits=info.retransmits if info else None,
                rtt_us=info.rtt_us if info else None, counted_by="receiver",
            )
        return stream_result(
            w.id, SEND, sent_bytes=own, sent_ns=own_ns, received_bytes=None, received_ns=None,
            retransmits=info.retransmits if info else None, rtt_us=info.rtt_us if info else None,
            counted_by="sender",
        )
    if proto == "netkit" and rep is not None:
        return stream_result(
            w.id, RECV, sent_bytes=rep.bytes - rep.omitted_bytes, sent_ns=rep.elapsed_ns, received_bytes=own,
            received_ns=own_ns, retransmits=rep.retransmits, rtt_us=rep.rtt_us, counted_by="receiver",
        )
    return stream_result(
        w.id, RECV, sent_bytes=None, sent_ns=None, received_bytes=own, received_ns=own_ns,
        retransmits=None, rtt_us=None, counted_by="receiver",
    )


async def measure_throughput_async(cfg: ThroughputConfig, on_interval: IntervalSink | None = None,
                                   *, stop: threading.Event | None = None) -> ThroughputResult:
    """The async twin: the measurement runs in a thread (its data path is threads anyway)."""
    import asyncio

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: measure_throughput(cfg, on_interval, stop=stop))


# ----- UDP: paced probe packets through an echo reflector -------------------------------------------

UDP_DEFAULT_SIZE = 1400
UDP_REPLY_TIMEOUT_NS = 1_000_000_000  # a reply later than this counts as late, not received
UDP_TAIL_S = 0.5  # after the last send, wait this long for stragglers


class UdpWorker:
    """One UDP stream: a paced sender thread and a receiver thread sharing one connected socket.

    Duck-types the parts of :class:`StreamWorker` that :func:`run_clock` uses. ``bytes`` counts
    what came back from the reflector (interval rows show the round-trip goodput).
    """

    def __init__(self, sid: int, sock: socket.socket, size: int, rate_bps: float, key: Any = None) -> None:
        from netkit.core.accounting import Accounting

        self.id = sid
        self.direction = "echo"
        self.sock = sock
        self.size = size
        self.gap_ns = max(1, int(size * 8 * NS / rate_bps))
        self.session = secrets.randbits(63)
        self.key = key  # issue 10: sign every probe (and the query) with this netkit.core.keyed.Key
        if key is not None:
            from netkit.io.server_guard import new_keyed_session

            self.session = new_keyed_session()
        self.acc = Accounting(UDP_REPLY_TIMEOUT_NS, keep_rtts=False)
        self.lock = threading.Lock()
        self.bytes = 0
        self.bytes_at_omit = 0
        self.sent_bytes = 0
        self.deadline_ns = 0
        self.stopping = False
        self.recv_done = False
        self.start_ns = 0
        self.stop_ns = 0
        self.error: str | None = None
        self.jitter_ns = 0.0
        self._prev_transit: int | None = None
        self.query_count: int | None = None
        self.rtt_sum_ns = 0
        self.rtt_n = 0
        self.thread = threading.Thread(target=self._send, name=f"netkit-udp-send-{sid}", daemon=True)
        self.rthread = threading.Thread(target=self._recv, name=f"netkit-udp-recv-{sid}", daemon=True)

    def start(self, start_ns: int, deadline_ns: int) -> None:
        self.start_ns = start_ns
        self.deadline_ns = deadline_ns
        self.rthread.start()
        self.thread.start()

    def _send(self) -> None:
        from netkit.core import packet

        buf = bytearray(self.size)
        send = self.sock.send
        now = time.perf_counter_ns
        acc, lock, gap, t0 = self.acc, self.lock, self.gap_ns, self.start_ns
        key = self.key
        from netkit.core.keyed import sign_probe_into as sign
        seq = 0
        try:
            while not self.stopping:
                t = now()
                if t >= self.deadline_ns:
                    break
                due = (t - t0) // gap + 1  # packets that should have left by now
                while seq < due:
                    ts = now()
                    packet.encode_into(buf, self.session, seq, ts)
                    if key is not None:
                        sign(key, buf)
                    with lock:
                        acc.on_sent(seq, ts)
                    try:
                        send(buf)
                    except (BlockingIOError, TimeoutError, ConnectionRefusedError):
                        pass  # a full socket buffer or an ICMP error: that probe is lost
                    seq += 1
                    self.sent_bytes += self.size
                wait = t0 + seq * gap - now()
                if wait > 200_000:
                    time.sleep((wait - 100_000) / NS)
                elif wait > 0:
                    time.sleep(0)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
        self.stop_ns = now()

    def _recv(self) -> None:
        from netkit.core import packet

        buf = bytearray(max(self.size, 2048))
        view = memoryview(buf)
        recv_into = self.sock.recv_into
        now = time.perf_counter_ns
        acc, lock, session = self.acc, self.lock, self.session
        client_send = struct.Struct("!Q")
        while not self.recv_done:
            try:
                n = recv_into(buf)
            except (BlockingIOError, TimeoutError, ConnectionRefusedError):
                continue
            except OSError as exc:
                self.error = exc.strerror or str(exc)
                break
            t = now()
            ids = packet.peek_seq(view[:n])
            if ids is None or ids[0] != session:
                continue
            if buf[5] & packet.FLAG_QUERY:
                self.query_count = int.from_bytes(buf[32:40], "big")
                continue
            sent_ns = client_send.unpack_from(buf, 24)[0]
            transit = t - sent_ns
            if self._prev_transit is not None:
                self.jitter_ns += (abs(transit - self._prev_transit) - self.jitter_ns) / 16.0
            self._prev_transit = transit
            with lock:
                ev = acc.on_reply(ids[1], t, refl_count=int.from_bytes(buf[32:40], "big"))
            if ev.kind == "ok":
                self.bytes += n
                self.rtt_sum_ns += ev.rtt_ns or 0
                self.rtt_n += 1

    def final_query(self) -> None:
        """Ask the reflector how many of this session's probes reached it (one-way count)."""
        from netkit.core import keyed, packet

        q = bytearray(packet.HEADER_SIZE if self.key is None else keyed.KEYED_MIN_SIZE)
        for attempt in range(3):
            packet.encode_into(q, self.session, attempt, time.perf_counter_ns(), flags=packet.FLAG_QUERY)
            if self.key is not None:
                keyed.sign_probe_into(self.key, q)
            try:
                self.sock.send(q)
            except OSError:
                return
            deadline = time.monotonic() + 0.3
            while self.query_count is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if self.query_count is not None:
                with self.lock:
                    self.acc.on_reflector_count(self.query_count, final=True)
                return

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def close(self) -> None:
        self.recv_done = True
        self.rthread.join(2.0)
        self.sock.close()


def measure_udp_throughput(
    cfg: ThroughputConfig,
    on_interval: IntervalSink | None = None,
    *,
    on_progress: ProgressSink | None = None,
    stop: threading.Event | None = None,
) -> ThroughputResult:
    """UDP at ``cfg.rate_bps`` per stream through ``netkit serve udp --mode echo`` (or any echo)."""
    from netkit.core import packet
    from netkit.core.throughput_models import UdpSummary

    size = cfg.block_size
    if not packet.HEADER_SIZE <= size <= packet.MAX_SIZE:
        raise CheckFailed(f"UDP datagram size must be {packet.HEADER_SIZE}..{packet.MAX_SIZE} bytes")
    rate = cfg.rate_bps or 1e6
    where = format_host_port(cfg.host, cfg.port)
    workers: list[UdpWorker] = []
    try:
        for i in range(cfg.parallel):
            try:
                info = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_DGRAM)[0]
                sock = socket.socket(info[0], socket.SOCK_DGRAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
                sock.settimeout(0.2)
                sock.connect(info[4])
            except socket.gaierror as exc:
                raise resolve_error(cfg.host, cfg.port, exc) from None
            except OSError as exc:
                raise CheckFailed(f"{where}: {exc.strerror or exc}") from None
            workers.append(UdpWorker(i, sock, size, rate, key=cfg.key))
        rows, clock = run_clock(workers, cfg, on_interval, on_progress, stop)  # type: ignore[arg-type]
        for w in workers:
            w.join(JOIN_TIMEOUT_S)
        tail_end = time.monotonic() + (0.05 if clock.interrupted else UDP_TAIL_S)
        while time.monotonic() < tail_end and any(w.acc.outstanding for w in workers):
            time.sleep(0.01)
        for w in workers:
            w.final_query()
    finally:
        for w in workers:
            w.close()
    if cfg.key is not None and not clock.interrupted and all(
            w.acc.received == 0 and w.query_count is None for w in workers):
        from netkit.io.server_guard import WRONG_KEY_MESSAGE

        raise CheckFailed(WRONG_KEY_MESSAGE)  # issue 10: a keyed server drops what it cannot verify
    results = []
    accs = []
    for w in workers:
        acc = w.acc.finish(require_final_count=True)
        accs.append(acc)
        sent_ns = max(w.stop_ns - clock.start_ns, 1)  # UDP totals cover the whole run, omit included
        arrived = acc.reflector_count if acc.reflector_count is not None else acc.received
        results.append(stream_result(
            w.id, "echo", sent_bytes=w.sent_bytes, sent_ns=sent_ns, received_bytes=arrived * size,
            received_ns=sent_ns, retransmits=None, rtt_us=round(w.rtt_sum_ns / w.rtt_n / 1000) if w.rtt_n else None,
            counted_by="receiver"))
    summary = summarize(results, clock.cpu_seconds, max(clock.end_ns - clock.start_ns, 1))
    sent = sum(a.sent for a in accs)
    lost = sum(a.lost for a in accs)
    jitters = [w.jitter_ns for w in workers if w._prev_transit is not None]
    udp = UdpSummary(
        rate_bps=rate, packet_size=size, packets_sent=sent, packets_received=sum(a.received for a in accs),
        lost_packets=lost, lost_percent=round(100.0 * lost / sent, 3) if sent else None,
        duplicates=sum(a.duplicates for a in accs), reordered=sum(a.reordered for a in accs),
        jitter_ms=round(sum(jitters) / len(jitters) / 1e6, 4) if jitters else None,
        lost_forward=_sum_or_none([a.lost_forward for a in accs]),
        lost_return=_sum_or_none([a.lost_return for a in accs]),
    )
    errors = [f"stream {w.id}: {w.error}" for w in workers if w.error]
    note = "UDP round trip through an echo reflector: loss counts both directions"
    if udp.lost_forward is None:
        note += "; not netkit's reflector: received bytes are the echoed ones"
    if errors:
        note += "; " + "; ".join(errors)
    return ThroughputResult(
        protocol="udp", streams=cfg.parallel, reverse=False, duration_s=cfg.duration_s, intervals=tuple(rows),
        summary=summary, counted_by="receiver", target=where, server="netkit" if udp.lost_forward is not None
        else "plain", bidir=False, omit_s=cfg.omit_s, block_size=size, interrupted=clock.interrupted, note=note,
        udp=udp,
    )


def _sum_or_none(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)

