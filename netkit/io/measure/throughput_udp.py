"""UDP throughput through netkit's echo reflector (``netkit serve udp --mode echo``, or any echo service).

Paced probe packets (:class:`netkit.io.measure.udp_streams.PacedSender`) go out and come back; a
final count query asks the reflector how many arrived, which splits loss by direction. (An
``iperf3 -s`` runs iperf3's own UDP test instead: :mod:`netkit.io.measure.iperf3_udp`; which one
answers is decided in :mod:`netkit.io.measure.throughput`.)

Local drops are never network loss: socket buffers are sized for the rate, the socket's own drop
counter (``/proc/net/udp``) is read before and after the run, and datagrams this host dropped are
reported apart (``local_drops``).
"""

from __future__ import annotations

import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable

from netkit.core import packet
from netkit.core.accounting import Accounting
from netkit.core.errors import CheckFailed
from netkit.core.keyed import Key, sign_probe_into
from netkit.core.targets import format_host_port
from netkit.core.throughput_models import (
    NS,
    CountedBy,
    Direction,
    ServerKind,
    ThroughputConfig,
    ThroughputInterval,
    ThroughputResult,
    Transport,
    UdpSummary,
    local_drop_count,
    shortfall_warning,
    stream_result,
    summarize_streams,
)
from netkit.core.units import seconds_text
from netkit.io.measure.streams import IntervalSink, ProgressSink, RunClock, run_clock
from netkit.io.measure.udp_streams import SENDER_STOP_S, PacedSender, open_udp
from netkit.io.resolve import PORT_UNREACHABLE
from netkit.io.udp_buffers import socket_drops

UDP_DEFAULT_SIZE = 1400
UDP_REPLY_TIMEOUT_NS = 1_000_000_000  # a reply later than this counts as late, not received
UDP_TAIL_S = 0.5  # after the last send, wait at most this long for replies still on their way
TAIL_QUIET_MIN_NS = 50_000_000  # replies stopped for this long (or 4 RTTs): the rest are lost
TAIL_NO_RTT_NS = 200_000_000  # nothing answered during the whole run: a short last chance
STALL_S = 3.0  # no reply for this long: the UDP path has stopped answering (a failure)


class UdpWorker(PacedSender):
    """One UDP stream through an echo reflector: the paced sender plus a receiver thread.

    ``bytes`` counts what came back from the reflector (interval rows show the round-trip goodput).
    """

    direction = Direction.ECHO

    def __init__(self, sid: int, sock: socket.socket, size: int, rate_bps: float, key: Key | None = None) -> None:
        super().__init__(sid, sock, size, rate_bps)
        self.session = secrets.randbits(63)
        self.key = key  # sign every probe (and the query) with this netkit.core.keyed.Key
        if key is not None:
            from netkit.io.servers.server_guard import new_keyed_session

            self.session = new_keyed_session()
        self.acc = Accounting(UDP_REPLY_TIMEOUT_NS, keep_rtts=False)
        self.lock = threading.Lock()
        self.bytes = 0
        self.recv_done = False
        self.jitter_ns = 0.0
        self._prev_transit: int | None = None
        self.query_count: int | None = None
        self.rtt_sum_ns = 0
        self.rtt_n = 0
        self.last_reply_ns = 0
        self.recv_refused = False
        self.rthread = threading.Thread(target=self._recv, name=f"netkit-udp-recv-{sid}", daemon=True)

    def start(self, start_ns: int, deadline_ns: int) -> None:
        self.rthread.start()
        super().start(start_ns, deadline_ns)

    def _stamp(self, buf: bytearray, slot: int, t_ns: int) -> None:
        packet.encode_into(buf, self.session, slot, t_ns)
        if self.key is not None:
            sign_probe_into(self.key, buf)
        with self.lock:
            self.acc.on_sent(slot, t_ns)

    def _failed(self, slot: int) -> None:
        with self.lock:
            self.acc.on_error(slot)  # it never left: not outstanding (counted as a local drop)

    def _recv(self) -> None:
        buf = bytearray(max(self.size, 2048))
        view = memoryview(buf)
        recv_into = self.sock.recv_into
        now = time.perf_counter_ns
        acc, lock, session = self.acc, self.lock, self.session
        client_send = struct.Struct("!Q")
        while not self.recv_done:
            try:
                n = recv_into(buf)
            except (BlockingIOError, TimeoutError, InterruptedError):
                continue
            except ConnectionRefusedError:
                self.recv_refused = True
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
            self.last_reply_ns = t  # an echoed probe (not the count query's answer)
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
        """Ask the reflector how many of this session's probes reached it (one-way count).

        Called only once the sender has stopped: a count taken while probes still leave would
        call the late ones lost.
        """
        from netkit.core import keyed

        q = bytearray(packet.HEADER_SIZE if self.key is None else keyed.KEYED_MIN_SIZE)
        attempts = 3 if self.acc.received or self.acc.late else 1  # a silent peer: ask once
        for attempt in range(attempts):
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

    def close(self) -> None:
        self.recv_done = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the receiver now, not at its next timeout
        except OSError:
            pass
        self.rthread.join(2.0)
        self.sock.close()


def wait_replies(workers: list[UdpWorker], limit_s: float) -> None:
    """After the last send: wait for replies still on their way, at most ``limit_s``.

    Lost probes stay outstanding until their timeout, so waiting for none outstanding would
    always take ``limit_s`` under loss: stop as well once replies have stopped coming for a few
    round trips.
    """
    start = time.perf_counter_ns()
    end = start + int(limit_s * NS)
    rtts = [w.rtt_sum_ns / w.rtt_n for w in workers if w.rtt_n]
    quiet_ns = max(TAIL_QUIET_MIN_NS, int(4 * max(rtts))) if rtts else TAIL_NO_RTT_NS
    while True:
        now = time.perf_counter_ns()
        if now >= end or not any(w.acc.outstanding for w in workers):
            return
        last = max(max(w.last_reply_ns for w in workers), start)
        if now - last > quiet_ns:
            return
        time.sleep(0.005)


def _stall_watch(workers: list[UdpWorker], failure: list[str], where: str) -> Callable[[], None]:
    """A check for the clock's wake-ups: end the run when the path stopped answering."""

    def watch() -> None:
        if failure:
            return
        now = time.perf_counter_ns()
        for w in workers:
            if w.refused or w.recv_refused:
                # every command words this failure the same way, so scripts can match it
                failure.append(f"{where}: {PORT_UNREACHABLE}")
            elif now - (w.last_reply_ns or w.start_ns) > max(STALL_S * NS, 3 * w.gap_ns):  # slow rates: 3 gaps
                if w.last_reply_ns:
                    failure.append(f"{where}: the UDP path stopped answering: no reply for {seconds_text(STALL_S)} "
                                   f"after {(w.last_reply_ns - w.start_ns) / NS:.1f}s of the test")
                else:
                    failure.append(f"{where}: nothing answered UDP for {seconds_text(STALL_S)} (no echo reflector "
                                   "or iperf3 server there, or the path drops UDP)")
            if failure:
                for x in workers:
                    x.stopping = True
                    x.deadline_ns = 0
                return

    return watch


def measure_reflector(
    cfg: ThroughputConfig,
    on_interval: IntervalSink | None = None,
    *,
    on_progress: ProgressSink | None = None,
    stop: threading.Event | None = None,
) -> ThroughputResult:
    """UDP at ``cfg.rate_bps`` per stream through an echo reflector."""
    size = cfg.block_size
    if not packet.HEADER_SIZE <= size <= packet.MAX_SIZE:
        raise CheckFailed(f"UDP datagram size must be {packet.HEADER_SIZE}..{packet.MAX_SIZE} bytes")
    rate = 1e6 if cfg.rate_bps is None else cfg.rate_bps  # iperf3's default; 0: unpaced
    where = format_host_port(cfg.host, cfg.port)
    workers: list[UdpWorker] = []
    failure: list[str] = []
    try:
        for i in range(cfg.parallel):
            workers.append(UdpWorker(i, open_udp(cfg, rate), size, rate, key=cfg.key))
        drops_before = [socket_drops(w.sock) for w in workers]
        # once the watch has found the run failed, its cut-short interval is no result to show: the
        # error is (a "0 B 0 bit/s" line on stdout above "port unreachable" read as a measurement)
        sink = None if on_interval is None else (lambda row: None if failure else on_interval(row))
        rows, clock = run_clock(workers, cfg, sink, on_progress, stop,
                                watch=_stall_watch(workers, failure, where))
        for w in workers:
            w.join(SENDER_STOP_S)
        senders_stopped = not any(w.thread.is_alive() for w in workers)
        if not failure:
            wait_replies(workers, 0.05 if clock.interrupted else UDP_TAIL_S)
            if senders_stopped:  # the reflector's count is exact only once nothing more leaves
                for w in workers:
                    w.final_query()
        drops_after = [socket_drops(w.sock) for w in workers]
    finally:
        for w in workers:
            w.close()
    end_ns = clock.end_ns
    if failure and not clock.interrupted:
        raise CheckFailed(failure[0])
    answered = any(w.acc.received or w.acc.late or w.query_count is not None for w in workers)
    if not answered and not clock.interrupted:
        if cfg.key is not None:
            from netkit.io.servers.server_guard import WRONG_KEY_MESSAGE

            raise CheckFailed(WRONG_KEY_MESSAGE)  # a keyed server drops what it cannot verify
        errors = [w.error for w in workers if w.error]
        if errors:  # the kernel said why (no route to host, network unreachable): say that
            raise CheckFailed(f"{where}: {errors[0]}")
        sent = sum(w.accepted for w in workers)
        raise CheckFailed(f"{where}: nothing answered {sent} UDP datagrams in {(end_ns - clock.start_ns) / NS:.1f}s "
                          "(no echo reflector or iperf3 server there, or the path drops UDP)")
    return _reflector_result(cfg, workers, rows, clock, rate, drops_before, drops_after, senders_stopped)


def _reflector_result(cfg: ThroughputConfig, workers: list[UdpWorker], rows: list[ThroughputInterval],
                      clock: RunClock, rate: float,
                      drops_before: list[int | None], drops_after: list[int | None],
                      senders_stopped: bool) -> ThroughputResult:
    size = cfg.block_size
    results = []
    accs = []
    for w in workers:
        acc = w.acc.finish(require_final_count=True)
        accs.append(acc)
        sent_ns = max(w.stop_time(clock.end_ns) - clock.start_ns, 1)  # UDP totals cover the whole run
        arrived = acc.reflector_count if acc.reflector_count is not None else acc.received
        # what arrived kept arriving after the last send (queues drain): until the last echo came back
        received_ns = max(sent_ns, w.last_reply_ns - clock.start_ns)
        results.append(stream_result(
            w.id, Direction.ECHO, sent_bytes=w.sent_bytes, sent_ns=sent_ns, received_bytes=arrived * size,
            received_ns=received_ns, retransmits=None, rtt_us=round(w.rtt_sum_ns / w.rtt_n / 1000) if w.rtt_n else None,
            counted_by=CountedBy.RECEIVER))
    summary = summarize_streams(results, clock.cpu_seconds, max(clock.end_ns - clock.start_ns, 1))
    failures = sum(w.send_failures for w in workers)
    recv_drops = local_drop_count(drops_before, drops_after, 0)
    local = None if recv_drops is None else recv_drops + failures
    sent = sum(a.sent for a in accs) - failures  # what the kernel took
    lost = max(0, sum(a.lost for a in accs) - (local if local is not None else failures))
    lost_forward = _sum_or_none([a.lost_forward for a in accs])
    lost_return = _sum_or_none([a.lost_return for a in accs])
    if lost_forward is not None:
        lost_forward = max(0, lost_forward - failures)
    if lost_return is not None and recv_drops is not None:
        lost_return = max(0, lost_return - recv_drops)
    jitters = [w.jitter_ns for w in workers if w._prev_transit is not None]
    reached = all(w.reached(clock.end_ns) for w in workers)
    udp = UdpSummary(
        rate_bps=rate, packet_size=size, packets_sent=sent, packets_received=sum(a.received for a in accs),
        lost_packets=lost, lost_percent=round(100.0 * lost / sent, 3) if sent else None,
        duplicates=sum(a.duplicates for a in accs), reordered=sum(a.reordered for a in accs),
        jitter_ms=round(sum(jitters) / len(jitters) / 1e6, 4) if jitters else None,
        lost_forward=lost_forward, lost_return=lost_return, local_drops=local,
        rate_reached=reached if rate > 0 else None,
    )
    warnings: list[str] = []
    if not reached and not clock.interrupted:
        warnings.append(shortfall_warning(rate, [(w.sent_bytes, max(w.stop_time(clock.end_ns) - w.start_ns, 1))
                                                 for w in workers]))
    errors = [f"stream {w.id}: {w.error}" for w in workers if w.error]
    note = "UDP round trip through an echo reflector: loss counts both directions"
    if not senders_stopped:
        note += "; a sender did not stop in time: no per-direction split"
    elif udp.lost_forward is None:
        note += "; not netkit's reflector: received bytes are the echoed ones"
    if cfg.omit_s > 0:
        # The probe accounting (and the reflector's count) is one sequence over the whole run: the
        # omitted part is marked in the intervals but cannot be taken out of the totals and loss.
        note += "; --omit marks the first intervals only: the totals and the loss cover the whole run"
    if errors:
        note += "; " + "; ".join(errors)
    return ThroughputResult(
        protocol=Transport.UDP, streams=cfg.parallel, reverse=False, duration_s=cfg.duration_s, intervals=tuple(rows),
        summary=summary, counted_by=CountedBy.RECEIVER, target=format_host_port(cfg.host, cfg.port),
        server=ServerKind.NETKIT if udp.lost_forward is not None else ServerKind.PLAIN, bidir=False, omit_s=cfg.omit_s,
        block_size=size, interrupted=clock.interrupted, note=note, udp=udp, warnings=tuple(warnings),
    )


def _sum_or_none(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)
