"""``netkit trace``'s sockets: one prober per method, sending TTL-limited probes and reading answers.

- udp: datagrams to the destination port plus the probe's sequence number (traceroute's scheme),
  or to one fixed ``--port``; Time Exceeded and Port Unreachable come from the socket's error queue
  (``IP_RECVERR`` / ``IPV6_RECVERR``), no privilege needed.
- icmp: echo requests on an ICMP datagram socket (``ping_group_range``); errors from its error queue,
  echo replies as ordinary reads. As root where datagram sockets are not allowed: a raw socket.
- tcp: a SYN per probe (a non-blocking connect with the TTL set); a SYN-ACK or RST is the
  destination, and a router's Time Exceeded is queued on the probe socket's own error queue while
  its connect is pending (Linux), so tcp needs no privilege either.

Each prober calls ``on_answer(seq, address, answer, rx_mono_ns, rx_real_ns, mtu)`` for an answer it
could match to one of its own probes; ``match(low, modulus, full)`` asks the plan whether a sequence
is outstanding. Everything else (late, forged, unrelated) is dropped here.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol

from netkit.core import icmp_errors as ie
from netkit.core import packet
from netkit.core.errors import RuntimeFailure
from netkit.core.errqueue import ExtendedError, QueuedError, TxStamp
from netkit.core.kernel_rtt import Timestamps, TxStampBook
from netkit.core.trace_models import Answer, ProbeSpec, TraceConfig, TraceMethod
from netkit.io import timestamps

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
IP_PMTUDISC_DONT, IP_PMTUDISC_PROBE = 0, 3
#: Destination ports used by varying-port udp probes: base .. base + PORT_SPAN - 1.
PORT_SPAN = 1024
#: Ancillary space: an extended error with its offender, and a timestamp.
ANC_SIZE = 512
READS_PER_WAKEUP = 256
#: Transmit stamps kept for probes in flight (a bound against a flood of stamps without answers).
TX_STAMPS_KEPT = 65536

ICMP_HINT = ('--method icmp needs an ICMP datagram socket or root: allow one with `sysctl -w '
             'net.ipv4.ping_group_range="0 2147483647"`, run as root, or use --method udp')

#: (seq, address, answer, rx_mono_ns, rx_real_ns or None, mtu or None[, kernel-measured rtt_ns])
AnswerSink = Callable[..., None]
#: (record, the quoted payload, the probe's destination, rx_real_ns or None)
RecordSink = Callable[[ExtendedError, bytes, object, "int | None"], None]
Matcher = Callable[[int, int, "int | None"], "int | None"]

IP_HEADER: dict[int, int] = {socket.AF_INET: 20, socket.AF_INET6: 40}
TRANSPORT_HEADER = {TraceMethod.UDP: 8, TraceMethod.ICMP: 8, TraceMethod.TCP: 20}


def default_size(method: TraceMethod, family: int) -> int:
    """The probe's IP packet size when ``--size`` is not given: 60 bytes over IPv4, 80 over IPv6
    (traceroute's defaults); a tcp SYN is the bare headers."""
    if method is TraceMethod.TCP:
        return IP_HEADER[family] + TRANSPORT_HEADER[method]
    return 60 if family == socket.AF_INET else 80


def payload_size(method: TraceMethod, family: int, ip_size: int) -> int:
    """The payload that makes an IP packet of ``ip_size`` bytes (at least the matching header)."""
    return max(ie.PAYLOAD_SIZE, ip_size - IP_HEADER[family] - TRANSPORT_HEADER[method])


#: Errors a send reports only because an earlier probe's ICMP error is still pending on the socket
#: (``IP_RECVERR`` sets ``sk_err``): the send did not happen, and trying again sends it.
PENDING_ERRORS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN,
                            errno.EPROTO, errno.ENOPROTOOPT, errno.EACCES})


class Poller(Protocol):
    """What a prober needs from the loop that drives it: asyncio's loop has exactly these methods,
    and so has ``netkit.io.measure.trace``'s selector loop (the command's, which spares asyncio)."""

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None: ...
    def remove_reader(self, fd: Any) -> Any: ...
    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None: ...
    def remove_writer(self, fd: Any) -> Any: ...


#: How many pending errors one send clears before it gives up: each failed attempt takes one error off
#: the socket, and a burst of probes can meet as many errors as routers answered in the meantime.
PENDING_RETRIES = 32


def send_datagram(sock: socket.socket, data: bytes | bytearray, where: tuple[str, int],
                  send: Callable[[], None] | None = None) -> None:
    """``sendto`` (or ``send``) that does not mistake an earlier probe's pending error for this one's."""
    def plain() -> None:
        sock.sendto(data, where)

    attempt = send if send is not None else plain
    for _ in range(PENDING_RETRIES):
        try:
            attempt()
            return
        except OSError as exc:
            if exc.errno not in PENDING_ERRORS:
                raise
    attempt()


def _bare(address: str) -> str:
    return address.split("%", 1)[0]


class TraceProber:
    """The sockets of one target. ``open`` after construction, ``close`` at the end."""

    #: Trace probes may fragment (a ``--size`` above the path MTU still finds the path); the path
    #: MTU search's probers set this, so their probes are never fragmented.
    dont_fragment = False

    def __init__(self, address: str, family: int, cfg: TraceConfig, *, match: Matcher, on_answer: AnswerSink,
                 poller: Poller) -> None:
        self.poller = poller
        self.address = address
        self.family = family
        self.v6 = family == socket.AF_INET6
        self.cfg = cfg
        self.match = match
        self.on_answer = on_answer
        self.session = int.from_bytes(os.urandom(4), "big")
        self.stamping = Timestamps.USER
        self.book: TxStampBook | None = None  # transmit stamps, where the kernel gives them
        self._tx_ns: dict[int, int] = {}  # seq -> kernel transmit stamp, until its answer or timeout
        self.error: str | None = None  # a send error, for the report
        self.detail = ""
        self._readers: list[socket.socket] = []
        self.size = cfg.size if cfg.size is not None else default_size(cfg.method, family)

    # ----- subclass interface ------------------------------------------------------------
    def open(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def send(self, spec: ProbeSpec) -> tuple[int, int] | None:
        """Send one probe; ``(mono_ns, real_ns)`` just before it left, or None when it could not."""
        raise NotImplementedError  # pragma: no cover - abstract

    def close(self) -> None:
        for s in self._readers:
            try:
                self.poller.remove_reader(s)
            except (ValueError, OSError):
                pass
            s.close()
        self._readers.clear()

    # ----- shared ---------------------------------------------------------------------------
    def _watch(self, sock: socket.socket, cb: Callable[[socket.socket], None]) -> None:
        sock.setblocking(False)
        self.poller.add_reader(sock, cb, sock)
        self._readers.append(sock)

    def _set_ttl(self, sock: socket.socket, ttl: int) -> None:
        if self.v6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)

    def _recverr(self, sock: socket.socket) -> None:
        if self.v6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)

    def _dont_fragment(self, sock: socket.socket, on: bool) -> None:
        """Probes bigger than the path must not be fragmented (path MTU work), or always may be."""
        mode = IP_PMTUDISC_PROBE if on else IP_PMTUDISC_DONT
        try:
            if self.v6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, mode)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, mode)
        except OSError:
            pass

    def _stamps(self, sock: socket.socket, *, transmit: bool = True) -> None:
        """Kernel stamps: transmit and receive where the platform gives both (the RTT is then the
        network's, not this process's), else receive only, else none."""
        if not self.cfg.kernel_timestamps:
            return
        if transmit:
            self.stamping = timestamps.enable_tx_rx(sock)
            if self.stamping is Timestamps.KERNEL_BOTH:
                self.book = TxStampBook(explicit=True)
        elif timestamps.enable(sock):
            self.stamping = Timestamps.KERNEL_RX

    def _send(self, sock: socket.socket, data: bytes | bytearray, where: tuple[str, int], seq: int) -> None:
        """Send probe ``seq``, its transmit stamp asked for when stamps are on."""
        book = self.book
        if book is None:
            send_datagram(sock, data, where)
            return

        def stamped() -> None:
            # Clear an earlier probe's pending error first: a failed send costs a book on the kernel's
            # counter its pairing.
            try:
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError:
                pass
            timestamps.send_stamped(sock, data, where, seq, book)

        send_datagram(sock, data, where, stamped)

    def take_tx(self, seq: int) -> int | None:
        """The kernel transmit stamp of probe ``seq`` (once), None when there is none."""
        if self.book is not None:
            self.book.forget(seq)
        return self._tx_ns.pop(seq, None)

    def _drain_errqueue(self, sock: socket.socket, on_record: RecordSink) -> None:
        for _ in range(READS_PER_WAKEUP):
            try:
                data, anc, _flags, name = sock.recvmsg(2048, ANC_SIZE, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            rec = timestamps.parse_errqueue_message(data, anc)
            if isinstance(rec, TxStamp):
                seq = self.book.on_stamp(rec.key, rec.stamp_ns) if self.book is not None else None
                if seq is not None and len(self._tx_ns) < TX_STAMPS_KEPT:
                    self._tx_ns[seq] = rec.stamp_ns
            elif isinstance(rec, QueuedError):
                on_record(rec.error, rec.payload, name, rec.rx_stamp_ns)

    def _answer(self, seq: int, record: ExtendedError, answer: Answer, rx_real: int | None) -> None:
        address = record.offender
        if address in ("0.0.0.0", "::"):
            address = None  # the kernel names no offender for an error it raised itself
        if address is None:
            if answer is not Answer.FRAG_NEEDED:
                return
            address = "local"
        mtu = record.info if answer is Answer.FRAG_NEEDED else None
        self.on_answer(seq, address, answer, time.monotonic_ns(), rx_real, mtu)


class UdpTraceProber(TraceProber):
    def open(self) -> None:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self._recverr(sock)
        self._dont_fragment(sock, self.dont_fragment)
        self._stamps(sock)
        self.sock = sock
        self._payload_len = payload_size(TraceMethod.UDP, self.family, self.size)
        self._watch(sock, self._readable)
        self.detail = "udp socket, errors from its error queue"

    def _port(self, seq: int) -> int:
        if self.cfg.fixed_port:
            return self.cfg.dest_port
        return self.cfg.dest_port + seq % PORT_SPAN

    def send(self, spec: ProbeSpec) -> tuple[int, int] | None:
        self._set_ttl(self.sock, spec.ttl)
        payload = ie.encode_payload(self.session, spec.seq, self._payload_len)
        mono, real = time.monotonic_ns(), time.time_ns()
        try:
            self._send(self.sock, payload, (self.address, self._port(spec.seq)), spec.seq)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                return mono, real  # too big for our own link: the error queue says so (path MTU)
            self.error = exc.strerror or str(exc)
            return None
        return mono, real

    def _readable(self, sock: socket.socket) -> None:
        self._drain_errqueue(sock, self._on_record)
        # A service on the probed port may answer the datagram itself: the destination, if it echoes.
        for _ in range(READS_PER_WAKEUP):
            try:
                data, anc, _flags, addr = sock.recvmsg(2048, ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # an error-queue entry announced as a read error: drained on the next wakeup
            if _bare(addr[0]) != _bare(self.address):
                continue
            ok, full = ie.decode_payload(data, self.session)
            if not ok or full is None:
                continue
            seq = self.match(full % PORT_SPAN, PORT_SPAN, full)
            if seq is not None:
                self.on_answer(seq, self.address, Answer.DESTINATION, time.monotonic_ns(),
                               timestamps.from_ancdata(anc), None)
        self._drain_errqueue(sock, self._on_record)

    def _on_record(self, record: ExtendedError, data: bytes, name: object, rx_real: int | None) -> None:
        answer = ie.classify(record)
        if answer is None or not isinstance(name, tuple) or len(name) < 2:
            return
        if _bare(str(name[0])) != _bare(self.address):
            return  # an error about a datagram to somewhere else
        ok, full = ie.decode_payload(data, self.session)
        if not ok:
            return
        port = int(name[1])
        if self.cfg.fixed_port:
            if port != self.cfg.dest_port or full is None:
                return
            seq = self.match(0, 1, full)
        else:
            low = port - self.cfg.dest_port
            if not 0 <= low < PORT_SPAN:
                return
            seq = self.match(low, PORT_SPAN, full)
        if seq is not None:
            self._answer(seq, record, answer, rx_real)


class IcmpTraceProber(TraceProber):
    def open(self) -> None:
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        self.raw = False
        try:
            sock = socket.socket(self.family, socket.SOCK_DGRAM, proto)
        except OSError:
            try:
                sock = socket.socket(self.family, socket.SOCK_RAW, proto)
            except PermissionError:
                raise RuntimeFailure(ICMP_HINT) from None
            self.raw = True
        self.sock = sock
        self._dont_fragment(sock, self.dont_fragment)
        self._stamps(sock)
        self._payload_len = payload_size(TraceMethod.ICMP, self.family, self.size)
        if self.raw:
            self.ident = int.from_bytes(os.urandom(2), "big")
            self.detail = "raw icmp socket"
        else:
            self._recverr(sock)
            sock.bind(("::", 0) if self.v6 else ("0.0.0.0", 0))
            self.ident = sock.getsockname()[1] & 0xFFFF  # the kernel puts the socket's port as the id
            self.detail = "icmp datagram socket, errors from its error queue"
        self._watch(sock, self._readable)

    def send(self, spec: ProbeSpec) -> tuple[int, int] | None:
        self._set_ttl(self.sock, spec.ttl)
        msg = packet.icmp_echo_request(self.ident, spec.seq & 0xFFFF,
                                       ie.encode_payload(self.session, spec.seq, self._payload_len), v6=self.v6)
        mono, real = time.monotonic_ns(), time.time_ns()
        try:
            self._send(self.sock, msg, (self.address, 0), spec.seq)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                return mono, real
            self.error = exc.strerror or str(exc)
            return None
        return mono, real

    def _readable(self, sock: socket.socket) -> None:
        self._drain_errqueue(sock, self._on_record)  # transmit stamps, and errors (datagram socket)
        for _ in range(READS_PER_WAKEUP):
            try:
                data, anc, _flags, addr = sock.recvmsg(4096, ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            rx_mono, rx_real = time.monotonic_ns(), timestamps.from_ancdata(anc)
            if self.raw:
                self._raw_packet(data, str(addr[0]), rx_mono, rx_real)
                continue
            self._echo_reply(data, str(addr[0]), rx_mono, rx_real, check_ident=False)
        self._drain_errqueue(sock, self._on_record)

    def _echo_reply(self, data: bytes, source: str, rx_mono: int, rx_real: int | None, *, check_ident: bool) -> None:
        echo = packet.parse_icmp_echo_reply(data, v6=self.v6)
        if echo is None or _bare(source) != _bare(self.address):
            return
        ident, seq16 = echo
        if check_ident and ident != self.ident:
            return
        ok, full = ie.decode_payload(data[8:], self.session)
        if not ok or full is None:
            return  # a reply carries the request's whole payload: one without ours is not an answer
        seq = self.match(seq16, 0x10000, full)
        if seq is not None:
            self.on_answer(seq, _bare(source), Answer.DESTINATION, rx_mono, rx_real, None)

    def _quoted_echo(self, quoted: bytes) -> int | None:
        """The probe an error quotes (our echo request: type, code, checksum, id, seq, payload)."""
        if len(quoted) < 8:
            return None
        request = packet.ICMPV6_ECHO_REQUEST if self.v6 else packet.ICMP_ECHO_REQUEST
        kind, _code, _sum, ident, seq16 = packet.ICMP_ECHO_HEADER.unpack_from(quoted)
        if kind != request or (self.raw and ident != self.ident):
            return None
        ok, full = ie.decode_payload(quoted[8:], self.session)
        if not ok:
            return None
        return self.match(seq16, 0x10000, full)

    def _on_record(self, record: ExtendedError, data: bytes, name: object, rx_real: int | None) -> None:
        answer = ie.classify(record)
        if answer is None or answer is Answer.DESTINATION:
            return  # a port unreachable says nothing about an echo request
        if isinstance(name, tuple) and name and _bare(str(name[0])) != _bare(self.address):
            return
        seq = self._quoted_echo(data)
        if seq is not None:
            self._answer(seq, record, answer, rx_real)

    def _raw_packet(self, data: bytes, source: str, rx_mono: int, rx_real: int | None) -> None:
        if self.v6:
            message = data
        else:
            if not data or data[0] >> 4 != 4:
                return
            message = data[(data[0] & 0x0F) * 4:]
        if not message:
            return
        reply = packet.ICMPV6_ECHO_REPLY if self.v6 else packet.ICMP_ECHO_REPLY
        if message[0] == reply:
            self._echo_reply(message, source, rx_mono, rx_real, check_ident=True)
            return
        err = ie.parse_icmp6_error(message) if self.v6 else ie.parse_icmp4_error(data)
        if err is None or _bare(err.dst) != _bare(self.address):
            return
        quoted = ie.quoted_transport(message, v6=self.v6)
        seq = self._quoted_echo(quoted) if quoted is not None else None
        if seq is None:
            return
        answer = ie.classify_quoted(err, v6=self.v6)
        self.on_answer(seq, _bare(source), answer, rx_mono, rx_real, err.mtu if answer is Answer.FRAG_NEEDED else None)


class TcpTraceProber(TraceProber):
    """A SYN per probe: a non-blocking connect with the TTL set, on its own socket with ``IP_RECVERR``.

    A SYN-ACK or a RST (the connect succeeds or is refused) is the destination. A router's Time
    Exceeded fails the connect, and Linux queues it, with the router's address, on that socket's
    error queue while the connect is pending, so no raw socket (no privilege) is needed, and the
    socket itself says which probe it was.
    """

    def open(self) -> None:
        self._by_fd: dict[int, tuple[int, socket.socket]] = {}
        self.detail = "tcp connect per probe, errors from each socket's error queue"
        # Receive stamps switch on a kernel-wide static branch while any socket wants them; a socket
        # per probe would flip it on and off each time, and each flip costs the probe a fraction of
        # a millisecond. One socket holding them for the run keeps the branch on.
        self._stamp_keeper: socket.socket | None = None
        if self.cfg.kernel_timestamps:
            keeper = socket.socket(self.family, socket.SOCK_DGRAM)
            if timestamps.enable(keeper):
                self._stamp_keeper = keeper
            else:
                keeper.close()

    def send(self, spec: ProbeSpec) -> tuple[int, int] | None:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            self._set_ttl(sock, spec.ttl)
            self._recverr(sock)
            self._stamps(sock, transmit=False)
            mono, real = time.monotonic_ns(), time.time_ns()
            rc = sock.connect_ex((self.address, self.cfg.dest_port))
        except OSError as exc:
            sock.close()
            self.error = exc.strerror or str(exc)
            return None
        if rc not in (0, errno.EINPROGRESS):
            sock.close()
            self.error = os.strerror(rc)
            return None
        fd = sock.fileno()
        self._by_fd[fd] = (spec.seq, sock)
        self.poller.add_writer(sock, self._settled, fd)
        return mono, real

    def _forget(self, fd: int) -> None:
        item = self._by_fd.pop(fd, None)
        if item is None:
            return
        sock = item[1]
        try:
            self.poller.remove_writer(sock)
        except (ValueError, OSError, RuntimeError):
            pass
        # An abortive close: no FIN handshake lingers after a probe that reached a listener.
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        sock.close()

    def _settled(self, fd: int) -> None:
        item = self._by_fd.get(fd)
        if item is None:
            return
        seq, sock = item
        rx_mono = time.monotonic_ns()
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err in (0, errno.ECONNREFUSED):  # a SYN-ACK or a RST: the destination itself
            handshake_ns = handshake_rtt_ns(sock) if err == 0 else None
            self._forget(fd)
            if self.match(seq, 1 << 32, seq) is not None:
                self.on_answer(seq, self.address, Answer.DESTINATION, rx_mono, None, None, handshake_ns)
            return
        records: list[tuple[ExtendedError, int | None]] = []
        self._drain_errqueue(sock, lambda rec, _data, _name, rx_real: records.append((rec, rx_real)))
        self._forget(fd)
        for rec, rx_real in records:
            answer = ie.classify(rec)
            if answer is None or answer is Answer.DESTINATION:
                continue  # a port unreachable says nothing about a SYN
            if self.match(seq, 1 << 32, seq) is not None:
                self._answer(seq, rec, answer, rx_real)
            return

    def expired(self, seq: int) -> None:
        for fd, (s, _sock) in list(self._by_fd.items()):
            if s == seq:
                self._forget(fd)

    def close(self) -> None:
        for fd in list(self._by_fd):
            self._forget(fd)
        if self._stamp_keeper is not None:
            self._stamp_keeper.close()
        super().close()


#: ``struct tcp_info``'s ``tcpi_rtt`` (microseconds): the kernel's RTT sample, after a handshake the
#: SYN to SYN-ACK time itself.
TCPI_RTT_OFFSET = 68


def handshake_rtt_ns(sock: socket.socket) -> int | None:
    """The kernel's own time from SYN to SYN-ACK on a just-connected socket (None where unknown)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except (OSError, AttributeError):
        return None
    if len(info) < TCPI_RTT_OFFSET + 4:
        return None
    rtt_us = struct.unpack_from("=I", info, TCPI_RTT_OFFSET)[0]
    return rtt_us * 1000 if rtt_us > 0 else None


PROBERS: dict[TraceMethod, type[TraceProber]] = {
    TraceMethod.UDP: UdpTraceProber,
    TraceMethod.ICMP: IcmpTraceProber,
    TraceMethod.TCP: TcpTraceProber,
}
