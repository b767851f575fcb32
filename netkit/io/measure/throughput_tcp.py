"""TCP throughput against a netkit server (``netkit serve tcp``) or any plain TCP service.

The first stream's 37-byte session header doubles as the detector: a netkit server answers it
with an ack, an iperf3 server with a state byte (it read the header as its cookie), anything else
with other bytes or silence. :func:`open_streams` says which; the iperf3 case is handed back to the
caller with its control connection (:mod:`netkit.io.measure.throughput` runs the iperf3 client), so
this module never imports it. :func:`run_streams` measures the other two on the stream engine
(:mod:`netkit.io.measure.streams`):

- netkit: the server reports what it received (or, reversed, what it sent) at the end of each
  stream, so rates count bytes that arrived (counted by the receiver);
- plain: no report; the client counts what it queued (sender-side counting) and says so.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass

from netkit.core import session_header as sh
from netkit.core.errors import CheckFailed
from netkit.core.iperf3_wire import is_greeting
from netkit.core.targets import format_host_port
from netkit.core.throughput_models import (
    RECV,
    SEND,
    CountedBy,
    Direction,
    ServerKind,
    StreamResult,
    ThroughputConfig,
    ThroughputResult,
    Transport,
    after_omit,
    overall_counted_by,
    stream_result,
    summarize_streams,
)
from netkit.io.measure.streams import (
    IO_TICK_S,
    JOIN_TIMEOUT_S,
    RECV_BUF_MIN,
    SEND_PATTERN,
    IntervalSink,
    ProgressSink,
    StreamWorker,
    connect,
    fail_if_nothing_moved,
    own_elapsed_ns,
    run_clock,
    send_block,
    set_kernel_timeouts,
)


@dataclass
class ServerAnswer:
    """What answered a stream's session header, and the stream's socket."""

    kind: ServerKind  # NETKIT, IPERF3 or PLAIN
    sock: socket.socket
    extra: bytes = b""  # bytes read while probing: data (plain reverse) or iperf3's first state byte
    header: bytes = b""  # the header as sent (iperf3 took it as the test's cookie)


@dataclass
class OpenedStream:
    direction: Direction
    sock: socket.socket
    extra: bytes = b""  # bytes already read that belong to the data


@dataclass
class OpenedStreams:
    """Every stream open (netkit or plain), or the iperf3 server's control connection."""

    kind: ServerKind
    streams: list[OpenedStream]
    iperf3: ServerAnswer | None = None  # kind IPERF3: the connection it answered on

    def close(self) -> None:
        for s in self.streams:
            s.sock.close()



def read_ack(sock: socket.socket, got: bytes, timeout_s: float) -> bytes:
    """The rest of a netkit server's session ack whose first byte ``got`` holds (short at a close)."""
    sock.settimeout(timeout_s)
    while len(got) < sh.ACK_LEN:
        chunk = sock.recv(sh.ACK_LEN - len(got))
        if not chunk:
            break
        got += chunk
    return got

def make_header(cfg: ThroughputConfig, direction: Direction, sid: int, cookie: bytes) -> sh.Header:
    bound_ms = int((cfg.duration_s + cfg.omit_s) * 1000) + 10_000
    return sh.Header(
        direction=sh.SOURCE if direction == RECV else sh.SINK, stream_id=sid, duration_ms=bound_ms,
        omit_ms=int(cfg.omit_s * 1000), block_size=cfg.block_size, cookie=cookie,
    )


def probe_stream(cfg: ThroughputConfig, header: sh.Header, *, expect: ServerKind) -> ServerAnswer:
    """Connect, send the header, and classify the answer (``expect``: AUTO or NETKIT)."""
    sock = connect(cfg.host, cfg.port, cfg.connect_timeout_s)
    raw = sh.encode_header(header)
    wire = raw
    if cfg.key is not None:  # a keyed server wants the header flagged FLAG_KEYED and a 32-byte signed trailer
        from netkit.core import keyed

        raw = sh.encode_header(dataclasses.replace(header, flags=header.flags | keyed.FLAG_KEYED))
        wire = raw + keyed.encode_header_trailer(cfg.key, raw, time.time_ns() // 1_000_000, os.urandom(8))
    try:
        sock.settimeout(cfg.connect_timeout_s)
        sock.sendall(wire)
        sock.settimeout(cfg.detect_timeout_s if expect == ServerKind.AUTO else cfg.connect_timeout_s)
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
        if got and expect == ServerKind.AUTO and is_greeting(got):
            return ServerAnswer(ServerKind.IPERF3, sock, got, raw)  # it took our header as its cookie
        if got == sh.ACK_MAGIC[:1]:
            got = read_ack(sock, got, cfg.connect_timeout_s)
        ack = sh.decode_ack(got)
        if ack is not None:
            if ack.status == sh.STATUS_REFUSED:
                raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: the netkit server refused the "
                                  "stream: it is at its --max-sessions limit")
            if not ack.ok:
                raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: netkit server refused the stream "
                                  f"(status {ack.status})")
            return ServerAnswer(ServerKind.NETKIT, sock, b"", raw)
        if expect == ServerKind.NETKIT:
            raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: not a netkit server (no session ack)")
        return ServerAnswer(ServerKind.PLAIN, sock, got, raw)
    except OSError as exc:
        sock.close()
        raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise


def open_streams(cfg: ThroughputConfig) -> OpenedStreams:
    """Open every data stream, finding out from the first one what the server is (``cfg.server``
    AUTO), or checking that it is what was asked for (NETKIT; PLAIN sends no header at all)."""
    cookie = secrets.token_bytes(sh.COOKIE_LEN)
    opened = OpenedStreams(cfg.server, [])
    try:
        for i, d in enumerate(cfg.directions()):
            if opened.kind == ServerKind.PLAIN:
                opened.streams.append(OpenedStream(d, connect(cfg.host, cfg.port, cfg.connect_timeout_s)))
                continue
            expect = ServerKind.AUTO if opened.kind == ServerKind.AUTO else ServerKind.NETKIT
            answer = probe_stream(cfg, make_header(cfg, d, i, cookie), expect=expect)
            if answer.kind == ServerKind.IPERF3:
                opened.close()
                return OpenedStreams(ServerKind.IPERF3, [], answer)
            opened.kind = answer.kind
            opened.streams.append(OpenedStream(d, answer.sock, answer.extra))
    except BaseException:
        opened.close()
        raise
    return opened


def run_streams(
    cfg: ThroughputConfig,
    opened: OpenedStreams,
    on_interval: IntervalSink | None = None,
    *,
    on_progress: ProgressSink | None = None,
    stop: threading.Event | None = None,
) -> ThroughputResult:
    """Measure over streams :func:`open_streams` opened to a netkit server or a plain service."""
    proto = ServerKind.NETKIT if opened.kind == ServerKind.NETKIT else ServerKind.PLAIN
    send_view = send_block(cfg.block_size, os.urandom(min(cfg.block_size, SEND_PATTERN)))
    recv_size = max(cfg.block_size, RECV_BUF_MIN)
    workers: list[StreamWorker] = []
    for i, st in enumerate(opened.streams):
        set_kernel_timeouts(st.sock, IO_TICK_S)
        workers.append(StreamWorker(i, st.direction, st.sock, proto, send_view, recv_size, pre_bytes=len(st.extra)))
    try:
        rows, clock = run_clock(workers, cfg, on_interval, on_progress, stop, stall_watched=workers)
        for w in workers:
            if w.direction == RECV:
                if proto == ServerKind.NETKIT:
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
    summary = summarize_streams(results, clock.cpu_seconds, max(clock.end_ns - clock.start_ns, 1))
    notes: list[str] = []
    if proto == ServerKind.PLAIN:
        if cfg.reverse and not cfg.bidir:
            notes.append("not a netkit server: the client counted what it received")
        else:
            notes.append("not a netkit server: rates are counted by the sender (bytes queued, not bytes arrived)")
    notes += errors
    notes += [f"stream {w.id}: {w.remark}" for w in workers if w.remark]
    if any(w.cut for w in workers):
        notes.append("the server ended the test early (its --max-duration limit)")
    return ThroughputResult(
        protocol=Transport.TCP, streams=cfg.parallel, reverse=cfg.reverse, duration_s=cfg.duration_s,
        intervals=tuple(rows), summary=summary, counted_by=overall_counted_by(results),
        target=format_host_port(cfg.host, cfg.port), server=proto, bidir=cfg.bidir, omit_s=cfg.omit_s,
        block_size=cfg.block_size, interrupted=clock.interrupted, note="; ".join(notes) or None,
    )




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


def _stream_result(w: StreamWorker, proto: ServerKind, measure_start_ns: int, omitting: bool,
                   server_start_ns: int = 0) -> StreamResult:
    """Combine what this side counted with the server's report (when there is one).

    With ``--omit`` both sides leave out the same leading bytes (``after_omit``): the receiver's
    omit-period count when the receiver reported it, else the client's own.
    """
    own_ns = own_elapsed_ns(w, measure_start_ns)
    info = w.info
    rep = w.report
    if w.direction == SEND:
        if proto == ServerKind.NETKIT and rep is not None:
            prefix = rep.omitted_bytes if omitting else 0
            sent, received = after_omit(w.bytes, rep.bytes, prefix)
            return stream_result(
                w.id, SEND, sent_bytes=sent, sent_ns=own_ns, received_bytes=received,
                received_ns=rep.elapsed_ns, retransmits=info.retransmits if info else None,
                rtt_us=info.rtt_us if info else None, counted_by=CountedBy.RECEIVER, received_start_ns=server_start_ns,
            )
        return stream_result(
            w.id, SEND, sent_bytes=w.bytes - w.bytes_at_omit, sent_ns=own_ns, received_bytes=None,
            received_ns=None, retransmits=info.retransmits if info else None,
            rtt_us=info.rtt_us if info else None, counted_by=CountedBy.SENDER,
        )
    if proto == ServerKind.NETKIT and rep is not None:
        sent, received = after_omit(rep.bytes, w.bytes, w.bytes_at_omit)
        return stream_result(
            w.id, RECV, sent_bytes=sent, sent_ns=rep.elapsed_ns, received_bytes=received,
            received_ns=own_ns, retransmits=rep.retransmits, rtt_us=rep.rtt_us, counted_by=CountedBy.RECEIVER,
            sent_start_ns=server_start_ns,
        )
    return stream_result(
        w.id, RECV, sent_bytes=None, sent_ns=None, received_bytes=w.bytes - w.bytes_at_omit, received_ns=own_ns,
        retransmits=None, rtt_us=None, counted_by=CountedBy.RECEIVER,
    )

