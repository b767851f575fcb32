"""``measure latency``: probers for tcp-connect, tcp-echo, udp and icmp, and the scheduler.

Each prober owns its socket(s) and turns replies into accounting events (``netkit.core.accounting``);
the scheduler (:func:`measure_target`) sends probe ``i`` at ``start + i * interval`` by the
monotonic clock, expires timeouts, waits for the last replies and, against netkit's reflector,
asks for the reflector's final count (per-direction loss). Several targets run concurrently.

Sockets are non-blocking and read with ``loop.add_reader`` + ``recvmsg`` so that the kernel's
receive timestamps (``netkit.io.timestamps``) are available; asyncio's protocols would drop them.
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
from dataclasses import dataclass

from netkit.core import packet
from netkit.core.accounting import Accounting, ReplyEvent
from netkit.core.errors import CheckFailed, RuntimeFailure
from netkit.core.latency_models import (
    REFLECTOR_NETKIT,
    REFLECTOR_PLAIN,
    LatencyConfig,
    TargetResult,
)
from netkit.core.targets import Target
from netkit.io import timestamps
from netkit.io.reflector_query import NS, STOP_GRACE_S, ask_reflector_count
from netkit.io.resolve import failure_reason, resolve


@dataclass(frozen=True)
class ProbeEvent:
    """One thing that happened to one probe, for live output: a reply (any kind) or a timeout."""

    target: str
    address: str | None
    seq: int
    kind: str  # "ok", "late", "duplicate", "timeout", "error" (e.g. connection refused)
    rtt_ns: int | None
    reordered: bool
    size: int
    error: str | None = None


EventSink = Callable[[ProbeEvent], None]


class Prober:
    """Base class: one target, one method. Subclasses implement open/send/close."""

    method = ""

    def __init__(self, label: str, host: str, port: int, cfg: LatencyConfig, sink: EventSink | None) -> None:
        self.label = label
        self.host = host
        self.port = port
        self.cfg = cfg
        self.sink = sink
        self.acc = Accounting(max(1, round(cfg.timeout_s * NS)))
        self.address: str | None = None
        self.error: str | None = None
        self.reflector: str | None = None
        self.kernel_ts_used = 0
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
            self._emit(s, "timeout", None, False)

    # ----- helpers -----------------------------------------------------------------------
    def _emit(self, seq: int, kind: str, rtt_ns: int | None, reordered: bool) -> None:
        if self.sink is not None:
            self.sink(ProbeEvent(self.label, self.address, seq, kind, rtt_ns, reordered, self.cfg.size,
                                 self.error if kind == "error" else None))

    def _record_send(self, seq: int, t_mono: int, t_real: int) -> None:
        self.acc.on_sent(seq, t_mono)
        self._send_real[seq] = t_real

    def _deliver(self, seq: int, t_mono: int, kernel_real: int | None, refl_count: int | None = None) -> ReplyEvent:
        send_mono = self.acc.send_time(seq)
        rtt: int | None = None
        if send_mono is not None:
            rtt, used = timestamps.pick_rtt(t_mono - send_mono, kernel_real, self._send_real.get(seq))
            self.kernel_ts_used += used
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

    def result(self, elapsed_ns: int) -> TargetResult:
        summary = self.acc.finish()
        return TargetResult(
            target=self.label, address=self.address, acc=summary, reflector=self.reflector,
            kernel_timestamps=self.kernel_ts_used > 0, error=self.error, elapsed_ns=elapsed_ns,
            detail=self.describe(),
        )

    def describe(self) -> str:
        """How this prober measured, in a few words (shown with -v)."""
        stamps = "kernel receive timestamps" if self.kernel_ts_used else "user-space timestamps"
        return f"{self.method}, {stamps}"


# ----- UDP ----------------------------------------------------------------------------------
class UdpProber(Prober):
    """Probe packets to a reflector; works against netkit's (full accounting) or a plain echo."""

    method = "udp"

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.sock: socket.socket | None = None
        self.session = secrets.randbits(64)
        self.size = max(self.cfg.size, packet.HEADER_SIZE)
        # issue 10 (--key): a keyed session id and room for the 16-byte tag (netkit.core.keyed)
        self.key = getattr(self.cfg, "key", None)
        if self.key is not None:
            from netkit.core.keyed import KEYED_MIN_SIZE
            from netkit.io.server_guard import new_keyed_session

            self.session = new_keyed_session()
            self.size = max(self.size, KEYED_MIN_SIZE)
        self._buf = bytearray(self.size)
        self._query_count: int | None = None
        self.foreign = 0
        self._turnaround: list[int] = []  # reflector's hold time per reply (last 10,000), for -v

    async def open(self) -> None:
        res = await resolve(self.host, self.port, family=self.cfg.family, type=socket.SOCK_DGRAM)
        self.address = res.address
        sock = socket.socket(res.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(res.sockaddr)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        if self.cfg.kernel_timestamps:
            timestamps.enable(sock)
        self._add_reader(sock, self._readable)

    def send(self, seq: int) -> None:
        assert self.sock is not None
        buf = self._buf
        t_mono = time.perf_counter_ns()
        packet.encode_into(buf, self.session, seq, t_mono)
        if self.key is not None:  # issue 10: sign after encoding (the send time changes)
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
                self.reflector = REFLECTOR_NETKIT
                if len(self._turnaround) < 10_000:
                    self._turnaround.append(probe.refl_send_ns - probe.refl_recv_ns)
            elif self.reflector is None:
                self.reflector = REFLECTOR_PLAIN
            self._deliver(probe.seq, t, timestamps.from_ancdata(anc),
                          probe.refl_count if probe.reflected else None)

    async def final_query(self, hurry: bool = False) -> None:
        """Ask netkit's reflector how many probes it received (exact per-direction loss).

        The query is header-only (56 bytes), so a firewall rule can tell it from probes.
        ``hurry`` (after Ctrl-C): two short tries instead of five.
        """
        if self.reflector != REFLECTOR_NETKIT or self.sock is None:
            return
        count = await ask_reflector_count(
            self.sock, self.session, self.key, self.changed, lambda: self._query_count,
            timeout_s=self.cfg.timeout_s, hurry=hurry,
        )
        if count is not None:
            self.acc.on_reflector_count(count, final=True)

    def describe(self) -> str:
        text = super().describe()
        if self._turnaround:
            held = sorted(self._turnaround)[len(self._turnaround) // 2]
            text += f", the reflector held each probe {held / 1e3:.1f} us (median, its own clock)"
        return text

    def result(self, elapsed_ns: int) -> TargetResult:
        if self.foreign and self.error is None:
            self.error = f"{self.foreign} replies were not echoes of netkit's probes (not an echo service?)"
        return super().result(elapsed_ns)

    def close(self) -> None:
        self._remove_reader(self.sock)
        if self.sock is not None:
            self.sock.close()


# ----- TCP echo -----------------------------------------------------------------------------
class TcpEchoProber(Prober):
    """Request/response over one connection to an echo server: each probe is a probe packet."""

    method = "tcp-echo"

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
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
            raise CheckFailed(f"{self.label}: {_os_reason(exc)}") from None
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
            self.error = _os_reason(exc)
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
            self.error = _os_reason(exc)
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
            self.error = _os_reason(exc)
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
class TcpConnectProber(Prober):
    """The handshake time of a new connection per probe (like tcping)."""

    method = "tcp-connect"

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self._pending: dict[int, socket.socket] = {}
        self._family = socket.AF_INET
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
            self._emit(seq, "error", None, False)
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
_ICMP_HDR = struct.Struct("!BBHHH")
ICMP_HINT = ('ICMP needs an unprivileged ICMP socket or root: run `sysctl -w net.ipv4.ping_group_range="0 '
             '2147483647"` (allows every group) or run as root (raw socket)')


def icmp_checksum(data: bytes | bytearray) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


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


class IcmpProber(Prober):
    """ICMP echo requests; the probe packet rides in the payload when ``--size`` >= 56."""

    method = "icmp"

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.sock: socket.socket | None = None
        self.raw = False
        self.ident = secrets.randbits(16)
        self.session = secrets.randbits(64)
        self.v6 = False
        self._sockaddr: tuple = ()
        self._payload = bytearray(self.cfg.size)

    async def open(self) -> None:
        res = await resolve(self.host, 0, family=self.cfg.family, type=socket.SOCK_DGRAM)
        self.address = res.address
        self.v6 = res.family == socket.AF_INET6
        self.sock, self.raw = open_icmp_socket(res.family)
        self.sock.setblocking(False)
        self._sockaddr = res.sockaddr
        if not self.raw:
            try:
                self.sock.connect(res.sockaddr)
            except OSError:
                pass
            self.ident = self.sock.getsockname()[1] & 0xFFFF
        if self.cfg.kernel_timestamps:
            timestamps.enable(self.sock)
        self._add_reader(self.sock, self._readable)

    def send(self, seq: int) -> None:
        assert self.sock is not None
        payload = self._payload
        kind = 128 if self.v6 else 8
        t_mono = time.perf_counter_ns()
        if len(payload) >= packet.HEADER_SIZE:
            packet.encode_into(payload, self.session, seq, t_mono)
        hdr = _ICMP_HDR.pack(kind, 0, 0, self.ident, seq & 0xFFFF)
        msg = bytearray(hdr + payload)
        if not self.v6:
            struct.pack_into("!H", msg, 2, icmp_checksum(msg))
        t_real = time.time_ns()
        try:
            if self.raw:
                self.sock.sendto(msg, self._sockaddr)
            else:
                self.sock.send(msg)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
        self._record_send(seq, t_mono, t_real)

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
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
            if len(data) < 8:
                continue
            kind, _code, _ck, ident, seq16 = _ICMP_HDR.unpack_from(data)
            if kind != (129 if self.v6 else 0):
                continue
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
                seq = (sent - 1) - (((sent - 1) - seq16) & 0xFFFF)
            self._deliver(seq, t, timestamps.from_ancdata(anc))

    def describe(self) -> str:
        kind = "raw" if self.raw else "datagram"
        return f"icmp {kind} socket, " + super().describe().split(", ", 1)[1]

    def close(self) -> None:
        self._remove_reader(self.sock)
        if self.sock is not None:
            self.sock.close()


PROBERS: dict[str, type[Prober]] = {
    "udp": UdpProber,
    "tcp-echo": TcpEchoProber,
    "tcp-connect": TcpConnectProber,
    "icmp": IcmpProber,
}


def _os_reason(exc: OSError) -> str:
    return failure_reason(exc)


async def _wait(ev: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    try:
        await asyncio.wait_for(ev.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    ev.clear()


async def measure_target(prober: Prober, stop: asyncio.Event) -> TargetResult:
    """Run one prober to the end (count, duration or ``stop``) and return its result.

    ``stop`` is an Event (set by the StopSignal watcher): set, it ends sending at once and
    skips waiting for the last replies, so Ctrl-C returns what was measured.
    """
    cfg, acc = prober.cfg, prober.acc
    start = time.perf_counter_ns()
    try:
        try:
            await prober.open()
        except CheckFailed as exc:
            prober.error = str(exc).split(": ", 1)[-1]
            return prober.result(0)
        except OSError as exc:
            prober.error = _os_reason(exc)
            return prober.result(0)
        interval_ns = max(0, round(cfg.interval_s * NS))
        end_ns = start + round(cfg.duration_s * NS) if cfg.duration_s is not None else None
        seq = 0
        start = time.perf_counter_ns()
        while not stop.is_set():
            if cfg.count is not None and seq >= cfg.count:
                break
            due = start + seq * interval_ns
            if end_ns is not None and due >= end_ns:
                break
            while True:
                now = time.perf_counter_ns()
                expired = acc.expire(now)
                if expired:
                    prober.on_expired(expired)
                if now >= due or stop.is_set():
                    break
                nd = acc.next_deadline()
                wake = due if nd is None else min(due, nd)
                await _wait(prober.changed, (wake - now) / NS)
            if stop.is_set():
                break
            prober.send(seq)
            seq += 1
            if interval_ns == 0:
                await asyncio.sleep(0)
        # The last replies: wait until every probe is answered or timed out (after Ctrl-C, only
        # a short grace for replies already in flight).
        hurry = stop.is_set()
        grace_end = time.perf_counter_ns() + int(STOP_GRACE_S * NS)
        while acc.outstanding:
            now = time.perf_counter_ns()
            expired = acc.expire(now)
            if expired:
                prober.on_expired(expired)
            nd = acc.next_deadline()
            if nd is None:
                break
            if stop.is_set():
                hurry = True
                if now >= grace_end:
                    break
                nd = min(nd, grace_end)
            await _wait(prober.changed, (nd - now) / NS + 0.0005)
        await prober.final_query(hurry)
        return prober.result(time.perf_counter_ns() - start)
    finally:
        prober.close()


async def measure_latency(targets: list[Target], cfg: LatencyConfig, *, stop: asyncio.Event | None = None,
                          sink: EventSink | None = None, labels: list[str] | None = None,
                          on_start: Callable[[list[Prober]], None] | None = None) -> list[TargetResult]:
    """Measure every target concurrently; results in input order.

    ``sink`` receives every reply and timeout as it happens; ``on_start`` gets the probers
    (a live view reads their running accounting).
    """
    stop = stop or asyncio.Event()
    cls = PROBERS[cfg.method]
    probers = [cls(labels[i] if labels else str(t), t.host, t.port, cfg, sink) for i, t in enumerate(targets)]
    if on_start is not None:
        on_start(probers)

    async def relay() -> None:
        await stop.wait()
        for p in probers:
            p.changed.set()

    watcher = asyncio.ensure_future(relay())
    try:
        return list(await asyncio.gather(*(measure_target(p, stop) for p in probers)))
    finally:
        watcher.cancel()


def measure_latency_sync(targets: list[Target], cfg: LatencyConfig) -> list[TargetResult]:
    """Blocking twin of :func:`measure_latency`."""
    from netkit.io.aio import run

    return run(measure_latency(targets, cfg))
