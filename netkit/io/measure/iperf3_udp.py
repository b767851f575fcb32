"""iperf3's UDP test against ``iperf3 -s``: the client's side of ``iperf3 -c HOST -u``.

The control connection is :class:`netkit.io.measure.iperf3.Iperf3Control`, its state bytes and JSON
messages :mod:`netkit.core.iperf3_wire`'s; the wire details of the UDP streams (connect datagrams,
the datagram header, the results fields) are :mod:`netkit.core.iperf3_udp`'s. This module runs the
states:

PARAM_EXCHANGE   the TCP parameters with ``udp`` instead of ``tcp``, plus ``bandwidth``
CREATE_STREAMS   one connected UDP socket per stream, each announced by a connect datagram
                 and confirmed by the server's reply before the next one
TEST_RUNNING     paced senders (:class:`netkit.io.measure.udp_streams.PacedSender`) with iperf3's
                 header; the client ends the test (TEST_END) once its datagrams have left the
                 host: the server counts only what arrives before it reads TEST_END
EXCHANGE_RESULTS our ``packets`` (sent) go out; the server's ``bytes``, ``packets``, ``errors``
                 and ``jitter`` come back: loss and jitter are the server's

Loss is reported as datagrams sent minus datagrams the server received (``bytes / len``), which
also counts the ones lost after the last arrival; iperf3's own gap count is kept beside it.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

from netkit.core import iperf3_udp as wire
from netkit.core import iperf3_wire as ctl
from netkit.core.errors import CheckFailed
from netkit.core.iperf3_wire import ClientStreamCount, Iperf3State
from netkit.core.targets import format_host_port
from netkit.core.throughput_models import (
    NS,
    SEND,
    CountedBy,
    ServerKind,
    ThroughputConfig,
    ThroughputInterval,
    ThroughputResult,
    Transport,
    UdpSummary,
    shortfall_warning,
    stream_result,
    summarize_streams,
)
from netkit.core.units import seconds_text
from netkit.io.measure import streams as eng
from netkit.io.measure import udp_streams as us
from netkit.io.measure.iperf3 import CLIENT_VERSION, Iperf3Control, open_control

CONNECT_ATTEMPTS = 3  # the connect datagram (or its answer) may be lost: send it again
DRAIN_WAIT_S = 1.0  # how long datagrams still queued in this host may take to leave
#: After they left: time for the server to read the last ones (iperf3's default receive buffer
#: holds ~100 datagrams, under a millisecond of its reading). Kept short: the server's own
#: elapsed time, which its received rate divides by, includes it.
ARRIVAL_GRACE_S = 0.02
UNPACED_ESTIMATE_BPS = 100e9  # -b 0: assume this for choosing the counter width


@dataclasses.dataclass
class Control:
    """A control connection that has sent its cookie; ``first`` holds a state byte already read."""

    sock: socket.socket
    cookie: bytes
    first: bytes = b""


def detect(cfg: ThroughputConfig) -> Control | None:
    """Does an iperf3 server listen on TCP at the target? Its control connection if so, else None.

    iperf3 answers a 37-byte cookie with PARAM_EXCHANGE (or ACCESS_DENIED when busy). Anything
    else (refused, silence for ``detect_timeout_s``, other bytes) means: not iperf3.
    """
    timeout = min(cfg.detect_timeout_s, cfg.connect_timeout_s)
    try:
        sock = socket.create_connection((cfg.host, cfg.port), timeout=timeout)
    except OSError:  # includes resolution errors: the UDP path reports those
        return None
    cookie = ctl.make_cookie()
    try:
        sock.settimeout(timeout)
        sock.sendall(cookie)
        got = sock.recv(1)
    except OSError:
        sock.close()
        return None
    if got and ctl.is_greeting(got):
        return Control(sock, cookie, got)
    sock.close()
    return None


class Iperf3UdpSender(us.PacedSender):
    """One iperf3 UDP stream: datagrams carrying the send time and a counter from 1.

    The counter rises only for datagrams the kernel took, as iperf3's own sender does, so a
    refused send leaves no gap the server would count as loss. ``bytes`` (for interval rows) are
    the bytes sent: the server's count comes at the end.
    """

    def __init__(self, sid: int, sock: socket.socket, size: int, rate_bps: float, counters_64bit: bool) -> None:
        super().__init__(sid, sock, size, rate_bps)
        self.counters_64bit = counters_64bit

    @property
    def bytes(self) -> int:
        return self.sent_bytes

    def _stamp(self, buf: bytearray, slot: int, t_ns: int) -> None:
        wire.encode_header_into(buf, self.accepted + 1, t_ns, self.counters_64bit)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def open_stream(cfg: ThroughputConfig, rate_bps: float) -> socket.socket:
    """A UDP socket the iperf3 server has accepted (connect datagram sent, its reply read)."""
    where = format_host_port(cfg.host, cfg.port)
    sock = us.open_udp(cfg, rate_bps)
    per_try = max(cfg.connect_timeout_s / CONNECT_ATTEMPTS, us.SOCKET_TIMEOUT_S)
    try:
        for _ in range(CONNECT_ATTEMPTS):
            sock.send(wire.connect_message())
            deadline = time.monotonic() + per_try
            while time.monotonic() < deadline:
                try:
                    data = sock.recv(64)
                except (BlockingIOError, TimeoutError, InterruptedError):
                    continue
                if wire.is_connect_reply(data):
                    return sock
    except ConnectionRefusedError:
        sock.close()
        raise CheckFailed(f"{where}: the iperf3 server's UDP port is closed (ICMP port unreachable)") from None
    except OSError as exc:
        sock.close()
        raise CheckFailed(f"{where}: iperf3 UDP stream failed: {exc.strerror or exc}") from None
    sock.close()
    raise CheckFailed(f"{where}: the iperf3 server did not answer the UDP stream's connect datagram within "
                      f"{seconds_text(per_try * CONNECT_ATTEMPTS)} (UDP to this port is dropped on the path?)")


def run_iperf3_udp(
    cfg: ThroughputConfig,
    on_interval: eng.IntervalSink | None = None,
    *,
    on_progress: eng.ProgressSink | None = None,
    stop: threading.Event | None = None,
    ctrl: Control | None = None,
) -> ThroughputResult:
    """One UDP test against an iperf3 server (``ctrl``: a control connection :func:`detect` opened)."""
    if ctrl is None:
        ctrl = Control(*open_control(cfg))
    # Each answer of the server within --connect-timeout, as in the TCP test.
    control = Iperf3Control(ctrl.sock, ctrl.first, cfg.connect_timeout_s)
    workers: list[Iperf3UdpSender] = []
    try:
        return _run(cfg, control, workers, on_interval, on_progress, stop)
    finally:
        for w in workers:
            w.stopping = True
            w.deadline_ns = 0
            w.join(us.SENDER_STOP_S)
            w.close()
        try:
            ctrl.sock.close()
        except OSError:
            pass


def _run(
    cfg: ThroughputConfig,
    control: Iperf3Control,
    workers: list[Iperf3UdpSender],
    on_interval: eng.IntervalSink | None,
    on_progress: eng.ProgressSink | None,
    stop: threading.Event | None,
) -> ThroughputResult:
    rate = 1e6 if cfg.rate_bps is None else cfg.rate_bps  # iperf3's default; 0: unpaced
    size = cfg.block_size
    counters_64bit = wire.needs_64bit_counters((rate or UNPACED_ESTIMATE_BPS) * cfg.duration_s / 8 / size)
    run_cfg = dataclasses.replace(cfg, omit_s=0.0)  # iperf3 omits on its own timer: not used here
    rows: list[ThroughputInterval] = []
    clock: eng.RunClock | None = None
    left_ns = 0
    server: dict[int, wire.UdpStreamReport] = {}
    failure: list[CheckFailed] = []
    overall = time.monotonic() + cfg.duration_s + 60.0
    while True:
        if time.monotonic() > overall:
            raise CheckFailed("iperf3 test did not finish in time")
        state = control.state()
        if state == Iperf3State.PARAM_EXCHANGE:
            control.send_json(ctl.udp_params(cfg, CLIENT_VERSION, rate, counters_64bit))
        elif state == Iperf3State.CREATE_STREAMS:
            for i in range(cfg.parallel):
                workers.append(Iperf3UdpSender(ctl.stream_id(i), open_stream(cfg, rate), size, rate, counters_64bit))
        elif state == Iperf3State.TEST_START:
            if len(workers) != cfg.parallel:
                raise CheckFailed("iperf3 server started the test before the streams were created")
        elif state == Iperf3State.TEST_RUNNING:
            def watch() -> None:
                # The server may end the test early (terminate, error): stop the senders.
                if not failure and control.readable():
                    failure.append(control.failure(control.state()))
                    for w in workers:
                        w.stopping = True
                        w.deadline_ns = 0

            rows, clock = eng.run_clock(workers, run_cfg, on_interval, on_progress, stop, watch=watch)
            for w in workers:
                w.join(us.SENDER_STOP_S)
            if failure:
                raise failure[0]
            # The server stops counting when it reads TEST_END: let what is still queued here leave first.
            us.wait_sent([w.sock for w in workers], DRAIN_WAIT_S)
            left_ns = time.perf_counter_ns()  # the last datagram has left this host
            time.sleep(ARRIVAL_GRACE_S)
            control.send_state(Iperf3State.TEST_END)
        elif state == Iperf3State.EXCHANGE_RESULTS:
            assert clock is not None
            wall_s = max(clock.end_ns - clock.start_ns, 1) / NS
            cpu = clock.cpu_seconds or 0.0
            mine = [ClientStreamCount(w.id, SEND, w.sent_bytes, None,
                                      max(w.stop_time(clock.end_ns) - clock.start_ns, 1) / NS)
                    for w in workers]
            doc = ctl.results_doc(mine, (100 * cpu / wall_s, 100 * clock.cpu_user / wall_s,
                                        100 * clock.cpu_system / wall_s), 0)
            for entry, w in zip(doc["streams"], workers, strict=True):
                entry["packets"] = w.accepted  # the server's lost_percent divides by what we sent
            control.send_json(doc)
            try:
                server = wire.parse_udp_results(control.read_json())
            except ValueError as exc:
                raise CheckFailed(f"iperf3 server sent malformed results: {exc}") from None
        elif state == Iperf3State.DISPLAY_RESULTS:
            control.send_state(Iperf3State.IPERF_DONE)
            break
        elif state == Iperf3State.IPERF_DONE:
            break
        else:
            raise control.failure(state)
    assert clock is not None
    return _result(cfg, workers, server, rows, clock, rate, left_ns)


def _result(cfg: ThroughputConfig, workers: list[Iperf3UdpSender], server: dict[int, wire.UdpStreamReport],
            rows: list[ThroughputInterval], clock: eng.RunClock, rate: float, left_ns: int) -> ThroughputResult:
    """The figures. The received rate divides the server's bytes by the span they arrived over:
    from the start until the last datagram left this host (measured here), not by the server's
    own span, which also holds the wait before TEST_END and the control exchange."""
    where = format_host_port(cfg.host, cfg.port)
    size = cfg.block_size
    results = []
    for w in workers:
        sent_ns = max(w.stop_time(clock.end_ns) - clock.start_ns, 1)
        rep = server.get(w.id)
        results.append(stream_result(
            w.id, SEND, sent_bytes=w.sent_bytes, sent_ns=sent_ns,
            received_bytes=rep.bytes if rep else None, received_ns=max(sent_ns, left_ns - clock.start_ns),
            retransmits=None, rtt_us=None, counted_by=CountedBy.RECEIVER if rep else CountedBy.SENDER))
    sent = sum(w.accepted for w in workers)
    reports = [server[w.id] for w in workers if w.id in server]
    received = sum(r.bytes // size for r in reports)  # every datagram is ``size`` bytes
    if reports and received == 0 and sent > 0 and not clock.interrupted:
        raise CheckFailed(f"{where}: the iperf3 server received none of the {sent} UDP datagrams sent in "
                          f"{(clock.end_ns - clock.start_ns) / NS:.1f}s (UDP to this port is dropped on the path?)")
    summary = summarize_streams(results, clock.cpu_seconds, max(clock.end_ns - clock.start_ns, 1))
    lost = max(0, sent - received)
    reached = all(w.reached(clock.end_ns) for w in workers)
    failures = sum(w.send_failures for w in workers)
    udp = UdpSummary(
        rate_bps=rate, packet_size=size, packets_sent=sent, packets_received=received, lost_packets=lost,
        lost_percent=round(100.0 * lost / sent, 3) if sent else None, duplicates=0, reordered=0,
        jitter_ms=round(sum(r.jitter_s for r in reports) / len(reports) * 1000, 6) if reports else None,
        local_drops=failures, rate_reached=reached if rate > 0 else None,
        peer_lost_packets=sum(r.errors for r in reports) if reports else None,
    )
    warnings: list[str] = []
    if not reached and not clock.interrupted:
        warnings.append(shortfall_warning(rate, [(w.sent_bytes, max(w.stop_time(clock.end_ns) - w.start_ns, 1))
                                                    for w in workers]))
    notes = [f"stream {w.id}: {w.error}" for w in workers if w.error]
    if cfg.omit_s > 0:
        notes.insert(0, "iperf3's UDP test: --omit is not applied (every datagram counts)")
    if not reports:
        notes.append("the iperf3 server sent no results: figures are the sender's")
    return ThroughputResult(
        protocol=Transport.UDP, streams=cfg.parallel, reverse=False, duration_s=cfg.duration_s, intervals=tuple(rows),
        summary=summary, counted_by=CountedBy.RECEIVER if reports else CountedBy.SENDER, target=where,
        server=ServerKind.IPERF3,
        bidir=False, omit_s=0.0, block_size=size, interrupted=clock.interrupted, note="; ".join(notes) or None,
        udp=udp, warnings=tuple(warnings),
    )
