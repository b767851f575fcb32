"""``measure latency``'s probers: one per method (udp, tcp-echo, tcp-connect, icmp).

Each prober owns its socket(s) for one target and turns what comes back into accounting events
(``netkit.core.accounting``): ``open`` resolves and connects, ``send(seq)`` sends probe ``seq``,
the socket callbacks deliver replies, ``final_query`` asks netkit's reflector for its count
(per-direction loss) and ``result`` sums it up. When to send is the scheduler's business
(``netkit.io.measure.latency.measure_target``), so ``netkit monitor`` drives the same probers.

Sockets are non-blocking and read with ``loop.add_reader`` + ``recvmsg`` so that the kernel's
receive timestamps (``netkit.io.timestamps``) are available; asyncio's protocols would drop them.
The wire formats (probe packet, ICMP echo) are pure code in ``netkit.core.packet``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable

from netkit.core import packet
from netkit.core.accounting import Accounting, ProbeOutcome, ReplyEvent
from netkit.core.errors import CheckFailed, RuntimeFailure
from netkit.core.errqueue import TxStamp
from netkit.core.kernel_rtt import Timestamps, TxStampBook, pick_rtt_stamped, prevailing
from netkit.core.latency_models import (
    LatencyConfig,
    Method,
    ProbeEvent,
    ReflectorKind,
    TargetResult,
    receive_buffer_bytes,
)
from netkit.io import timestamps
from netkit.io.clients.reflector_query import NS, ask_reflector_count
from netkit.io.resolve import failure_reason, resolve
from netkit.io.udp_buffers import BUFFER_BYTES, drops_since, socket_drops, tune_buffers

EventSink = Callable[[ProbeEvent], None]


class LatencyProber:
    """Base class: one target, one method. Subclasses implement open/send/close."""

    method: Method
    #: At ``-i 0``, the most probes outstanding at once (None: no cap). TCP methods cap it: each
    #: probe holds a file descriptor (tcp-connect) or bytes in a send buffer (tcp-echo).
    max_in_flight: int | None = None

    def __init__(self, label: str, host: str, port: int, cfg: LatencyConfig, sink: EventSink | None) -> None:
        self.label = label
        self.host = host
        self.port = port
        self.cfg = cfg
        self.sink = sink
        self.acc = Accounting(max(1, round(cfg.timeout_s * NS)))
        self.address: str | None = None
        self.error: str | None = None
        self.reflector: ReflectorKind | None = None
        self.kernel_ts_used = 0
        #: Replies timed each way (kernel-both, kernel-rx, user): the JSON's ``timestamps``.
        self.stamp_counts: dict[Timestamps, int] = dict.fromkeys(Timestamps, 0)
        self.changed = asyncio.Event()
        self._send_real: dict[int, int] = {}
        self.loop = asyncio.get_running_loop()

    # ----- subclass interface ------------------------------------------------------------
    async def open(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def send(self, seq: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def final_query(self, hurry: bool = False) -> None:
        """Ask the reflector for its count (udp against netkit's reflector only)."""

    def on_expired(self, seqs: list[int]) -> None:
        for s in seqs:
            self._send_real.pop(s, None)
            self._emit(s, ProbeOutcome.TIMEOUT, None, False)

    def local_drops(self) -> int | None:
        """Replies this host's socket buffer dropped since ``open`` (None: not measured)."""
        return None

    # ----- helpers -----------------------------------------------------------------------
    def _emit(self, seq: int, kind: ProbeOutcome, rtt_ns: int | None, reordered: bool) -> None:
        if self.sink is not None:
            self.sink(ProbeEvent(self.label, self.address, seq, kind, rtt_ns, reordered, self.cfg.size,
                                 self.error if kind is ProbeOutcome.ERROR else None))

    def _record_send(self, seq: int, t_mono: int, t_real: int) -> None:
        self.acc.on_sent(seq, t_mono)
        self._send_real[seq] = t_real

    def _deliver(self, seq: int, t_mono: int, kernel_real: int | None, refl_count: int | None = None,
                 kernel_tx: int | None = None) -> ReplyEvent:
        send_mono = self.acc.send_time(seq)
        rtt: int | None = None
        if send_mono is not None:
            rtt, kind = pick_rtt_stamped(t_mono - send_mono, self._send_real.get(seq), kernel_tx, kernel_real)
            self.stamp_counts[kind] += 1
            self.kernel_ts_used += kind is not Timestamps.USER
        self._send_real.pop(seq, None)
        ev = self.acc.on_reply(seq, t_mono, rtt, refl_count)
        self._emit(seq, ev.kind, ev.rtt_ns, ev.reordered)
        self.changed.set()
        return ev

    def _add_reader(self, sock: socket.socket, cb: Callable[[], None]) -> None:
        self.loop.add_reader(sock.fileno(), cb)

    def _remove_reader(self, sock: socket.socket | None) -> None:
        if sock is None or sock.fileno() < 0:
            return
        try:
            self.loop.remove_reader(sock.fileno())
        except (ValueError, OSError, RuntimeError):
            pass

    def result(self, elapsed_ns: int, send_ns: int = 0) -> TargetResult:
        summary = self.acc.finish(local_drops=self.local_drops())
        return TargetResult(
            target=self.label, address=self.address, acc=summary, reflector=self.reflector,
            kernel_timestamps=self.kernel_ts_used > 0, error=self.error, elapsed_ns=elapsed_ns,
            detail=self.describe(), send_ns=send_ns, timestamps=prevailing(self.stamp_counts),
        )

    def describe(self) -> str:
        """How this prober measured, in a few words (shown with -v)."""
        kind = prevailing(self.stamp_counts)
        if kind is Timestamps.KERNEL_BOTH:
            stamps = "kernel transmit and receive timestamps"
        elif kind is Timestamps.KERNEL_RX:
            stamps = "kernel receive timestamps"
        else:
            stamps = "user-space timestamps"
        return f"{self.method}, {stamps}"


# ----- UDP ----------------------------------------------------------------------------------
def udp_session_id(keyed: bool) -> int:
    """A probe session id: random, or for a keyed reflector one it can check for freshness
    (the wall-clock second and random bits, :mod:`netkit.core.keyed`)."""
    if keyed:
        from netkit.io.servers.server_guard import new_keyed_session

        return new_keyed_session()
    return secrets.randbits(64)


class UdpProber(LatencyProber):
    """Probe packets to a reflector; works against netkit's (full accounting) or a plain echo."""

    method = Method.UDP

    def __init__(self, label: str, host: str, port: int, cfg: LatencyConfig, sink: EventSink | None) -> None:
        super().__init__(label, host, port, cfg, sink)
        self.sock: socket.socket | None = None
        self.size = max(self.cfg.size, packet.HEADER_SIZE)
        # --key: a keyed reflector answers only signed probes of a session id it can check
        # (netkit.core.keyed), and the probe needs room for the 16-byte tag
        self.key = self.cfg.key
        self.session = udp_session_id(self.key is not None)
        if self.key is not None:
            from netkit.core.keyed import KEYED_MIN_SIZE

            self.size = max(self.size, KEYED_MIN_SIZE)
        self._buf = bytearray(self.size)
        #: Added to every sequence number on the wire: a caller that goes on with one session over
        #: several runs (the monitor's rounds) starts each run past the last one's numbers, which a
        #: keyed reflector's replay window requires. Replies below it are a previous run's, late.
        self.seq_base = 0
        self._query_count: int | None = None
        self.foreign = 0
        self._turnaround: list[int] = []  # reflector's hold time per reply (last 10,000), for -v
        self._drops_at_open: int | None = None
        self.rcvbuf = 0
        #: Read the socket's drop counter at open and at the end (a scan of /proc/net/udp each:
        #: cheap for one run, not for a monitor's thousands of rounds, which turns it off).
        self.count_local_drops = True

    async def open(self) -> None:
        res = await resolve(self.host, self.port, family=self.cfg.family, type=socket.SOCK_DGRAM)
        self.address = res.address
        sock = socket.socket(res.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # Room for the replies of a burst while this process is not scheduled: an overflow
            # here would read as loss on the way back (it is reported apart, from the drop counter).
            rate = 1.0 / self.cfg.interval_s if self.cfg.interval_s > 0 else None
            tune_buffers(sock, receive_buffer_bytes(rate, self.size, BUFFER_BYTES))
            self.rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            sock.connect(res.sockaddr)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self._drops_at_open = socket_drops(sock) if self.count_local_drops else None
        if self.cfg.kernel_timestamps:
            timestamps.enable(sock)
        self._add_reader(sock, self._readable)

    def send(self, seq: int) -> None:
        assert self.sock is not None
        buf = self._buf
        t_mono = time.perf_counter_ns()
        packet.encode_into(buf, self.session, self.seq_base + seq, t_mono)
        if self.key is not None:  # sign after encoding: the tag covers the send time
            from netkit.core.keyed import sign_probe_into

            sign_probe_into(self.key, buf)
        # Read the wall clock last and record after the send: the reply cannot be handled before
        # this returns to the loop, and nothing else sits between the timestamp and the send.
        t_real = time.time_ns()
        try:
            self.sock.send(buf)
        except ConnectionRefusedError:
            self.error = "port unreachable (nothing listening)"
        except OSError as exc:
            self.error = exc.strerror or str(exc)
        self._record_send(seq, t_mono, t_real)

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(1024):
            try:
                data, anc, _flags, _addr = sock.recvmsg(65536, timestamps.CMSG_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                self.error = "port unreachable (nothing listening)"
                continue
            except OSError as exc:
                self.error = exc.strerror or str(exc)
                return
            t = time.perf_counter_ns()
            probe, _reason = packet.try_decode(data)
            if probe is None or probe.session != self.session:
                self.foreign += 1
                continue
            if probe.query:
                if probe.reflected:
                    self._query_count = probe.refl_count
                    self.changed.set()
                continue
            if probe.reflected:
                self.reflector = ReflectorKind.NETKIT
                if len(self._turnaround) < 10_000:
                    self._turnaround.append(probe.refl_send_ns - probe.refl_recv_ns)
            elif self.reflector is None:
                self.reflector = ReflectorKind.PLAIN
            if probe.seq < self.seq_base:
                self.foreign += 1  # a previous run's late reply in the same session
                continue
            self._deliver(probe.seq - self.seq_base, t, timestamps.from_ancdata(anc),
                          probe.refl_count if probe.reflected else None)

    async def final_query(self, hurry: bool = False) -> None:
        """Ask netkit's reflector how many probes it received (exact per-direction loss).

        The query is header-only (56 bytes), so a firewall rule can tell it from probes.
        ``hurry`` (after Ctrl-C): two short tries instead of five.
        """
        if self.reflector is not ReflectorKind.NETKIT or self.sock is None:
            return
        count = await ask_reflector_count(
            self.sock, self.session, self.key, self.changed, lambda: self._query_count,
            timeout_s=self.cfg.timeout_s, hurry=hurry,
        )
        if count is not None:
            self.acc.on_reflector_count(count, final=True)

    def local_drops(self) -> int | None:
        return drops_since(self.sock, self._drops_at_open)

    def describe(self) -> str:
        text = super().describe()
        text += f", a {self.rcvbuf // 1024:,} KiB receive buffer"
        if self._turnaround:
            held = sorted(self._turnaround)[len(self._turnaround) // 2]
            text += f", the reflector held each probe {held / 1e3:.1f} us (median, its own clock)"
        return text

    def result(self, elapsed_ns: int, send_ns: int = 0) -> TargetResult:
        if self.foreign and self.error is None:
            self.error = f"{self.foreign} replies were not echoes of netkit's probes (not an echo service?)"
        return super().result(elapsed_ns, send_ns)

    def close(self) -> None:
        self._remove_reader(self.sock)
        if self.sock is not None:
            self.sock.close()


# ----- TCP echo -----------------------------------------------------------------------------
class TcpEchoProber(LatencyProber):
    """Request/response over one connection to an echo server: each probe is a probe packet."""

    method = Method.TCP_ECHO
    max_in_flight = 256  # at -i 0: at most this many probes' bytes queued behind the socket

    def __init__(self, label: str, host: str, port: int, cfg: LatencyConfig, sink: EventSink | None) -> None:
        super().__init__(label, host, port, cfg, sink)
        self.sock: socket.socket | None = None
        self.session = secrets.randbits(64)
        self.size = max(self.cfg.size, packet.HEADER_SIZE)
        self._buf = bytearray(self.size)
        self._in = bytearray()
        self._out = bytearray()
        self._writer = False

    async def open(self) -> None:
        res = await resolve(self.host, self.port, family=self.cfg.family, type=socket.SOCK_STREAM)
        self.address = res.address
        sock = socket.socket(res.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(self.loop.sock_connect(sock, res.sockaddr), max(self.cfg.timeout_s, 3.0))
        except asyncio.TimeoutError:
            sock.close()
            raise CheckFailed(f"{self.label}: connect timed out") from None
        except OSError as exc:
            sock.close()
            raise CheckFailed(f"{self.label}: {failure_reason(exc)}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        if self.cfg.kernel_timestamps:
            timestamps.enable(sock)
        self._add_reader(sock, self._readable)

    def send(self, seq: int) -> None:
        buf = self._buf
        t_mono = time.perf_counter_ns()
        packet.encode_into(buf, self.session, seq, t_mono)
        t_real = time.time_ns()
        if self.sock is None or self._out:
            self._record_send(seq, t_mono, t_real)
            if self.sock is not None:
                self._out += buf
            return
        try:
            n = self.sock.send(buf)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self._record_send(seq, t_mono, t_real)
            self.error = failure_reason(exc)
            self._drop()
            return
        self._record_send(seq, t_mono, t_real)
        if n < len(buf):
            self._out += buf[n:]
            if not self._writer:
                self.loop.add_writer(self.sock.fileno(), self._writable)
                self._writer = True

    def _writable(self) -> None:
        if self.sock is None:
            return
        try:
            n = self.sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.error = failure_reason(exc)
            self._drop()
            return
        del self._out[:n]
        if not self._out:
            self.loop.remove_writer(self.sock.fileno())
            self._writer = False

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            data, anc, _flags, _addr = sock.recvmsg(262144, timestamps.CMSG_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.error = failure_reason(exc)
            self._drop()
            return
        if not data:
            self.error = "connection closed by peer"
            self._drop()
            return
        t = time.perf_counter_ns()
        kts = timestamps.from_ancdata(anc)
        self._in += data
        size = self.size
        while len(self._in) >= size:
            frame = bytes(self._in[:size])
            del self._in[:size]
            probe, _reason = packet.try_decode(frame)
            if probe is None or probe.session != self.session:
                self.error = "peer does not echo what it receives (not an echo server?)"
                self._drop()
                return
            self._deliver(probe.seq, t, kts)

    def _drop(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            self._remove_reader(sock)
            if self._writer:
                try:
                    self.loop.remove_writer(sock.fileno())
                except (ValueError, OSError):
                    pass
                self._writer = False
            sock.close()
        self.changed.set()

    def close(self) -> None:
        self._drop()


# ----- TCP connect --------------------------------------------------------------------------
class TcpConnectProber(LatencyProber):
    """The handshake time of a new connection per probe (like tcping)."""

    method = Method.TCP_CONNECT
    max_in_flight = 64  # at -i 0: one descriptor per pending connect; half a default listen backlog

    def __init__(self, label: str, host: str, port: int, cfg: LatencyConfig, sink: EventSink | None) -> None:
        super().__init__(label, host, port, cfg, sink)
        self._pending: dict[int, socket.socket] = {}
        self._family: int = socket.AF_INET
        self._sockaddr: tuple = ()

    async def open(self) -> None:
        res = await resolve(self.host, self.port, family=self.cfg.family, type=socket.SOCK_STREAM)
        self.address = res.address
        self._family, self._sockaddr = res.family, res.sockaddr

    def send(self, seq: int) -> None:
        try:
            sock = socket.socket(self._family, socket.SOCK_STREAM)
        except OSError as exc:  # out of file descriptors (a flood with --interval 0): this probe fails
            self._record_send(seq, time.perf_counter_ns(), time.time_ns())
            self._failed(seq, exc.errno or errno.EMFILE)
            return
        sock.setblocking(False)
        t0 = time.perf_counter_ns()
        self._record_send(seq, t0, time.time_ns())
        err = sock.connect_ex(self._sockaddr)
        if err == 0:
            self._deliver(seq, time.perf_counter_ns(), None)
            sock.close()
            return
        if err not in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
            sock.close()
            self._failed(seq, err)
            return
        self._pending[seq] = sock
        self.loop.add_writer(sock.fileno(), self._connected, seq)

    def _connected(self, seq: int) -> None:
        t = time.perf_counter_ns()
        sock = self._pending.pop(seq, None)
        if sock is None:
            return
        self.loop.remove_writer(sock.fileno())
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        sock.close()
        if err == 0:
            self._deliver(seq, t, None)
        else:
            self._failed(seq, err)

    def _failed(self, seq: int, err: int) -> None:
        self.error = os.strerror(err).lower()
        self._send_real.pop(seq, None)
        if self.acc.on_error(seq):
            self._emit(seq, ProbeOutcome.ERROR, None, False)
        self.changed.set()

    def on_expired(self, seqs: list[int]) -> None:
        for s in seqs:
            sock = self._pending.pop(s, None)
            if sock is not None:
                self.loop.remove_writer(sock.fileno())
                sock.close()
        super().on_expired(seqs)

    def close(self) -> None:
        for sock in self._pending.values():
            try:
                self.loop.remove_writer(sock.fileno())
            except (ValueError, OSError):
                pass
            sock.close()
        self._pending.clear()


# ----- ICMP ---------------------------------------------------------------------------------
ICMP_HINT = ('ICMP needs an unprivileged ICMP socket or root: run `sysctl -w net.ipv4.ping_group_range="0 '
             '2147483647"` (allows every group) or run as root (raw socket)')


def open_icmp_socket(family: int) -> tuple[socket.socket, bool]:
    """``(socket, raw)``: a datagram ICMP socket where allowed, else raw as root, else RuntimeFailure."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    try:
        return socket.socket(family, socket.SOCK_DGRAM, proto), False
    except (PermissionError, OSError) as exc:
        dgram_error = exc
    try:
        return socket.socket(family, socket.SOCK_RAW, proto), True
    except PermissionError:
        raise RuntimeFailure(ICMP_HINT) from None
    except OSError as exc:
        raise RuntimeFailure(f"cannot open an ICMP socket: {exc.strerror or dgram_error}") from None


#: Raw ICMP sockets get every ICMP message the host receives, this process's own echo requests
#: included (on loopback each one would wake the process up before its reply is even made). The
#: kernel filter keeps only echo replies, as iputils ping does: ``ICMP_FILTER`` (SOL_RAW) is a
#: 32-bit mask of IPv4 types to block; ``ICMP6_FILTER`` a 256-bit one (``struct icmp6_filter``).
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1


def keep_only_echo_replies(sock: socket.socket, v6: bool) -> bool:
    """Have the kernel pass only echo replies to raw ICMP socket ``sock``; False where it cannot."""
    try:
        if v6:
            words = [0xFFFF_FFFF] * 8
            t = packet.ICMPV6_ECHO_REPLY
            words[t >> 5] &= ~(1 << (t & 31)) & 0xFFFF_FFFF
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))
        else:
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~(1 << packet.ICMP_ECHO_REPLY) & 0xFFFF_FFFF))
    except OSError:
        return False
    return True


class IcmpProber(LatencyProber):
    """ICMP echo requests; the probe packet rides in the payload when ``--size`` >= 56.

    Timed kernel to kernel where the platform allows (``netkit.io.timestamps.enable_tx_rx``): the
    transmit stamp of each request comes back on the socket's error queue, which ``_readable``
    drains before it reads replies (a request's stamp is queued when it leaves, so before its reply
    can arrive).
    """

    method = Method.ICMP

    def __init__(self, label: str, host: str, port: int, cfg: LatencyConfig, sink: EventSink | None) -> None:
        super().__init__(label, host, port, cfg, sink)
        self.sock: socket.socket | None = None
        self.raw = False
        self.ident = secrets.randbits(16)
        self.session = secrets.randbits(64)
        self.v6 = False
        self._sockaddr: tuple = ()
        self._payload = bytearray(self.cfg.size)
        self.stamping = Timestamps.USER
        #: Transmit stamps to probes (only with kernel transmit stamps).
        self.book: TxStampBook | None = None
        self._watch: timestamps.ErrQueueWatch | None = None

    async def open(self) -> None:
        res = await resolve(self.host, 0, family=self.cfg.family, type=socket.SOCK_DGRAM)
        self.address = res.address
        self.v6 = res.family == socket.AF_INET6
        self.sock, self.raw = open_icmp_socket(res.family)
        self.sock.setblocking(False)
        rate = 1.0 / self.cfg.interval_s if self.cfg.interval_s > 0 else None
        tune_buffers(self.sock, receive_buffer_bytes(rate, self.cfg.size + 8, BUFFER_BYTES))
        self._sockaddr = res.sockaddr
        if self.raw:
            keep_only_echo_replies(self.sock, self.v6)
        else:
            try:
                self.sock.connect(res.sockaddr)
            except OSError:
                pass
            self.ident = self.sock.getsockname()[1] & 0xFFFF
        if self.cfg.kernel_timestamps:
            self.stamping = timestamps.enable_tx_rx(self.sock)
            if self.stamping is Timestamps.KERNEL_BOTH:
                self.book = TxStampBook(explicit=True)
        if self.book is not None:  # the error queue is read too: a watch any loop copes with
            self._watch = timestamps.ErrQueueWatch(self.loop, self.sock, self._readable)
        else:
            self._add_reader(self.sock, self._readable)

    def send(self, seq: int) -> None:
        assert self.sock is not None
        payload = self._payload
        t_mono = time.perf_counter_ns()
        if len(payload) >= packet.HEADER_SIZE:
            packet.encode_into(payload, self.session, seq, t_mono)
        msg = packet.icmp_echo_request(self.ident, seq, payload, v6=self.v6)
        addr = self._sockaddr if self.raw else None
        t_real = time.time_ns()
        try:
            if self.book is not None:
                timestamps.send_stamped(self.sock, msg, addr, seq, self.book)
            elif addr is not None:
                self.sock.sendto(msg, addr)
            else:
                self.sock.send(msg)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
        self._record_send(seq, t_mono, t_real)

    def _take_stamps(self, sock: socket.socket) -> None:
        """Move the transmit stamps queued on ``sock`` into the book (ICMP errors: not asked for)."""
        book = self.book
        if book is None:
            return
        for rec in timestamps.drain_errqueue(sock, bufsize=0):
            if isinstance(rec, TxStamp):
                book.on_stamp(rec.key, rec.stamp_ns)

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        self._take_stamps(sock)
        book = self.book
        for _ in range(1024):
            try:
                data, anc, _flags, addr = sock.recvmsg(65536, timestamps.CMSG_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error = exc.strerror or str(exc)
                return
            t = time.perf_counter_ns()
            if self.raw and not self.v6 and data:
                data = data[(data[0] & 0x0F) * 4:]
            echo = packet.parse_icmp_echo_reply(data, v6=self.v6)
            if echo is None:
                continue
            ident, seq16 = echo
            if self.raw:
                if ident != self.ident or addr[0].split("%")[0] != (self.address or "").split("%")[0]:
                    continue
            ids = packet.peek_seq(data[8:])
            if ids is not None:
                if ids[0] != self.session:
                    continue
                seq = ids[1]
            else:
                sent = self.acc.sent
                if sent == 0:
                    continue
                seq = packet.unwrap_seq16(seq16, sent)
            self._deliver(seq, t, timestamps.from_ancdata(anc), None,
                          book.take(seq) if book is not None else None)

    def on_expired(self, seqs: list[int]) -> None:
        if self.book is not None:
            for s in seqs:
                self.book.forget(s)
        super().on_expired(seqs)

    def describe(self) -> str:
        kind = "raw" if self.raw else "datagram"
        return f"icmp {kind} socket, " + super().describe().split(", ", 1)[1]

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
        else:
            self._remove_reader(self.sock)
        if self.sock is not None:
            self.sock.close()


PROBERS: dict[Method, type[LatencyProber]] = {
    Method.UDP: UdpProber,
    Method.TCP_ECHO: TcpEchoProber,
    Method.TCP_CONNECT: TcpConnectProber,
    Method.ICMP: IcmpProber,
}
