"""``netkit serve iperf3``: an iperf3-compatible server that runs many tests at once.

One asyncio loop (uvloop when installed), no thread per connection. The protocol decisions are
:mod:`netkit.core.iperf3_server`'s (pure); this module moves the bytes:

- One TCP listener. Every connection starts by sending a 37-byte cookie (read within
  ``--idle-timeout``). A cookie that names a test waiting for its data streams makes the
  connection one of that test's streams; any other cookie opens a new test on a control
  connection, refused with ACCESS_DENIED when ``--max-tests`` are running. ``--allow/--deny``
  are checked at accept.
- One UDP socket on the same port: a stream's 4-byte connect datagram is matched to the UDP
  test from that client address that still waits for streams, answered, and from then on that
  client address:port is the stream (datagrams are demultiplexed by source address).
- Each test is one task (:class:`Iperf3Test`) driving iperf3's states over its control connection,
  each wait bounded by ``--idle-timeout``; while the test runs, a 1 s ticker records intervals,
  ends a test idle that long, and enforces ``--max-duration`` / ``--max-rate`` (SERVER_TERMINATE
  or SERVER_ERROR "total required bandwidth is larger than server limit", logged).
- Receive paths read into one shared 1 MiB buffer and count; send paths write one shared block
  with transport flow control (at most ``SEND_BUFFER`` queued per stream) and count the bytes
  the kernel took. A test's streams and results are its own: nothing is shared but buffers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netkit.core import iperf3_server as core
from netkit.core import iperf3_udp as udpw
from netkit.core.iperf3_server import (
    ControlError,
    ControlReader,
    IntervalRow,
    Iperf3Params,
    Iperf3ServerConfig,
    Iperf3ServeSummary,
    Iperf3TestSummary,
    JsonEvent,
    ParamError,
    StateEvent,
    StreamCount,
)
from netkit.core.iperf3_wire import COOKIE_SIZE, Iperf3State, encode_json, encode_state, stream_id
from netkit.core.limits import CidrFilter
from netkit.core.serve_models import ServerEventSink, ms
from netkit.core.targets import format_host_port, format_sockaddr
from netkit.core.throughput_models import parse_tcp_info
from netkit.io.clock import wall_iso
from netkit.io.servers.listen import bind_failure
from netkit.io.servers.throughput_session import sink_lowat

if TYPE_CHECKING:  # pragma: no cover
    from netkit.io.aio import StopSignal

RECV_BUF = 1024 * 1024
SMALL_BUF = 64 * 1024
SEND_BUFFER = 1024 * 1024  # queued beyond the kernel per sending stream, at most
#: A receiving stream wakes the loop per sink_lowat() bytes only when its client sends at least this
#: fast (unpaced, or -b this high): a slower one would sit under the mark between its writes.
LOWAT_MIN_BPS = 100_000_000
#: Reads at most, draining a receiving stream at TEST_END (1 MiB each: far more than a socket holds).
DRAIN_READS = 64
SEND_BURST = 32  # writes per loop turn
UDP_TICK_S = 0.001
UDP_QUIET_S = 0.01
UDP_DRAIN_S = 0.2
PACE_TICK_S = 0.001  # a paced TCP sender (-b) looks again this often
UDP_BURST = 256  # datagrams per stream per tick, at most
CLOSE_GRACE_S = 2.0
DONE_WAIT_S = 2.0  # after DISPLAY_RESULTS, how long to wait for the client's IPERF_DONE
STOP_GRACE_S = 1.0
MAX_INTERVAL_ROWS = 4096  # --get-server-output: the rows kept per test, at most (about 300 KB of text)

_shared: dict[str, Any] = {}


def _recv_buffer() -> memoryview:
    view = _shared.get("recv")
    if view is None:
        view = _shared["recv"] = memoryview(bytearray(RECV_BUF))
    return view


def _small_buffer() -> memoryview:
    """The buffer cookies, control messages and a sending stream's stray bytes are read into: one
    for the loop (its thread reads one connection at a time), so a connection costs no buffer."""
    view = _shared.get("small")
    if view is None:
        view = _shared["small"] = memoryview(bytearray(SMALL_BUF))
    return view


def _send_block(size: int) -> memoryview:
    block = _shared.get("send")
    if block is None:
        block = _shared["send"] = memoryview(os.urandom(4096) * (core.MAX_TCP_BLOCK // 4096))
    return block[:size]



class _Conn(asyncio.BufferedProtocol):
    """One accepted TCP connection: cookie first, then a control connection or a data stream."""

    def __init__(self, server: Iperf3Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.role = "cookie"  # cookie -> control | recv | send | dead
        self.test: Iperf3Test | None = None
        self.stream: _TcpStream | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.peer: Any = None
        self._small = _small_buffer()  # shared: what is read into it is copied out at once

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        if not self.server.admit(self.peer):
            self.role = "dead"
            transport.close()
            return
        self.server.conns.add(self)
        try:
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        self.timer = asyncio.get_running_loop().call_later(self.server.config.idle_timeout_s, self._no_cookie)
        del t

    def _no_cookie(self) -> None:
        self.timer = None
        if self.role == "cookie" and self.transport is not None:
            self.server.refused("timeout", self.peer, "no cookie")
            self.transport.abort()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.role == "recv":
            return _recv_buffer()
        return self._small

    def buffer_updated(self, nbytes: int) -> None:
        role = self.role
        if role == "recv":
            st = self.stream
            if st is not None and st.counting:
                st.count += nbytes
            return
        if role == "control":
            assert self.test is not None
            self.test.control_data(bytes(self._small[:nbytes]))
            return
        if role == "cookie":
            self.head += self._small[:nbytes]
            if len(self.head) >= COOKIE_SIZE:
                if self.timer is not None:
                    self.timer.cancel()
                    self.timer = None
                cookie, rest = bytes(self.head[:COOKIE_SIZE]), bytes(self.head[COOKIE_SIZE:])
                self.head = bytearray()
                self.server.route(self, cookie, rest)
            return
        # a sending stream's client should be silent: drop

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        if self.stream is not None:
            self.stream.paused = True

    def resume_writing(self) -> None:
        st = self.stream
        if st is not None:
            st.paused = False
            if not st.scheduled:  # one pump chain per stream, never two
                st.pump()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.server.conns.discard(self)
        role, self.role = self.role, "dead"
        if role == "control" and self.test is not None:
            self.test.control_lost()
        elif self.stream is not None:
            self.stream.lost()


class _TcpStream:
    """One TCP data stream of a test."""

    def __init__(self, test: Iperf3Test, sid: int, sender: bool, conn: _Conn) -> None:
        self.test = test
        self.id = sid
        self.sender = sender
        self.conn = conn
        self.transport = conn.transport
        self.count = 0  # received, or sent (taken by the kernel, see counted())
        self.queued = 0
        self.base = 0  # the count at the end of the omit period
        self.counting = False
        self.sending = False
        self.paused = False
        self.scheduled = False
        self.closed = False
        self.retransmits: int | None = None
        self.block = _send_block(test.params.block_len)
        self.t0 = 0.0
        self.lowat = 1

    def wake_per(self, nbytes: int) -> None:
        """A receiving stream: wake the loop only when ``nbytes`` are queued (or at EOF). Fewer
        wake-ups leave the client's sending kernel more of the CPU they share (see sink_lowat)."""
        if self.sender or self.transport is None or self.lowat == nbytes:
            return
        sock = self.transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, nbytes)
            self.lowat = nbytes
        except (OSError, AttributeError):
            pass

    def drain(self) -> None:
        """A receiving stream at TEST_END: read what is queued now (bytes the client sent before
        it ended the test, held back by the wake-up mark), so they count as received."""
        if self.sender or self.transport is None or self.closed:
            return
        self.wake_per(1)
        sock = self.transport.get_extra_info("socket")
        try:
            fd = sock.fileno()  # uvloop's socket object reads nothing itself; its descriptor does
        except (AttributeError, OSError, ValueError):
            return
        buf = _recv_buffer()
        for _ in range(DRAIN_READS):
            try:
                n = os.readv(fd, [buf])  # the descriptor is non-blocking: EAGAIN when drained
            except OSError:
                return
            if n <= 0:
                return
            if self.counting:
                self.count += n

    def start(self) -> None:
        self.counting = True
        if self.sender:
            self.sending = True
            self.t0 = time.perf_counter()
            self.pump()

    def pump(self) -> None:
        self.scheduled = False
        t = self.transport
        if t is None or not self.sending:
            return
        block = self.block
        rate = self.test.params.bandwidth_bps / 8  # -b: bytes per second per stream (0: as fast as it goes)
        for _ in range(SEND_BURST):
            if self.paused or not self.sending or t.is_closing():
                return
            elapsed = time.perf_counter() - self.t0
            if elapsed >= self.test.send_for:
                self.sending = False  # the client's -t (and -O) are over: it stops reading about now
                return
            if rate and self.queued >= rate * elapsed:
                self.scheduled = True
                asyncio.get_running_loop().call_later(PACE_TICK_S, self.pump)
                return
            room = self.test.send_room()
            if room is not None:
                if room <= 0:
                    self.sending = False
                    return
                if room < len(block):
                    block = block[:room]
            t.write(block)
            self.queued += len(block)
            self.test.sent_queued += len(block)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.pump)

    def sync(self) -> None:
        """For a sender: the count is what the kernel took (queued minus the write buffer)."""
        if self.sender and self.transport is not None and not self.closed:
            self.count = self.queued - self.transport.get_write_buffer_size()

    def stop(self) -> None:
        if not (self.counting or self.sending):
            return
        self.sync()
        if self.sender:
            # Still in this host's send queue (not yet acknowledged by the client): not sent.
            self.count -= _unacked(self.transport)
        self.counting = False
        self.sending = False
        if self.sender and not self.closed:
            self.retransmits = _retransmits(self.transport)

    def close(self) -> None:
        self.sending = False
        self.counting = False
        t = self.transport
        if t is not None and not t.is_closing():
            t.close()
            loop = asyncio.get_running_loop()
            loop.call_later(CLOSE_GRACE_S, t.abort)

    def lost(self) -> None:
        self.sync()
        self.closed = True
        self.sending = False
        self.test.stream_lost(self)


def _unacked(transport: asyncio.BaseTransport | None) -> int:
    """Bytes in a TCP socket's send queue that the peer has not acknowledged (SIOCOUTQ); 0 unknown."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return 0
    try:
        import fcntl
        import termios

        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ has TIOCOUTQ's number
    except (OSError, ValueError, AttributeError, ImportError):
        return 0
    return max(0, int(struct.unpack("i", raw)[0]))


def _retransmits(transport: asyncio.BaseTransport | None) -> int | None:
    if transport is None:
        return None
    sock = transport.get_extra_info("socket")
    opt = getattr(socket, "TCP_INFO", None)
    if sock is None or opt is None:
        return None
    try:
        info = parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, opt, 256))
    except (OSError, AttributeError, TypeError, ValueError):  # ValueError: the socket is closed
        return None
    return info.retransmits if info is not None else None


class _UdpStream:
    """One UDP data stream of a test: a client address, received or sent datagrams."""

    def __init__(self, test: Iperf3Test, sid: int, sender: bool, addr: Any) -> None:
        self.test = test
        self.id = sid
        self.sender = sender
        self.addr = addr
        self.rx = core.UdpReceiver()
        self.count = 0  # bytes received or sent
        self.base = 0
        self.packets_sent = 0
        self.counting = False
        self.sending = False
        self.closed = False
        self.retransmits: int | None = None
        self.buf = bytearray(test.params.block_len)
        self.last_rx = 0.0
        self.omitted = (0, 0)  # (packets, errors) when the omit period ended

    def datagram(self, data: bytes) -> None:
        if not self.counting:
            return
        try:
            sec, usec, count = udpw.decode_header(data, self.test.params.counters_64bit)
        except ValueError:
            return
        self.rx.add(count, sec, usec, time.time_ns(), len(data))
        self.count += len(data)
        self.last_rx = time.monotonic()

    def start(self) -> None:
        self.counting = True
        self.sending = self.sender

    def sync(self) -> None:
        pass

    def stop(self) -> None:
        self.counting = False
        self.sending = False

    def close(self) -> None:
        self.stop()
        self.closed = True
        self.test.server.udp_streams.pop(self.addr, None)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: Iperf3Server) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        st = self.server.udp_streams.get(addr)
        if len(data) == 4 and struct.unpack("=I", data)[0] in (udpw.CONNECT_MSG, 0x39383736):
            if st is None:
                st = self.server.udp_connect(addr)
            if st is not None and self.server.udp is not None:
                self.server.udp.sendto(struct.pack("=I", udpw.CONNECT_REPLY), addr)
            return
        if st is not None:
            st.datagram(data)

    def error_received(self, exc: Exception) -> None:
        pass


class TestEnded(Exception):
    """The test is over before its normal end: ``outcome`` names why."""

    def __init__(self, outcome: str, error: str | None = None, limit: bool = False) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.error = error
        self.limit = limit  # the server cut it: the client is told on the control connection


class Iperf3Test:
    """One test: its control connection, its streams, its counts. Runs as one task."""

    def __init__(self, server: Iperf3Server, test_id: int, conn: _Conn, cookie: bytes) -> None:
        self.server = server
        self.id = test_id
        self.conn = conn
        self.cookie = cookie
        self.peer = format_sockaddr(conn.peer)
        self.peer_ip = str(conn.peer[0]) if isinstance(conn.peer, tuple) else ""
        self.reader = ControlReader()
        self.wake = asyncio.Event()
        self.control_closed = False
        self.params = Iperf3Params()
        self.roles: list[bool] = []
        self.streams: list[_TcpStream | _UdpStream] = []
        self.streams_ready = asyncio.Event()
        self.accepting = False
        self.running = False
        self.sent_queued = 0
        self.budget: int | None = None
        #: A sender stops by itself after the client's -t plus -O (from TEST_RUNNING): what it sends
        #: later would sit unread in the client's socket when the client stops, yet count as sent.
        self.send_for = float("inf")
        self.start_ns = 0
        self.measure_ns = 0  # start of counting after the omit period
        self.end_ns = 0
        self.intervals: list[IntervalRow] = []
        self.cut: TestEnded | None = None
        self.cpu0 = os.times()
        self.task: asyncio.Task[None] | None = None

    # ----- control bytes -----------------------------------------------------------------------
    def control_data(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
        except ControlError as exc:
            self._fail(TestEnded("protocol", str(exc)))
            return
        self.wake.set()

    def control_lost(self) -> None:
        self.control_closed = True
        self.wake.set()
        self.streams_ready.set()

    def _fail(self, ended: TestEnded) -> None:
        if self.cut is None:
            self.cut = ended
        self.wake.set()
        self.streams_ready.set()

    def write(self, data: bytes) -> None:
        t = self.conn.transport
        if t is not None and not t.is_closing():
            t.write(data)

    async def next_event(self, timeout: float, json_limit: int | None = None) -> StateEvent | JsonEvent:
        if json_limit is not None:
            self.reader.expect_json(json_limit)
        deadline = time.monotonic() + timeout
        while True:
            if self.cut is not None:
                raise self.cut
            try:
                ev = self.reader.next_event()
            except ControlError as exc:
                raise TestEnded("protocol", str(exc)) from None
            if ev is not None:
                return ev
            if self.control_closed:
                raise TestEnded("disconnect", "the client closed the control connection")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestEnded("timeout", f"the client sent nothing for {timeout:g}s")
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), left)
            except asyncio.TimeoutError:
                pass

    # ----- streams -----------------------------------------------------------------------------
    def add_tcp_stream(self, conn: _Conn, rest: bytes) -> bool:
        if not self.accepting or self.params.udp or len(self.streams) >= len(self.roles):
            return False
        i = len(self.streams)
        st = _TcpStream(self, stream_id(i), self.roles[i], conn)
        conn.stream = st
        conn.test = self
        conn.role = "send" if st.sender else "recv"
        t = conn.transport
        if t is not None:
            if st.sender:
                t.set_write_buffer_limits(high=SEND_BUFFER)
            if self.params.window:
                sock = t.get_extra_info("socket")
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF if st.sender else socket.SO_RCVBUF,
                                    self.params.window)
                except (OSError, AttributeError):
                    pass
            # After -w: Linux caps the mark at half the receive buffer when it is set.
            if not st.sender and not self.params.udp and (
                    not self.params.bandwidth_bps or self.params.bandwidth_bps >= LOWAT_MIN_BPS):
                st.wake_per(sink_lowat(self.params.block_len))
        self.streams.append(st)
        if len(self.streams) == len(self.roles):
            self.accepting = False
            self.streams_ready.set()
        return True

    def add_udp_stream(self, addr: Any) -> _UdpStream | None:
        if not self.accepting or not self.params.udp or len(self.streams) >= len(self.roles):
            return None
        i = len(self.streams)
        st = _UdpStream(self, stream_id(i), self.roles[i], addr)
        self.streams.append(st)
        if len(self.streams) == len(self.roles):
            self.accepting = False
            self.streams_ready.set()
        return st

    def stream_lost(self, st: _TcpStream) -> None:
        if self.running and not st.sender and self.cut is None:
            pass  # a client may close a receive stream at its end; TEST_END decides

    def send_room(self) -> int | None:
        if self.budget is None:
            return None
        return self.budget - self.sent_queued

    # ----- the test --------------------------------------------------------------------------
    async def run(self) -> None:
        outcome, error = "ok", None
        summary: Iperf3TestSummary | None = None
        try:
            await self._run()
        except TestEnded as exc:
            outcome, error = exc.outcome, exc.error
            if exc.limit:
                await self._linger()
        except asyncio.CancelledError:
            outcome, error = "server-stop", None
            self.write(encode_state(Iperf3State.SERVER_TERMINATE))
        except (OSError, ConnectionError) as exc:
            outcome, error = "error", str(exc)
        finally:
            summary = self._finish(outcome, error)
        if summary is not None:
            self.server.test_done(self, summary)

    async def _run(self) -> None:
        idle = self.server.config.idle_timeout_s
        self.write(encode_state(Iperf3State.PARAM_EXCHANGE))
        ev = await self.next_event(idle, core.MAX_PARAMS_JSON)
        if not isinstance(ev, JsonEvent):
            raise TestEnded("protocol", "expected the parameters")
        p = core.parse_params(ev.doc, max_streams=self.server.config.max_streams,
                              max_rate_bps=self.server.config.max_rate_bps)
        if isinstance(p, ParamError):
            self.write(core.encode_error(p.code))
            self.server.refused("params", self.conn.peer, p.reason)
            raise TestEnded("refused", p.reason)
        self.params = p
        self.roles = core.server_sends(p)
        self.budget = core.send_budget(p)
        if p.duration_s and self.budget is None:
            self.send_for = float(p.duration_s + p.omit_s)
        turn: asyncio.Future[None] | None = None
        if p.udp:
            # A UDP stream is known by its client address only: one UDP test per client host
            # connects its streams at a time, so two tests from one host never swap streams.
            turn = await self.server.udp_turn(self.peer_ip, idle)
            self.server.udp_waiting.append(self)
        self.accepting = True
        self.write(encode_state(Iperf3State.CREATE_STREAMS))
        try:
            await asyncio.wait_for(self.streams_ready.wait(), idle)
        except asyncio.TimeoutError:
            raise TestEnded("timeout", f"{len(self.streams)} of {len(self.roles)} streams connected "
                                       f"within {idle:g}s") from None
        finally:
            self.accepting = False
            if self in self.server.udp_waiting:
                self.server.udp_waiting.remove(self)
            if turn is not None:
                self.server.udp_turn_done(self.peer_ip, turn)
        if self.cut is not None:
            raise self.cut
        if self.control_closed:
            raise TestEnded("disconnect", "the client closed the control connection")
        self.write(encode_state(Iperf3State.TEST_START) + encode_state(Iperf3State.TEST_RUNNING))
        self.cpu0 = os.times()
        self.start_ns = self.measure_ns = time.perf_counter_ns()
        self.running = True
        for st in self.streams:
            st.start()
        sender_task = asyncio.ensure_future(self._udp_send()) if p.udp and any(self.roles) else None
        ticker = asyncio.ensure_future(self._tick())
        max_s = self.server.config.max_duration_s
        cutter = asyncio.get_running_loop().call_later(
            max_s, self._cut, "max_duration", max_s, Iperf3State.SERVER_TERMINATE) if max_s is not None else None
        self.server.emit("test_start", id=self.id, peer=self.peer, mode=p.mode, streams=p.streams,
                         duration_s=p.duration_s, omit_s=p.omit_s, bytes=p.num_bytes or None,
                         blocks=p.blockcount or None, length=p.block_len, window=p.window or None,
                         bandwidth=p.bandwidth_bps if p.udp else None, client_version=p.client_version or None)
        try:
            limit = p.duration_s + p.omit_s + idle + 5.0 if p.duration_s else None
            while True:
                ev = await self.next_event(limit if limit is not None else 1e9)
                if not isinstance(ev, StateEvent):
                    raise TestEnded("protocol", "unexpected JSON while the test ran")
                if ev.state == Iperf3State.TEST_END:
                    for st in self.streams:
                        if isinstance(st, _TcpStream):
                            st.drain()
                    await self._drain_udp()
                    break
                if ev.state == Iperf3State.CLIENT_TERMINATE:
                    raise TestEnded("client-terminate", "the client ended the test early")
                if ev.state in (Iperf3State.TEST_START, Iperf3State.TEST_RUNNING):
                    continue
                raise TestEnded("protocol", f"unexpected state {ev.state} while the test ran")
        finally:
            ticker.cancel()
            if cutter is not None:
                cutter.cancel()
            if sender_task is not None:
                sender_task.cancel()
            self._stop_streams()
        for st in self.streams:
            if isinstance(st, _TcpStream):
                st.close()
        self.write(encode_state(Iperf3State.EXCHANGE_RESULTS))
        ev = await self.next_event(idle, core.MAX_RESULTS_JSON)
        if not isinstance(ev, JsonEvent):
            raise TestEnded("protocol", "expected the client's results")
        counts = self._counts()
        out = None
        if p.get_server_output:
            out = core.server_output_text(self.peer, p, self.intervals, counts)
        self.write(encode_json(core.results_doc(counts, self._cpu(), server_output=out)))
        self.write(encode_state(Iperf3State.DISPLAY_RESULTS))
        try:
            ev = await self.next_event(DONE_WAIT_S)
        except TestEnded:
            return  # the results are out: a client that just closes is done too
        if not isinstance(ev, StateEvent) or ev.state != Iperf3State.IPERF_DONE:
            return

    async def _drain_udp(self) -> None:
        """UDP receive streams: datagrams already queued in this host when TEST_END was read were
        sent before it; read them (until none came for ``UDP_QUIET_S``, at most ``UDP_DRAIN_S``)
        so they count as received rather than as lost."""
        rx = [st for st in self.streams if isinstance(st, _UdpStream) and not st.sender]
        if not rx:
            return
        deadline = time.monotonic() + UDP_DRAIN_S
        while time.monotonic() < deadline:
            await asyncio.sleep(UDP_QUIET_S / 2)
            if time.monotonic() - max(st.last_rx for st in rx) >= UDP_QUIET_S:
                return

    async def _linger(self) -> None:
        """After a cut: the streams stay open (read and dropped, nothing sent) until the client,
        told on the control connection, closes it, or ``CLOSE_GRACE_S``: a client still writing
        then reads the server's reason instead of failing on a closed stream."""
        self._stop_streams()
        deadline = time.monotonic() + CLOSE_GRACE_S
        while not self.control_closed and time.monotonic() < deadline:
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break

    def _stop_streams(self) -> None:
        if self.running:
            self.end_ns = time.perf_counter_ns()
            self.running = False
        for st in self.streams:
            st.stop()

    def _cpu(self) -> tuple[float, float, float]:
        t1 = os.times()
        wall = max((self.end_ns or time.perf_counter_ns()) - self.start_ns, 1) / 1e9
        user = t1.user - self.cpu0.user
        system = t1.system - self.cpu0.system
        return 100 * (user + system) / wall, 100 * user / wall, 100 * system / wall

    def _counts(self) -> list[StreamCount]:
        secs = max((self.end_ns or time.perf_counter_ns()) - self.measure_ns, 0) / 1e9 if self.start_ns else 0.0
        out = []
        for st in self.streams:
            n = max(0, st.count - st.base)
            if isinstance(st, _UdpStream):
                out.append(StreamCount(
                    st.id, st.sender, n, secs, packets=st.packets_sent if st.sender else st.rx.highest,
                    errors=0 if st.sender else st.rx.errors, out_of_order=0 if st.sender else st.rx.out_of_order,
                    jitter_s=0.0 if st.sender else st.rx.jitter_s, omitted_packets=st.omitted[0],
                    omitted_errors=st.omitted[1]))
            else:
                out.append(StreamCount(st.id, st.sender, n, secs, retransmits=st.retransmits))
        return out

    async def _tick(self) -> None:
        """Once a second while the test runs: intervals, omit end, idle, --max-duration, --max-rate."""
        cfg = self.server.config
        p = self.params
        last = [0] * len(self.streams)
        idle_since = time.monotonic()
        omit_left = p.omit_s
        t_prev = time.perf_counter_ns()
        while True:
            await asyncio.sleep(1.0)
            for st in self.streams:
                st.sync()
            now = time.perf_counter_ns()
            if omit_left > 0:
                omit_left -= 1
                if omit_left == 0:
                    for i, st in enumerate(self.streams):
                        st.base = st.count
                        last[i] = st.count
                        if isinstance(st, _UdpStream):
                            st.omitted = (st.packets_sent if st.sender else st.rx.highest,
                                          0 if st.sender else st.rx.errors)
                    self.measure_ns = now
                    t_prev = now
                continue
            total = 0
            for i, st in enumerate(self.streams):
                delta = st.count - last[i]
                last[i] = st.count
                total += delta
                if p.get_server_output and len(self.intervals) < MAX_INTERVAL_ROWS:
                    self.intervals.append(IntervalRow(st.id, (t_prev - self.measure_ns) / 1e9,
                                                      (now - self.measure_ns) / 1e9, delta))
            span = (now - t_prev) / 1e9
            t_prev = now
            if total > 0:  # idle since the last second that carried data, not since a change
                idle_since = time.monotonic()
            else:  # a quiet second: a slow sender's bytes must not wait under the wake-up mark
                for st in self.streams:
                    if isinstance(st, _TcpStream):
                        st.wake_per(1)
            if total == 0 and time.monotonic() - idle_since >= cfg.idle_timeout_s:
                self._cut("idle_timeout", cfg.idle_timeout_s, Iperf3State.SERVER_TERMINATE)
                return
            if cfg.max_rate_bps is not None and span > 0 and total * 8 / span > cfg.max_rate_bps:
                self._cut("max_rate", cfg.max_rate_bps, None)
                return

    def _cut(self, which: str, value: float, state: Iperf3State | None) -> None:
        self.server.limit_hit(which, self, value)
        if state is None:
            self.write(core.encode_error(core.IETOTALRATE))
        else:
            self.write(encode_state(state))
        self._fail(TestEnded(which.replace("_", "-"), f"{which} {value:g} reached", limit=True))

    async def _udp_send(self) -> None:
        """-u -R / --bidir: paced datagrams with iperf3's header, at the client's -b per stream."""
        udp = self.server.udp
        p = self.params
        senders = [st for st in self.streams if isinstance(st, _UdpStream) and st.sender]
        if udp is None or not senders:
            return
        per_s = p.bandwidth_bps / 8 / p.block_len if p.bandwidth_bps else None
        t0 = time.perf_counter()
        backlog: Callable[[], int] = getattr(udp, "get_write_buffer_size", lambda: 0)
        while True:
            elapsed = time.perf_counter() - t0
            if elapsed >= self.send_for:
                return
            for st in senders:
                if not st.sending:
                    continue
                due = UDP_BURST if per_s is None else min(UDP_BURST, int(per_s * elapsed) - st.packets_sent + 1)
                for _ in range(max(0, due)):
                    if backlog() > SEND_BUFFER:
                        break
                    room = self.send_room()
                    if room is not None and room <= 0:
                        st.sending = False
                        break
                    st.packets_sent += 1
                    udpw.encode_header_into(st.buf, st.packets_sent, time.time_ns(), p.counters_64bit)
                    udp.sendto(bytes(st.buf), st.addr)
                    st.count += len(st.buf)
                    self.sent_queued += len(st.buf)
            await asyncio.sleep(UDP_TICK_S)

    def _finish(self, outcome: str, error: str | None) -> Iperf3TestSummary | None:
        self._stop_streams()
        for st in self.streams:
            st.close()
        t = self.conn.transport
        self.server.tests.pop(self.cookie, None)
        if self in self.server.udp_waiting:
            self.server.udp_waiting.remove(self)
        try:
            return self._summary(outcome, error, t)
        finally:
            if t is not None and not t.is_closing():
                t.close()
                asyncio.get_running_loop().call_later(CLOSE_GRACE_S, t.abort)

    def _summary(self, outcome: str, error: str | None, t: asyncio.Transport | None) -> Iperf3TestSummary | None:
        if not self.start_ns:
            # Never ran: no test summary; counted and logged as refused (parameters already were).
            if outcome != "refused":
                if outcome == "protocol" and t is not None and not t.is_closing():
                    t.write(core.encode_error(core.IERECVPARAMS))  # the client says why it stopped
                self.server.refused(outcome.replace("-", "_"), self.conn.peer, error or outcome)
            return None
        return core.summarize(self.id, self.peer, self.params, self._counts(), outcome, error)


class Iperf3Server:
    """A running ``serve iperf3``: start(), then wait for ``done`` or stop()."""

    def __init__(self, config: Iperf3ServerConfig, *, on_event: ServerEventSink | None = None,
                 on_debug: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.on_event = on_event
        self.on_debug = on_debug
        self.host = config.host
        self.port = config.port
        self.filter = CidrFilter(config.allow, config.deny)
        self.tests: dict[bytes, Iperf3Test] = {}
        self.conns: set[_Conn] = set()
        self.udp_streams: dict[Any, _UdpStream] = {}
        self.udp_waiting: list[Iperf3Test] = []
        self.udp_creating: dict[str, asyncio.Future[None]] = {}  # client host -> the UDP test connecting streams
        self.udp: asyncio.DatagramTransport | None = None
        self.done = asyncio.Event()
        self.stopping = False
        self._server: asyncio.AbstractServer | None = None
        self._next_id = 1
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = 0
        self._completed = 0
        self._cut = 0
        self._refused = 0
        self._peak = 0
        self._rx = 0
        self._tx = 0
        self._limits: dict[str, int] = {}
        self._refused_by: dict[str, int] = {}
        self._refusal_logged: dict[str, float] = {}
        self._start_ns = 0
        self._once_taken = False

    def emit(self, event: str, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event({"event": event, "time": wall_iso(), **{k: v for k, v in fields.items() if v is not None}})

    def debug(self, text: str) -> None:
        if self.on_debug is not None:
            self.on_debug(text)

    # ----- lifecycle --------------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        cfg = self.config
        try:
            self._server = await loop.create_server(lambda: _Conn(self), cfg.host, cfg.port, backlog=1024,
                                                    reuse_address=True)
        except OSError as exc:
            raise bind_failure(cfg.host, cfg.port, exc) from None
        name = self._server.sockets[0].getsockname()
        self.host, self.port = str(name[0]), int(name[1])
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(self.host, self.port))
            self.udp = transport
            sock = transport.get_extra_info("socket")
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
                except OSError:
                    pass
        except OSError as exc:
            self._server.close()
            raise bind_failure(self.host, self.port, exc) from None
        self._start_ns = time.perf_counter_ns()
        self.emit("listening", host=self.host, port=self.port)
        return self.host, self.port

    @property
    def address(self) -> str:
        return format_host_port(self.host, self.port)

    async def stop(self) -> None:
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        deadline = time.monotonic() + STOP_GRACE_S
        while self._tasks and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.abort()
        if self.udp is not None:
            self.udp.close()
        await asyncio.sleep(0)

    def summary(self, stopped_by: str | None = None) -> Iperf3ServeSummary:
        return Iperf3ServeSummary(
            host=self.host, port=self.port, tests=self._started, completed=self._completed, cut=self._cut,
            refused=self._refused, peak_concurrent=self._peak, bytes_received=self._rx, bytes_sent=self._tx,
            refused_by=dict(self._refused_by), limits_hit=dict(self._limits),
            elapsed_ms=ms(time.perf_counter_ns() - self._start_ns) if self._start_ns else 0.0, stopped_by=stopped_by,
        )

    # ----- connections ------------------------------------------------------------------------
    @property
    def max_conns(self) -> int:
        """Connections open at once, at most: every test's control and streams, plus room for
        clients still sending their cookie (a flood of idle connections is refused, not served)."""
        return self.config.max_tests * (self.config.max_streams + 1) + 64

    def admit(self, peer: Any) -> bool:
        if self.stopping:
            return False
        if len(self.conns) >= self.max_conns:
            self.refused("max_conns", peer, f"{self.max_conns} connections open")
            return False
        if self.filter.active and not self.filter.permits(str(peer[0]) if isinstance(peer, tuple) else ""):
            self.refused("denied", peer, "source not allowed")
            return False
        return True

    def refused(self, why: str, peer: Any, detail: str) -> None:
        self._refused += 1
        count = self._refused_by[why] = self._refused_by.get(why, 0) + 1
        now = time.monotonic()
        if now - self._refusal_logged.get(why, -1e9) < 1.0 and why in ("max_conns", "denied", "timeout"):
            return  # a flood logs one event per second per reason (with the count so far)
        self._refusal_logged[why] = now
        self.emit("refused", reason=why, peer=format_sockaddr(peer), detail=detail, count=count)

    def route(self, conn: _Conn, cookie: bytes, rest: bytes) -> None:
        t = conn.transport
        assert t is not None
        test = self.tests.get(cookie)
        if test is not None:
            if not test.add_tcp_stream(conn, rest):
                self.refused("protocol", conn.peer, "a data stream the test did not expect")
                conn.role = "dead"
                t.close()
            return
        # Any 37 bytes open a test, as with iperf3 (netkit's own client sends its binary session
        # header here when it finds out what the server is, and keeps it as the cookie).
        if len(self.tests) >= self.config.max_tests or self.stopping or self._once_taken:
            t.write(encode_state(Iperf3State.ACCESS_DENIED))
            self.refused("max_tests", conn.peer, f"{self.config.max_tests} tests running")
            conn.role = "dead"
            t.close()
            return
        test = Iperf3Test(self, self._next_id, conn, cookie)
        self._next_id += 1
        self.tests[cookie] = test
        self._peak = max(self._peak, len(self.tests))
        conn.role = "control"
        conn.test = test
        if rest:
            test.control_data(rest)
        task = asyncio.ensure_future(test.run())
        test.task = task
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        if self.config.once:
            self._once_taken = True  # the listener stays open: this test's data streams come through it

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.debug(f"test task failed: {task.exception()!r}")
        if self.config.once:
            self.done.set()

    async def udp_turn(self, ip: str, timeout: float) -> asyncio.Future[None]:
        """Wait (at most ``timeout``) until no other UDP test from ``ip`` connects its streams;
        the returned future is this test's turn, ended by :meth:`udp_turn_done`."""
        deadline = time.monotonic() + timeout
        while (other := self.udp_creating.get(ip)) is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestEnded("timeout", "another UDP test from this host kept connecting its streams")
            try:
                await asyncio.wait_for(asyncio.shield(other), left)
            except asyncio.TimeoutError:
                pass
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.udp_creating[ip] = turn
        return turn

    def udp_turn_done(self, ip: str, turn: asyncio.Future[None]) -> None:
        if self.udp_creating.get(ip) is turn:
            del self.udp_creating[ip]
        if not turn.done():
            turn.set_result(None)

    def udp_connect(self, addr: Any) -> _UdpStream | None:
        ip = str(addr[0]) if isinstance(addr, tuple) else ""
        for test in self.udp_waiting:
            if test.peer_ip == ip:
                st = test.add_udp_stream(addr)
                if st is not None:
                    self.udp_streams[addr] = st
                    return st
        return None

    def test_done(self, test: Iperf3Test, summary: Iperf3TestSummary) -> None:
        self._started += 1
        if summary.outcome == "ok":
            self._completed += 1
        else:
            self._cut += 1
        self._rx += summary.bytes_received
        self._tx += summary.bytes_sent
        self.emit("test", **dataclasses.asdict(summary))

    def limit_hit(self, which: str, test: Iperf3Test, value: float) -> None:
        self._limits[which] = self._limits.get(which, 0) + 1
        self.emit("limit", limit=which, id=test.id, peer=test.peer, value=value)


async def serve_iperf3(
    config: Iperf3ServerConfig,
    *,
    on_event: ServerEventSink | None = None,
    on_ready: Callable[[Iperf3Server], None] | None = None,
    on_debug: Callable[[str], None] | None = None,
    stop: StopSignal | None = None,
    on_stop: Callable[[StopSignal], None] | None = None,
) -> Iperf3ServeSummary:
    """Serve until ``stop`` fires (SIGINT/SIGTERM) or, with ``once``, one test is over."""
    from netkit.io.servers.tcp_server import raise_nofile_limit, run_until_stopped

    server = Iperf3Server(config, on_event=on_event, on_debug=on_debug)
    raise_nofile_limit(server.max_conns + 64)
    return server.summary(await run_until_stopped(server, stop=stop, on_ready=on_ready, on_stop=on_stop))


def serve_iperf3_sync(config: Iperf3ServerConfig, **kwargs: Any) -> Iperf3ServeSummary:
    """Blocking twin of :func:`serve_iperf3` (until SIGINT/SIGTERM, or ``--once``)."""
    from netkit.io.aio import run

    return run(serve_iperf3(config, **kwargs))
