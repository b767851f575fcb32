"""A client for iperf3's own control protocol, so ``measure throughput`` can test any ``iperf3 -s``.

What iperf3 does (read from esnet/iperf ``src/iperf_api.c`` and ``src/iperf_client_api.c``;
nothing copied): the client opens a *control* connection and sends a 37-byte cookie. From then
on the server drives the test with one signed state byte at a time:

==================  ===  =====================================================================
PARAM_EXCHANGE        9  client sends its parameters: 4-byte big-endian length + JSON
CREATE_STREAMS       10  client opens ``parallel`` data connections (twice that with
                         ``bidirectional``, senders first), each starting with the same cookie
TEST_START            1  prepare
TEST_RUNNING          2  data flows; the *client* ends the test by sending TEST_END (4)
EXCHANGE_RESULTS     13  client sends its results JSON, then reads the server's
DISPLAY_RESULTS      14  client closes the data streams and answers IPERF_DONE (16)
ACCESS_DENIED        -1  the server is busy with another client
SERVER_ERROR         -2  followed by two 32-bit big-endian ints: iperf's error code and errno
SERVER_TERMINATE     11  the server was stopped
==================  ===  =====================================================================

Stream ids are assigned in connection order on both sides: 1, then 3, 4, 5, ... (iperf3 skips 2,
and keeps doing so for compatibility). The results JSON carries per stream ``id``, ``bytes``
(sent for a sender, received for a receiver), ``retransmits`` and UDP fields; the server's
``bytes`` are what *it* counted, which is how netkit reports receiver-counted figures here.

The message codec below is pure (bytes in, values out); the I/O is a small blocking state loop
around the shared data path of :mod:`netkit.io.measure.throughput`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
import select
import socket
import struct
import threading
import time
from typing import Any

from netkit import __version__
from netkit.core.errors import CheckFailed
from netkit.core.targets import format_host_port
from netkit.core.throughput_models import (
    NS,
    RECV,
    SEND,
    StreamResult,
    ThroughputConfig,
    ThroughputResult,
    after_omit,
    overall_counted_by,
    stream_result,
    summarize,
)
from netkit.io.measure import throughput as tp

# ----- protocol constants and pure codec -------------------------------------------------------------

TEST_START = 1
TEST_RUNNING = 2
TEST_END = 4
PARAM_EXCHANGE = 9
CREATE_STREAMS = 10
SERVER_TERMINATE = 11
CLIENT_TERMINATE = 12
EXCHANGE_RESULTS = 13
DISPLAY_RESULTS = 14
IPERF_START = 15
IPERF_DONE = 16
ACCESS_DENIED = -1
SERVER_ERROR = -2

COOKIE_SIZE = 37
MAX_JSON = 8 * 1024 * 1024  # a results document is a few KB; anything this large is not iperf3
CTRL_TIMEOUT_S = 10.0
_COOKIE_CHARS = "abcdefghijklmnopqrstuvwxyz234567"

STATE_NAMES = {
    TEST_START: "TEST_START", TEST_RUNNING: "TEST_RUNNING", TEST_END: "TEST_END",
    PARAM_EXCHANGE: "PARAM_EXCHANGE", CREATE_STREAMS: "CREATE_STREAMS",
    SERVER_TERMINATE: "SERVER_TERMINATE", CLIENT_TERMINATE: "CLIENT_TERMINATE",
    EXCHANGE_RESULTS: "EXCHANGE_RESULTS", DISPLAY_RESULTS: "DISPLAY_RESULTS", IPERF_START: "IPERF_START",
    IPERF_DONE: "IPERF_DONE", ACCESS_DENIED: "ACCESS_DENIED", SERVER_ERROR: "SERVER_ERROR",
}


def make_cookie() -> bytes:
    """36 random characters from iperf3's alphabet and a NUL: 37 bytes."""
    return "".join(secrets.choice(_COOKIE_CHARS) for _ in range(COOKIE_SIZE - 1)).encode() + b"\x00"


def stream_id(index: int) -> int:
    """iperf3's id for the ``index``-th stream (0-based): 1, 3, 4, 5, ..."""
    return 1 if index == 0 else index + 2


def encode_state(state: int) -> bytes:
    return struct.pack("!b", state)


def decode_state(byte: bytes) -> int:
    return struct.unpack("!b", byte[:1])[0]


def encode_json(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return struct.pack("!I", len(body)) + body


def params_for(cfg: ThroughputConfig) -> dict[str, Any]:
    """The parameter document: whole seconds, as iperf3's own client sends them."""
    p: dict[str, Any] = {
        "tcp": True,
        "omit": round(cfg.omit_s),
        "time": max(1, math.ceil(cfg.duration_s)),
        "num": 0,
        "blockcount": 0,
        "parallel": cfg.parallel,
        "len": cfg.block_size,
        "pacing_timer": 1000,
        "client_version": f"netkit-{__version__}",
    }
    if cfg.bidir:
        p["bidirectional"] = True
    elif cfg.reverse:
        p["reverse"] = True
    return p


def results_doc(
    streams: list[tuple[int, str, int, int | None, float]],
    cpu: tuple[float, float, float],
    sender_has_retransmits: int,
) -> dict[str, Any]:
    """Our results: ``streams`` as (iperf id, direction, bytes, retransmits, seconds)."""
    return {
        "cpu_util_total": cpu[0], "cpu_util_user": cpu[1], "cpu_util_system": cpu[2],
        "sender_has_retransmits": sender_has_retransmits,
        "streams": [
            {"id": sid, "bytes": nbytes, "retransmits": -1 if (d == RECV or retr is None) else retr,
             "jitter": 0, "errors": 0, "omitted_errors": 0, "packets": 0, "omitted_packets": 0,
             "start_time": 0, "end_time": secs}
            for sid, d, nbytes, retr, secs in streams
        ],
    }


def parse_results(doc: Any) -> dict[int, dict[str, Any]]:
    """Server results -> {stream id: {"bytes", "retransmits" (None if unknown), "seconds"}}."""
    if not isinstance(doc, dict) or not isinstance(doc.get("streams"), list):
        raise CheckFailed("iperf3 server sent results without streams")
    has_retr = doc.get("sender_has_retransmits") == 1
    out: dict[int, dict[str, Any]] = {}
    for s in doc["streams"]:
        if not isinstance(s, dict) or not isinstance(s.get("id"), int) or not isinstance(s.get("bytes"), (int, float)):
            raise CheckFailed("iperf3 server sent a malformed stream result")
        retr = s.get("retransmits")
        start, end = s.get("start_time"), s.get("end_time")
        secs = (end - start) if isinstance(start, (int, float)) and isinstance(end, (int, float)) else None
        out[s["id"]] = {
            "bytes": int(s["bytes"]),
            "retransmits": int(retr) if has_retr and isinstance(retr, int) and retr >= 0 else None,
            "seconds": secs,
        }
    return out


# ----- I/O -------------------------------------------------------------------------------------------

class _Control:
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
                raise CheckFailed(f"iperf3 server did not answer within {self.timeout_s:g}s") from None
            except OSError as exc:
                raise CheckFailed(f"iperf3 control connection failed: {exc.strerror or exc}") from None
            if not chunk:
                raise CheckFailed("iperf3 server closed the control connection")
            data += chunk
        return bytes(data)

    def state(self) -> int:
        return decode_state(self._exact(1))

    def readable(self) -> bool:
        if self.pending:
            return True
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r)

    def send_state(self, state: int) -> None:
        self.sock.sendall(encode_state(state))

    def send_json(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(encode_json(obj))

    def read_json(self) -> Any:
        (n,) = struct.unpack("!I", self._exact(4))
        if n == 0 or n > MAX_JSON:
            raise CheckFailed(f"iperf3 server sent a JSON message of {n} bytes")
        try:
            return json.loads(self._exact(n))
        except ValueError:
            raise CheckFailed("iperf3 server sent invalid JSON") from None

    def error_detail(self) -> str:
        code, err = struct.unpack("!ii", self._exact(8))
        return f"iperf3 server error {code}" + (f" (errno {err})" if err > 0 else "")


def _fail_state(state: int, ctrl: _Control) -> CheckFailed:
    if state == ACCESS_DENIED:
        return CheckFailed("iperf3 server is busy running another test (access denied)")
    if state == SERVER_ERROR:
        return CheckFailed(ctrl.error_detail())
    if state == SERVER_TERMINATE:
        return CheckFailed("iperf3 server terminated the test")
    return CheckFailed(f"iperf3 server sent unexpected state {STATE_NAMES.get(state, state)}")


def open_control(cfg: ThroughputConfig) -> tuple[socket.socket, bytes]:
    """Connect to the iperf3 server and send a fresh cookie: the control connection of a test
    (TCP or UDP) that no auto-detection opened first. Returns the socket and the cookie."""
    sock = tp.connect(cfg.host, cfg.port, cfg.connect_timeout_s)
    cookie = make_cookie()
    try:
        sock.settimeout(cfg.connect_timeout_s)
        sock.sendall(cookie)
    except OSError as exc:
        sock.close()
        raise CheckFailed(f"iperf3 control connection failed: {exc.strerror or exc}") from None
    return sock, cookie


def run_iperf3(
    cfg: ThroughputConfig,
    on_interval: tp.IntervalSink | None = None,
    *,
    on_progress: tp.ProgressSink | None = None,
    stop: threading.Event | None = None,
    ctrl: socket.socket | None = None,
    cookie: bytes | None = None,
    first_state: bytes = b"",
) -> ThroughputResult:
    """One TCP test against an iperf3 server. ``ctrl``/``cookie``: a control connection that
    auto-detection already opened (its 37-byte probe was taken as the cookie)."""
    notes: list[str] = []
    if ctrl is None:
        ctrl, cookie = open_control(cfg)
    assert cookie is not None and len(cookie) == COOKIE_SIZE
    control = _Control(ctrl, first_state, cfg.connect_timeout_s)
    workers: list[tp.StreamWorker] = []
    try:
        result = _run(cfg, control, cookie, workers, on_interval, on_progress, stop)
        if notes:
            result = dataclasses.replace(result, note="; ".join(notes + ([result.note] if result.note else [])))
        return result
    finally:
        for w in workers:
            w.close()
        try:
            ctrl.close()
        except OSError:
            pass


def _run(
    cfg: ThroughputConfig,
    control: _Control,
    cookie: bytes,
    workers: list[tp.StreamWorker],
    on_interval: tp.IntervalSink | None,
    on_progress: tp.ProgressSink | None,
    stop: threading.Event | None,
) -> ThroughputResult:
    dirs = cfg.directions()
    send_view = memoryview(bytearray(cfg.block_size))
    recv_size = max(cfg.block_size, tp.RECV_BUF_MIN)
    rows: list[Any] = []
    clock: tp.RunClock | None = None
    server: dict[int, dict[str, Any]] = {}
    failure: list[CheckFailed] = []
    overall = time.monotonic() + cfg.duration_s + cfg.omit_s + 60.0
    done = False
    while not done:
        if time.monotonic() > overall:
            raise CheckFailed("iperf3 test did not finish in time")
        state = control.state()
        if state == PARAM_EXCHANGE:
            # netkit leaves out the omit period itself, from the same leading bytes on both sides
            # (see _result): the server counts the whole test, so its results carry the totals
            # that takes, and --omit need not be whole seconds.
            whole = dataclasses.replace(cfg, duration_s=cfg.duration_s + cfg.omit_s, omit_s=0.0)
            control.send_json(params_for(whole))
        elif state == CREATE_STREAMS:
            for i, d in enumerate(dirs):
                sock = tp.connect(cfg.host, cfg.port, cfg.connect_timeout_s)
                try:
                    sock.settimeout(cfg.connect_timeout_s)
                    sock.sendall(cookie)
                except OSError as exc:
                    sock.close()
                    raise CheckFailed(f"iperf3 data stream failed: {exc.strerror or exc}") from None
                tp.set_kernel_timeouts(sock, tp.IO_TICK_S)
                workers.append(tp.StreamWorker(stream_id(i), d, sock, "iperf3", send_view, recv_size))
        elif state == TEST_START:
            if len(workers) != len(dirs):
                raise CheckFailed("iperf3 server started the test before the streams were created")
        elif state == TEST_RUNNING:
            def watch() -> None:
                # The server may end the test early (terminate, error): stop the streams.
                if not failure and control.readable():
                    st = control.state()
                    failure.append(_fail_state(st, control))
                    for w in workers:
                        w.stopping = True
                        w.deadline_ns = 0
            rows, clock = tp.run_clock(workers, cfg, on_interval, on_progress, stop, watch=watch)
            for w in workers:
                if w.direction == SEND:
                    w.join(tp.JOIN_TIMEOUT_S)
            if failure:
                raise failure[0]
            tp.fail_if_nothing_moved(workers, clock)
            control.send_state(TEST_END)
        elif state == EXCHANGE_RESULTS:
            assert clock is not None
            wall_s = max(clock.end_ns - clock.start_ns, 1) / NS
            cpu = clock.cpu_seconds or 0.0
            mine = []
            for w in workers:  # whole-test totals, as the server was asked to count (no omit)
                secs = max((w.stop_ns or clock.end_ns) - clock.start_ns, 1) / NS  # a stop not taken: the clock's
                retr = w.info.retransmits if (w.info is not None and w.direction == SEND) else None
                mine.append((w.id, w.direction, w.bytes, retr, secs))
            has_retr = -1 if (cfg.reverse and not cfg.bidir) else (1 if any(m[3] is not None for m in mine) else 0)
            control.send_json(results_doc(
                mine, (100 * cpu / wall_s, 100 * clock.cpu_user / wall_s, 100 * clock.cpu_system / wall_s),
                has_retr))
            server = parse_results(control.read_json())
            _drain_receivers(workers, server)
        elif state == DISPLAY_RESULTS:
            for w in workers:
                w.close()
            control.send_state(IPERF_DONE)
            done = True
        elif state == IPERF_DONE:
            done = True
        else:
            raise _fail_state(state, control)
    assert clock is not None
    return _result(cfg, workers, server, rows, clock)


def _drain_receivers(workers: list[tp.StreamWorker], server: dict[int, dict[str, Any]]) -> None:
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
        if all(w.bytes >= server.get(w.id, {}).get("bytes", 0) or not w.thread.is_alive() for w in recv):
            break
        time.sleep(0.005)
    for w in recv:
        w.stopping = True
        try:
            w.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        w.join(tp.JOIN_TIMEOUT_S)


def _result(cfg: ThroughputConfig, workers: list[tp.StreamWorker], server: dict[int, dict[str, Any]],
            rows: list[Any], clock: tp.RunClock) -> ThroughputResult:
    """Both sides' counts per stream. The server counted the whole test (no omit), so with --omit
    both sides leave out the bytes the client moved in its omit period (``after_omit``)."""
    start = clock.measure_start_ns
    omit_ns = start - clock.start_ns
    results: list[StreamResult] = []
    for w in workers:
        own_ns = tp.own_elapsed_ns(w, start)
        peer = server.get(w.id)
        peer_total = peer["bytes"] if peer else None
        peer_ns = int(peer["seconds"] * NS) - omit_ns if peer and peer.get("seconds") else None
        if peer_ns is not None and peer_ns <= 0:
            peer_ns = None
        if w.direction == SEND:
            sent, received = after_omit(w.bytes, peer_total, w.bytes_at_omit)
            results.append(stream_result(
                w.id, SEND, sent_bytes=sent, sent_ns=own_ns, received_bytes=received, received_ns=peer_ns or own_ns,
                retransmits=w.info.retransmits if w.info else None, rtt_us=w.info.rtt_us if w.info else None,
                counted_by="receiver" if peer else "sender"))
        else:
            sent, received = after_omit(peer_total, w.bytes, w.bytes_at_omit)
            results.append(stream_result(
                w.id, RECV, sent_bytes=sent, sent_ns=peer_ns or own_ns, received_bytes=received, received_ns=own_ns,
                retransmits=peer["retransmits"] if peer else None, rtt_us=None, counted_by="receiver"))
    sending = [w for w in workers if w.direction == SEND]
    if server and sending and not clock.interrupted and all(server.get(w.id, {}).get("bytes", 0) == 0
                                                            for w in sending):
        # whatever the client's socket buffers took in, nothing reached the server
        raise CheckFailed("the iperf3 server received nothing: the path or the server stopped passing data "
                          "after the connection was set up")
    summary = summarize(results, clock.cpu_seconds, max(clock.end_ns - clock.start_ns, 1))
    errors = [f"stream {w.id}: {w.error}" for w in workers if w.error]
    return ThroughputResult(
        protocol="tcp", streams=cfg.parallel, reverse=cfg.reverse, duration_s=cfg.duration_s,
        intervals=tuple(rows), summary=summary, counted_by=overall_counted_by(results),
        target=format_host_port(cfg.host, cfg.port), server="iperf3", bidir=cfg.bidir, omit_s=cfg.omit_s,
        block_size=cfg.block_size, interrupted=clock.interrupted, note="; ".join(errors) or None,
    )
