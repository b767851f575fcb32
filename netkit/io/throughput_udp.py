"""The UDP data path of ``netkit measure throughput --udp``: paced probe packets through an echo reflector.

One sender thread and one receiver thread per stream share a connected socket; the main thread
is the clock (:func:`netkit.io.throughput.run_clock`), exactly as for TCP streams.
"""

from __future__ import annotations

import secrets
import socket
import struct
import threading
import time
from typing import Any

from netkit.core.errors import CheckFailed, RuntimeFailure
from netkit.core.targets import format_host_port
from netkit.core.throughput_models import NS, ThroughputConfig, ThroughputResult, stream_result, summarize
from netkit.io.throughput import JOIN_TIMEOUT_S, IntervalSink, ProgressSink, run_clock

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
                raise RuntimeFailure(f"cannot resolve {cfg.host}: {exc.strerror}") from None
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

