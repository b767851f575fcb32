"""One stream of ``measure throughput`` on ``netkit serve tcp`` (a session kind, see
:mod:`netkit.io.servers.tcp_sessions`).

Throughput session, sink (the client sends): an ``asyncio.BufferedProtocol`` reads straight into
one receive buffer shared by every session of the event loop (the bytes are counted and dropped,
so nothing is kept between reads; an idle session costs kilobytes, not a buffer). A plain-TCP sink
that starts sending is handed to one of a small fixed pool of receive threads (:class:`SinkPool`,
``TcpServerConfig.sink_threads``) when one is free: a blocking ``recv_into`` loop sinks 15-20%
more per core; every other sink stays on the event loop. Reads never go past ``--max-bytes``:
each read is cut to the room left plus one byte, so the count stops exactly one byte over.
When the client half-closes, the server answers with a :class:`~netkit.core.session_header.Report`
of what *it* received, so the client reports bytes that arrived rather than bytes queued.

Throughput session, source (``--reverse``): after the client's GO byte the server writes one
shared block again and again, paced by transport flow control (``pause_writing`` /
``resume_writing``) and a bounded burst per loop turn; the client's half-close stops it and the
last ``REPORT_LEN`` bytes of the stream are the report (what the server sent, its retransmits and
smoothed RTT from TCP_INFO). The block is the client's announced size clamped to
``MAX_SOURCE_BLOCK`` and the write buffer is ``MAX_SOURCE_BUFFER``: the client's numbers never
size the server's memory. Bytes out are counted when the kernel takes them, so a client that
stops reading stops the count and meets ``--idle-timeout``.
"""

from __future__ import annotations

import asyncio
import enum
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable

from netkit.core import session_header as sh
from netkit.core.serve_models import MAX_SOURCE_BLOCK, MAX_SOURCE_BUFFER, close_reason, output_room
from netkit.core.throughput_models import parse_tcp_info
from netkit.io.servers.session_host import SessionHost

RECV_BUF = 1024 * 1024  # large reads: fewer loop turns per GB, and iperf3 -l 1M clients write 1 MiB at a time
SOURCE_BURST = 32  # writes per loop turn when the kernel keeps accepting (bounded loop)
GO_WAIT_S = 30.0  # a source stream whose client never says GO is closed after this
CUT_GRACE_S = 2.0  # after a --max-duration cut, how long a sink reads and drops what still arrives
SINK_THREADS = 4  # the receive pool's size when the server's config does not say


class StreamState(str, enum.Enum):
    """Where a throughput stream is: header -> sink | wait-go -> source -> done (cut: a sink ended
    early by ``--max-duration``, reading and dropping until the client stops)."""

    HEADER = "header"
    SINK = "sink"
    WAIT_GO = "wait-go"
    SOURCE = "source"
    CUT = "cut"
    DONE = "done"


def _tcp_info(transport: asyncio.BaseTransport) -> tuple[int | None, int | None]:
    sock = transport.get_extra_info("socket")
    opt = getattr(socket, "TCP_INFO", None)
    if sock is None or opt is None:
        return None, None
    try:
        info = parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, opt, 256))
    except (OSError, AttributeError, TypeError):
        return None, None
    if info is None:
        return None, None
    return info.retransmits, info.rtt_us


#: The sink thread's kernel receive timeout: how soon it notices that the session ended.
SINK_TICK_S = 0.2
#: After the first byte, the sink thread's recv returns once this much has arrived (or at EOF/tick).
SINK_LOWAT = 512 * 1024
#: ... but for clients writing blocks larger than this, the smaller SINK_LOWAT_LARGE_BLOCKS.
SINK_LOWAT_BLOCK_LIMIT = 256 * 1024
SINK_LOWAT_LARGE_BLOCKS = 128 * 1024
#: How often the sink thread hands its byte count to the server (idle timer, --max-bytes, summary).
SINK_PROGRESS_NS = 50_000_000
#: A pooled sink with no byte for this many ticks gives its thread back and is read on the event
#: loop again (it takes a thread again when it sends and one is free): idle clients cannot hold the pool.
SINK_PARK_TICKS = 5


def sink_lowat(block_size: int) -> int:
    """SO_RCVLOWAT for a sink stream whose client writes ``block_size`` bytes at a time.

    Why it depends on the block size (measured on loopback, 2 cores, client CPU s/GB in brackets):
    with 128 KiB writes, waking the reader per 512 KiB instead of per arrival took one stream from
    30 to 65 Gbit/s (0.27 -> 0.13) and two from 58 to 88 (0.13 -> 0.11); with 1 MiB writes and two
    streams the same 512 KiB made the *sender* pay for the receive path it no longer shares with a
    reader that sleeps longer (0.125 -> 0.195 s/GB at equal rate), while 128 KiB kept 0.13 and the
    single-stream rate (36 -> 50 Gbit/s).
    """
    return SINK_LOWAT if block_size <= SINK_LOWAT_BLOCK_LIMIT else SINK_LOWAT_LARGE_BLOCKS


_shared: dict[str, memoryview] = {}


def _loop_buffer() -> memoryview:
    """The event loop's receive buffer, shared by every sink session (the loop is one thread and
    a sink drops what it reads, so no two reads ever need it at once)."""
    view = _shared.get("recv")
    if view is None:
        view = _shared["recv"] = memoryview(bytearray(RECV_BUF))
    return view


def _source_block(size: int) -> memoryview:
    """``size`` bytes (at most ``MAX_SOURCE_BLOCK``) of one shared random block: sources write slices of it."""
    block = _shared.get("source")
    if block is None:
        block = _shared["source"] = memoryview(os.urandom(4096) * (MAX_SOURCE_BLOCK // 4096))
    return block[:size]


class SinkPool:
    """A fixed number of receive threads for plain-TCP throughput sinks.

    ``try_submit(job)`` (event-loop thread only) runs ``job(buffer)`` on a pool thread when one is
    free and returns True, else returns False and the caller stays on the event loop. The caller
    gives the slot back with ``release()`` (event-loop thread) when the job has ended. Threads start
    on first use, each with its own receive buffer, and live as long as the process (daemon
    threads): at most ``size`` of them, whatever the number of connections.
    """

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self.free = self.size
        self.started = 0
        self.jobs: queue.SimpleQueue[Callable[[memoryview], None]] = queue.SimpleQueue()

    def try_submit(self, job: Callable[[memoryview], None]) -> bool:
        if self.free <= 0:
            return False
        self.free -= 1
        if self.started < self.size:
            self.started += 1
            threading.Thread(target=self._work, name=f"netkit-sink-{self.started}", daemon=True).start()
        self.jobs.put(job)
        return True

    def release(self) -> None:
        self.free = min(self.size, self.free + 1)

    def _work(self) -> None:
        buf = memoryview(bytearray(RECV_BUF))
        while True:
            job = self.jobs.get()
            try:
                job(buf)
            except Exception:  # pragma: no cover - a job reports its own end; never lose a thread
                pass


class ThroughputSession(asyncio.BufferedProtocol):
    """One stream of ``measure throughput``: header, then sink or source, then the report."""

    def __init__(self, transport: asyncio.Transport, server: SessionHost) -> None:
        self.transport = transport
        self.server = server
        self.state = StreamState.HEADER
        self.head = bytearray()
        self.header: sh.Header | None = None
        self.limit: int | None = server.config.max_bytes  # --max-bytes (in + out)
        self.queued = 0  # source: bytes handed to the transport ...
        self.counted = 0  # ... and the part already counted as sent (taken by the kernel)
        self.count = 0  # bytes received (sink) or sent (source)
        self.omitted = 0
        self.omit_ns = 0
        self.t0 = 0  # first data byte (sink) / GO (source)
        self.paused = False
        self.scheduled = False
        self.chunk: bytes | memoryview = b""
        self.timer: asyncio.TimerHandle | None = None
        self.omit_timer: asyncio.TimerHandle | None = None
        self.cut_timer: asyncio.TimerHandle | None = None  # --max-duration
        self.loop = asyncio.get_running_loop()
        self._sink_sock: socket.socket | None = None  # the sink thread's duplicate of the socket
        self._sink_stop = False
        self._pool: SinkPool | None = None  # the pool whose thread reads this sink, while it does
        self._loop_only = False  # TLS or no socket to share: never a pool thread

    # ----- asyncio plumbing ---------------------------------------------------------------------
    def get_buffer(self, sizehint: int) -> memoryview:
        view = _loop_buffer()
        if self.limit is not None:  # never read past --max-bytes: the room left, plus the byte that crosses it
            room = self._room()
            if room is not None and room + 1 < len(view):
                return view[: room + 1]
        return view

    def _room(self) -> int | None:
        rec = self.server.record(self.transport)
        if rec is None:
            return None
        return output_room(self.limit, rec.bytes_in, rec.bytes_out + self.queued - self.counted)

    def buffer_updated(self, nbytes: int) -> None:
        if self.state == StreamState.SINK:  # the hot path: count and go
            self.count += nbytes
            if not self.server.add_bytes(self.transport, bytes_in=nbytes):
                self._abort_session()
                return
            if self.t0 == 0:
                self._first_data()
                self._start_sink_thread()
            elif self._pool is None and not self._loop_only:
                pool = self.server.sink_pool
                if pool is not None and pool.free > 0:
                    self._start_sink_thread()  # a parked stream sends again and a thread is free
            return
        self.feed(bytes(_loop_buffer()[:nbytes]))

    def eof_received(self) -> bool:
        if self.state == StreamState.CUT:  # the client saw the early report and stopped: done
            self._close()
            return True
        if self.state == StreamState.SINK:
            self._finish_sink()
            return True  # we close after the report is written
        if self.state in (StreamState.SOURCE, StreamState.WAIT_GO):
            self._finish_source()
            return True
        self._close()  # EOF before a whole header
        return True

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.state == StreamState.SOURCE and not self.scheduled:
            self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_sink()
        self.state = StreamState.DONE
        self._cancel_timers()
        if exc is None and self.queued > self.counted:  # a clean close flushed what was queued
            self.server.add_bytes(self.transport, bytes_out=self.queued - self.counted)
            self.counted = self.queued
        # The server's own _lost would bypass a gate's ``closed`` (it frees the session slot).
        self.server.closed(self.transport, *close_reason(exc))

    # ----- state machine --------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes outside the sink hot path: the header, the GO byte, stray client bytes."""
        if not data:
            return
        if self.state == StreamState.HEADER:
            self.head += data
            if len(self.head) < sh.HEADER_LEN:
                return
            self.server.add_bytes(self.transport, bytes_in=sh.HEADER_LEN)  # what follows is counted below
            rest = bytes(self.head[sh.HEADER_LEN:])
            try:
                self.header = sh.decode_header(bytes(self.head[: sh.HEADER_LEN]))
            except sh.HeaderError as exc:
                self.server.error(f"bad session header: {exc}")
                self.transport.write(sh.encode_ack(sh.Ack(sh.STATUS_UNSUPPORTED)))
                self._close()
                return
            self.omit_ns = self.header.omit_ms * 1_000_000
            self.transport.write(sh.encode_ack(sh.Ack()))
            self.server.add_bytes(self.transport, bytes_out=sh.ACK_LEN)
            bound = self.header.duration_ms / 1000 + (GO_WAIT_S if self.header.direction == sh.SOURCE else 0)
            self.timer = self.loop.call_later(bound, self._deadline)
            if self.header.direction == sh.SINK:
                self.state = StreamState.SINK
                if rest:  # data came with the header: the stream has begun
                    self._first_data()
                    self.count += len(rest)
                    if not self.server.add_bytes(self.transport, bytes_in=len(rest)):
                        self._abort_session()
                        return
                    self._start_sink_thread()
            else:
                self.state = StreamState.WAIT_GO
                # The server's own cap (MAX_SOURCE_BUFFER), never a size derived from the client's numbers.
                self.transport.set_write_buffer_limits(high=MAX_SOURCE_BUFFER)
                if rest:
                    self.server.add_bytes(self.transport, bytes_in=len(rest))
                self.feed_go(rest)
            return
        if self.state == StreamState.WAIT_GO:
            self.server.add_bytes(self.transport, bytes_in=len(data))
            self.feed_go(data)
            return
        # source or done: the client should be silent; count and drop
        self.server.add_bytes(self.transport, bytes_in=len(data))

    def feed_go(self, data: bytes) -> None:
        if not data:
            return
        assert self.header is not None
        if data[:1] != sh.GO:
            self.server.error("throughput session: expected GO from the client")
            self._close()
            return
        self.chunk = _source_block(max(1, min(self.header.block_size, MAX_SOURCE_BLOCK)))
        self.state = StreamState.SOURCE
        self._first_data()
        self._pump()

    # ----- the sink on a pool thread -------------------------------------------------------------
    # A blocking recv_into loop on its own thread sinks about 15-20% more per core than the
    # event loop's buffered reads (measured here: 36 vs 30 Gbit/s at 128 KiB writes), and the
    # GIL is released while it waits in the kernel. The threads are a fixed pool (SinkPool): a
    # stream gets one when it starts sending and one is free, else it stays on the event loop.
    # The event loop keeps the connection (reading paused) and does everything else: timers, the
    # report, the close.
    def _start_sink_thread(self) -> None:
        t = self.transport
        if self._pool is not None or self.state != StreamState.SINK or t.is_closing():
            return
        if t.get_extra_info("sslcontext") is not None:
            self._loop_only = True
            return  # TLS bytes must go through the transport
        pool = self.server.sink_pool
        if pool is None or pool.free <= 0:
            return
        sock = t.get_extra_info("socket")
        try:
            fd = os.dup(sock.fileno())
        except (AttributeError, OSError, ValueError):
            self._loop_only = True
            return  # no socket to share: stay on the event loop
        dup = socket.socket(fileno=fd)
        dup.setblocking(True)
        try:
            # struct timeval {tv_sec; tv_usec}: the tick is microseconds in the second field.
            tv = struct.pack("@ll", int(SINK_TICK_S), int(SINK_TICK_S % 1 * 1_000_000))
            dup.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            # The stream has begun (t0 is set): wake only per sink_lowat() bytes (or a tick, or
            # EOF): fewer wake-ups let the sender's kernel move more per core (see sink_lowat).
            lowat = sink_lowat(self.header.block_size if self.header is not None else 0)
            dup.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
        except OSError:
            dup.settimeout(SINK_TICK_S)
        room = self._room() if self.limit is not None else None
        self._sink_sock = dup
        if not pool.try_submit(lambda buf: self._sink_thread(dup, buf, room)):
            self._sink_sock = None
            dup.close()
            return
        self._pool = pool
        t.pause_reading()

    def _sink_thread(self, dup: socket.socket, view: memoryview, room: int | None) -> None:
        """Runs on a pool thread: read and count until EOF, the stop flag or ``--max-bytes``.

        ``room``: bytes left under ``--max-bytes`` when the thread took over (None: no limit);
        reads stop one byte past it, so the server's count crosses the limit by exactly one byte.
        """
        recv_into = dup.recv_into
        budget = None if room is None else room + 1
        now = time.perf_counter_ns
        call = self.loop.call_soon_threadsafe
        pending, last = 0, now()
        eof = parked = False
        idle_ticks = 0
        try:
            while not self._sink_stop:
                target = view
                if budget is not None:
                    if budget <= 0:
                        break  # over --max-bytes: the loop counts it and closes
                    if budget < len(view):
                        target = view[:budget]
                try:
                    n = recv_into(target)
                except (BlockingIOError, InterruptedError, TimeoutError):
                    n = -1  # a tick: look at the stop flag, hand over the count
                    idle_ticks += 1
                    if idle_ticks >= SINK_PARK_TICKS:
                        parked = True
                        try:  # the event loop must see every byte again, not per sink_lowat()
                            dup.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
                        except OSError:
                            pass
                        break
                except OSError:
                    break
                if n == 0:
                    eof = True
                    break
                if n > 0:
                    idle_ticks = 0
                    self.count += n
                    pending += n
                    if budget is not None:
                        budget -= n
                t = now()
                if pending and t - last >= SINK_PROGRESS_NS:
                    call(self._sink_progress, pending)
                    pending, last = 0, t
        finally:
            dup.close()  # the transport keeps its own descriptor
            try:
                call(self._sink_done, pending, eof, parked)
            except RuntimeError:
                pass  # the loop is closed: the server is gone

    def _sink_progress(self, nbytes: int) -> None:
        live = self.state is StreamState.SINK or self.state is StreamState.CUT
        if live and not self.server.add_bytes(self.transport, bytes_in=nbytes):
            self._abort_session()

    def _sink_done(self, nbytes: int, eof: bool, parked: bool = False) -> None:
        if self._pool is not None:
            self._pool.release()
            self._pool = None
        self._sink_sock = None
        if nbytes:
            self._sink_progress(nbytes)
        if parked and self.state == StreamState.SINK and not self.transport.is_closing():
            self.transport.resume_reading()
            return
        if not eof or self.state == StreamState.DONE:
            return
        self.eof_received()

    def _stop_sink(self) -> None:
        self._sink_stop = True

    def _arm_timers(self) -> None:
        guard = self.server.guard
        if guard is not None and guard.limits.max_duration_ns is not None and self.cut_timer is None:
            self.cut_timer = self.loop.call_later(guard.limits.max_duration_ns / 1e9, self._cut)
        if self.omit_ns and self.omit_timer is None:
            self.omit_timer = self.loop.call_later(self.omit_ns / 1e9, self._omit_end)

    def _first_data(self) -> None:
        self.t0 = time.perf_counter_ns()
        self._arm_timers()

    def _omit_end(self) -> None:
        self.omit_timer = None
        self.omitted = self.count

    def _pump(self) -> None:
        self.scheduled = False
        t = self.transport
        chunk = self.chunk
        for _ in range(SOURCE_BURST):
            if self.paused or self.state != StreamState.SOURCE or t.is_closing() or self.server.stopping:
                break
            if self.limit is not None:  # checked before the bytes are queued: exact to the byte
                room = self._room()
                if room is not None and room < len(chunk):
                    if room <= 0:
                        self._over_limit()
                        return
                    chunk = chunk[:room]
            t.write(chunk)
            self.count += len(chunk)
            self.queued += len(chunk)
        else:
            if not self._count_sent():
                return
            if not self.scheduled:  # the kernel took everything without filling our buffer: go on
                self.scheduled = True
                self.loop.call_soon(self._pump)
            return
        self._count_sent()

    def _count_sent(self) -> bool:
        """Count the bytes the kernel has taken (queued minus what still waits in the write buffer).

        Counting when sent, not when queued, lets ``--idle-timeout`` see a client that stopped
        reading. Returns False (and ends the session) when that went over ``--max-bytes``."""
        t = self.transport
        sent = self.queued - t.get_write_buffer_size()
        if sent <= self.counted:
            return True
        delta, self.counted = sent - self.counted, sent
        if not self.server.add_bytes(t, bytes_out=delta):
            self._abort_session()
            return False
        return True

    def _over_limit(self) -> None:
        rec = self.server.record(self.transport)
        if rec is not None and rec.reason is None:
            self.server.hit_limit(rec, "max_bytes")
        self._abort_session()

    def _report(self) -> bytes:
        elapsed = time.perf_counter_ns() - self.t0 if self.t0 else 0
        if self.omit_ns:
            elapsed = max(0, elapsed - self.omit_ns)
        retrans, rtt = _tcp_info(self.transport)
        if self.state == StreamState.SINK:
            retrans, rtt = None, None  # a receiver's TCP_INFO says nothing about the sender's path
        return sh.encode_report(sh.Report(self.count, self.omitted, elapsed, retrans, rtt))

    def _finish_sink(self) -> None:
        if self.omit_ns and self.omit_timer is not None:  # stream shorter than the omit period
            self.omitted = self.count
        data = self._report()
        self._end(data)

    def _finish_source(self) -> None:
        if self.omit_ns and self.omit_timer is not None:
            self.omitted = self.count
        data = self._report()
        self._end(data)

    def _end(self, report: bytes) -> None:
        assert self.header is not None
        self.server.emit(
            "session", kind="throughput", direction=sh.DIRECTIONS[self.header.direction],
            stream=self.header.stream_id, bytes=self.count,
            **({"id": rec.id} if (rec := self.server.record(self.transport)) is not None else {}),
        )
        self.state = StreamState.DONE
        self._stop_sink()
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.write(report)
            self.server.add_bytes(self.transport, bytes_out=len(report))
            self.transport.close()

    def _deadline(self) -> None:
        """The client never ended the stream: end it ourselves (a bound, not the normal path)."""
        self.timer = None
        if self.state == StreamState.SOURCE:
            self._finish_source()
        elif self.state == StreamState.SINK:
            self._finish_sink()
        else:
            self._close()

    def _cancel_timers(self) -> None:
        for t in (self.timer, self.omit_timer, self.cut_timer):
            if t is not None:
                t.cancel()
        self.timer = self.omit_timer = self.cut_timer = None

    def _cut(self) -> None:
        """``--max-duration`` reached: end the stream now, whatever the client asked.

        Source: the usual end (report as the last bytes, close). Sink: the report goes out at
        once and the write side closes; the client notices it, stops sending and half-closes. Until
        then (at most ``CUT_GRACE_S``) the server reads and drops what still arrives.
        """
        self.cut_timer = None
        guard = self.server.guard
        assert guard is not None and guard.limits.max_duration_ns is not None  # armed only with one
        peer = self.transport.get_extra_info("peername") or "?"
        guard.reject("over_limit", "max_duration", peer, time.perf_counter_ns(),
                     guard.limits.max_duration_ns / 1e9)
        if self.state == StreamState.SOURCE:
            self._finish_source()
            return
        if self.state != StreamState.SINK:
            return
        if self.omit_ns and self.omit_timer is not None:
            self.omitted = self.count
        report = self._report()
        assert self.header is not None
        self.server.emit("session", kind="throughput", direction=sh.DIRECTIONS[self.header.direction],
                         stream=self.header.stream_id, bytes=self.count, cut="max_duration")
        self._cancel_timers()
        self.state = StreamState.CUT
        self.transport.write(report)
        self.server.add_bytes(self.transport, bytes_out=len(report))
        try:
            self.transport.write_eof()
        except (NotImplementedError, RuntimeError, OSError):  # TLS: no half-close
            pass
        self.timer = self.loop.call_later(CUT_GRACE_S, self._close)

    def _abort_session(self) -> None:
        self._stop_sink()
        self.state = StreamState.DONE
        self._cancel_timers()
        self.transport.close()

    def _close(self) -> None:
        self._stop_sink()
        self.state = StreamState.DONE
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.close()
