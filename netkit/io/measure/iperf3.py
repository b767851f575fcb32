"""A client for iperf3's own control protocol, so ``measure throughput`` can test any ``iperf3 -s``.

The protocol (cookie, state bytes, length-prefixed JSON, the parameter and results documents) is
:mod:`netkit.core.iperf3_wire`, pure code; this module is a small blocking state loop over a
control connection, with the data streams on the shared stream engine
(:mod:`netkit.io.measure.streams`). :class:`Iperf3Control` also serves the UDP test
(:mod:`netkit.io.measure.iperf3_udp`).
"""

from __future__ import annotations

import dataclasses
import select
import socket
import threading
import time
from typing import Any

from netkit import __version__
from netkit.core import iperf3_wire as wire
from netkit.core.errors import CheckFailed
from netkit.core.iperf3_wire import ClientStreamCount, Iperf3State, ServerStreamCount
from netkit.core.targets import format_host_port
from netkit.core.throughput_models import (
    NS,
    RECV,
    SEND,
    CountedBy,
    ServerKind,
    StreamResult,
    ThroughputConfig,
    ThroughputInterval,
    ThroughputResult,
    Transport,
    after_omit,
    overall_counted_by,
    stream_result,
    summarize_streams,
)
from netkit.core.units import seconds_text
from netkit.io.measure import streams as eng

CTRL_TIMEOUT_S = 10.0
CLIENT_VERSION = f"netkit-{__version__}"  # what iperf3 logs as the client's version


class Iperf3Control:
    """The control connection: state bytes and length-prefixed JSON, each with a timeout."""

    def __init__(self, sock: socket.socket, first: bytes = b"", timeout_s: float = CTRL_TIMEOUT_S) -> None:
        self.sock = sock
        self.pending = first
        self.timeout_s = timeout_s  # each answer from the server (--connect-timeout)
        sock.settimeout(timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def _exact(self, n: int) -> bytes:
        data = bytearray()
        if self.pending:
            data += self.pending[:n]
            self.pending = self.pending[n:]
        while len(data) < n:
            try:
                chunk = self.sock.recv(n - len(data))
            except TimeoutError:
                raise CheckFailed(f"iperf3 server did not answer within {seconds_text(self.timeout_s)}") from None
            except OSError as exc:
                raise CheckFailed(f"iperf3 control connection failed: {exc.strerror or exc}") from None
            if not chunk:
                raise CheckFailed("iperf3 server closed the control connection")
            data += chunk
        return bytes(data)

    def state(self) -> int:
        return wire.decode_state(self._exact(1))

    def readable(self) -> bool:
        if self.pending:
            return True
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r)

    def send_state(self, state: Iperf3State) -> None:
        self.sock.sendall(wire.encode_state(state))

    def send_json(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(wire.encode_json(obj))

    def read_json(self) -> Any:
        return wire.decode_json(self._exact(wire.json_length(self._exact(4))))

    def failure(self, state: int) -> CheckFailed:
        """The error for ``state`` where the test cannot go on (reads SERVER_ERROR's detail)."""
        if state == Iperf3State.SERVER_ERROR:
            return CheckFailed(wire.error_detail(self._exact(wire.ERROR_DETAIL.size)))
        return CheckFailed(wire.failure_text(state))


def open_control(cfg: ThroughputConfig) -> tuple[socket.socket, bytes]:
    """Connect to the iperf3 server and send a fresh cookie: the control connection of a test
    (TCP or UDP) that no auto-detection opened first. Returns the socket and the cookie."""
    sock = eng.connect(cfg.host, cfg.port, cfg.connect_timeout_s)
    cookie = wire.make_cookie()
    try:
        sock.settimeout(cfg.connect_timeout_s)
        sock.sendall(cookie)
    except OSError as exc:
        sock.close()
        raise CheckFailed(f"iperf3 control connection failed: {exc.strerror or exc}") from None
    return sock, cookie


def run_iperf3(
    cfg: ThroughputConfig,
    on_interval: eng.IntervalSink | None = None,
    *,
    on_progress: eng.ProgressSink | None = None,
    stop: threading.Event | None = None,
    ctrl: socket.socket | None = None,
    cookie: bytes | None = None,
    first_state: bytes = b"",
) -> ThroughputResult:
    """One TCP test against an iperf3 server. ``ctrl``/``cookie``: a control connection that
    auto-detection already opened (its 37-byte probe was taken as the cookie)."""
    if ctrl is None:
        ctrl, cookie = open_control(cfg)
    assert cookie is not None and len(cookie) == wire.COOKIE_SIZE
    control = Iperf3Control(ctrl, first_state, cfg.connect_timeout_s)
    workers: list[eng.StreamWorker] = []
    try:
        return _run(cfg, control, cookie, workers, on_interval, on_progress, stop)
    finally:
        for w in workers:
            w.close()
        try:
            ctrl.close()
        except OSError:
            pass


def _run(
    cfg: ThroughputConfig,
    control: Iperf3Control,
    cookie: bytes,
    workers: list[eng.StreamWorker],
    on_interval: eng.IntervalSink | None,
    on_progress: eng.ProgressSink | None,
    stop: threading.Event | None,
) -> ThroughputResult:
    dirs = cfg.directions()
    send_view = eng.send_block(cfg.block_size)
    recv_size = max(cfg.block_size, eng.RECV_BUF_MIN)
    rows: list[ThroughputInterval] = []
    clock: eng.RunClock | None = None
    server: dict[int, ServerStreamCount] = {}
    failure: list[CheckFailed] = []
    overall = time.monotonic() + cfg.duration_s + cfg.omit_s + 60.0
    done = False
    while not done:
        if time.monotonic() > overall:
            raise CheckFailed("iperf3 test did not finish in time")
        state = control.state()
        if state == Iperf3State.PARAM_EXCHANGE:
            # netkit leaves out the omit period itself, from the same leading bytes on both sides
            # (see _result): the server counts the whole test, so its results carry the totals
            # that takes, and --omit need not be whole seconds.
            whole = dataclasses.replace(cfg, duration_s=cfg.duration_s + cfg.omit_s, omit_s=0.0)
            control.send_json(wire.params_for(whole, CLIENT_VERSION))
        elif state == Iperf3State.CREATE_STREAMS:
            for i, d in enumerate(dirs):
                sock = eng.connect(cfg.host, cfg.port, cfg.connect_timeout_s)
                try:
                    sock.settimeout(cfg.connect_timeout_s)
                    sock.sendall(cookie)
                except OSError as exc:
                    sock.close()
                    raise CheckFailed(f"iperf3 data stream failed: {exc.strerror or exc}") from None
                eng.set_kernel_timeouts(sock, eng.IO_TICK_S)
                workers.append(eng.StreamWorker(wire.stream_id(i), d, sock, ServerKind.IPERF3, send_view, recv_size))
        elif state == Iperf3State.TEST_START:
            if len(workers) != len(dirs):
                raise CheckFailed("iperf3 server started the test before the streams were created")
        elif state == Iperf3State.TEST_RUNNING:
            def watch() -> None:
                # The server may end the test early (terminate, error): stop the streams.
                if not failure and control.readable():
                    failure.append(control.failure(control.state()))
                    for w in workers:
                        w.stopping = True
                        w.deadline_ns = 0
            rows, clock = eng.run_clock(workers, cfg, on_interval, on_progress, stop, watch=watch,
                                        stall_watched=workers)
            for w in workers:
                if w.direction == SEND:
                    w.join(eng.JOIN_TIMEOUT_S)
            if failure:
                raise failure[0]
            eng.fail_if_nothing_moved(workers, clock)
            control.send_state(Iperf3State.TEST_END)
        elif state == Iperf3State.EXCHANGE_RESULTS:
            assert clock is not None
            wall_s = max(clock.end_ns - clock.start_ns, 1) / NS
            cpu = clock.cpu_seconds or 0.0
            mine: list[ClientStreamCount] = []
            for w in workers:  # whole-test totals, as the server was asked to count (no omit)
                secs = max((w.stop_ns or clock.end_ns) - clock.start_ns, 1) / NS  # a stop not taken: the clock's
                retr = w.info.retransmits if (w.info is not None and w.direction == SEND) else None
                mine.append(ClientStreamCount(w.id, w.direction, w.bytes, retr, secs))
            has_retr = -1 if (cfg.reverse and not cfg.bidir) else (1 if any(m.retransmits is not None for m in mine)
                                                                   else 0)
            control.send_json(wire.results_doc(
                mine, (100 * cpu / wall_s, 100 * clock.cpu_user / wall_s, 100 * clock.cpu_system / wall_s),
                has_retr))
            server = wire.parse_results(control.read_json())
            _drain_receivers(workers, server)
        elif state == Iperf3State.DISPLAY_RESULTS:
            for w in workers:
                w.close()
            control.send_state(Iperf3State.IPERF_DONE)
            done = True
        elif state == Iperf3State.IPERF_DONE:
            done = True
        else:
            raise control.failure(state)
    assert clock is not None
    return _result(cfg, workers, server, rows, clock)


def _drain_receivers(workers: list[eng.StreamWorker], server: dict[int, ServerStreamCount]) -> None:
    """Reverse streams: read what the server sent before it saw TEST_END, then stop reading.

    The server's count includes bytes still in flight; reading them makes the two counts agree.
    """
    deadline = time.monotonic() + 2.0
    recv = [w for w in workers if w.direction == RECV]
    for w in recv:
        w.stop_ns = time.perf_counter_ns()
        w.drain_deadline_ns = w.stop_ns + int(2.0 * NS)
        w.draining = True
    while time.monotonic() < deadline:
        if all(w.id not in server or w.bytes >= server[w.id].bytes or not w.thread.is_alive() for w in recv):
            break
        time.sleep(0.005)
    for w in recv:
        w.stopping = True
        try:
            w.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        w.join(eng.JOIN_TIMEOUT_S)


def _result(cfg: ThroughputConfig, workers: list[eng.StreamWorker], server: dict[int, ServerStreamCount],
            rows: list[ThroughputInterval], clock: eng.RunClock) -> ThroughputResult:
    """Both sides' counts per stream. The server counted the whole test (no omit), so with --omit
    both sides leave out the bytes the client moved in its omit period (``after_omit``)."""
    start = clock.measure_start_ns
    omit_ns = start - clock.start_ns
    results: list[StreamResult] = []
    for w in workers:
        own_ns = eng.own_elapsed_ns(w, start)
        peer = server.get(w.id)
        peer_total = peer.bytes if peer else None
        peer_ns = int(peer.seconds * NS) - omit_ns if peer and peer.seconds else None
        if peer_ns is not None and peer_ns <= 0:
            peer_ns = None
        if w.direction == SEND:
            sent, received = after_omit(w.bytes, peer_total, w.bytes_at_omit)
            results.append(stream_result(
                w.id, SEND, sent_bytes=sent, sent_ns=own_ns, received_bytes=received, received_ns=peer_ns or own_ns,
                retransmits=w.info.retransmits if w.info else None, rtt_us=w.info.rtt_us if w.info else None,
                counted_by=CountedBy.RECEIVER if peer else CountedBy.SENDER))
        else:
            sent, received = after_omit(peer_total, w.bytes, w.bytes_at_omit)
            results.append(stream_result(
                w.id, RECV, sent_bytes=sent, sent_ns=peer_ns or own_ns, received_bytes=received, received_ns=own_ns,
                retransmits=peer.retransmits if peer else None, rtt_us=None, counted_by=CountedBy.RECEIVER))
    sending = [w for w in workers if w.direction == SEND]
    if server and sending and not clock.interrupted and all(w.id not in server or server[w.id].bytes == 0
                                                            for w in sending):
        # whatever the client's socket buffers took in, nothing reached the server
        raise CheckFailed("the iperf3 server received nothing: the path or the server stopped passing data "
                          "after the connection was set up")
    summary = summarize_streams(results, clock.cpu_seconds, max(clock.end_ns - clock.start_ns, 1))
    errors = [f"stream {w.id}: {w.error}" for w in workers if w.error]
    return ThroughputResult(
        protocol=Transport.TCP, streams=cfg.parallel, reverse=cfg.reverse, duration_s=cfg.duration_s,
        intervals=tuple(rows), summary=summary, counted_by=overall_counted_by(results),
        target=format_host_port(cfg.host, cfg.port), server=ServerKind.IPERF3, bidir=cfg.bidir, omit_s=cfg.omit_s,
        block_size=cfg.block_size, interrupted=clock.interrupted, note="; ".join(errors) or None,
    )
