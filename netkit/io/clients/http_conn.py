"""HTTP client connections for the responsiveness test: HTTP/2 (``h2``) and HTTP/1.1 (``h11``) over
asyncio protocols, with the handshakes timed apart.

:func:`dial` connects a socket (timed: the TCP handshake), then runs TLS over it (timed: the TLS
handshake) and hands it to a protocol: :class:`H2Protocol` (one connection, many streams) or
:class:`H1Protocol` (one request at a time). Both count the payload bytes they receive, so a load
connection's goodput is its byte counter read at each interval, and both can carry an endless upload.

Throughput matters here (the load must fill the path), so:

- h2 advertises the largest frame (16 MiB - 1) and windows (2^31 - 1) and acknowledges received data
  through h2's window manager, which sends WINDOW_UPDATE in big steps;
- an HTTP/1.1 download is read after its head straight into one preallocated buffer
  (``BufferedProtocol``), with no parser per byte; h11 parses only heads and small responses;
- uploads write one preallocated chunk again and again, pausing when the transport's buffer is full.

Nothing here decides when to stop: the caller bounds every wait with its own timeout.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h11

#: ``TCP_NOTSENT_LOWAT``: keep little unsent data in the kernel, so a self probe queued behind the load
#: waits for the network, not for megabytes of our own send buffer.
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
NOTSENT_LOWAT_BYTES = 128 * 1024
MAX_SMALL_BODY = 1024 * 1024  # a probe or config response larger than this is not read whole
MAX_HEAD = 64 * 1024  # an HTTP/1.1 response head (status line and headers) larger than this is an error
CHUNK = 1024 * 1024
#: SETTINGS and PING frames (each wants an acknowledgement) an HTTP/2 server may send in a second: a
#: peer sends a few SETTINGS and, keeping a connection alive, a PING now and then.
MAX_CONTROL_PER_S = 1000
#: SO_RCVLOWAT while an HTTP/1.1 load connection counts a body: one wake per 128 KiB instead of per
#: arrival leaves the single loop thread's core to the copying (serve iperf3's sinks do the same).
RAW_LOWAT = 128 * 1024
_H2_MAX_FRAME = 2**24 - 1
_H2_MAX_WINDOW = 2**31 - 1
USER_AGENT = b"netkit"


class HttpError(Exception):
    """A request failed (a reset stream, a closed connection, a malformed response)."""


# ----- TCP_INFO ---------------------------------------------------------------------------------

# struct tcp_info (linux/tcp.h): tcpi_rtt at 68 (us), tcpi_rcv_rtt at 92 (us), tcpi_bytes_acked at 120.
_RTT = struct.Struct("=I")
_U64 = struct.Struct("=Q")


@dataclass(frozen=True)
class TcpInfo:
    rtt_us: int
    rcv_rtt_us: int
    bytes_acked: int | None


def tcp_info(sock: Any) -> TcpInfo | None:
    """The kernel's smoothed RTT, receiver RTT estimate and acknowledged bytes; None off Linux."""
    opt = getattr(socket, "TCP_INFO", None)
    if opt is None or sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, opt, 136)
    except OSError:
        return None
    if len(raw) < 96:
        return None
    acked = _U64.unpack_from(raw, 120)[0] if len(raw) >= 128 else None
    return TcpInfo(_RTT.unpack_from(raw, 68)[0], _RTT.unpack_from(raw, 92)[0], acked)


#: ``SIOCOUTQNSD`` (Linux): bytes in a TCP socket's send queue not yet sent.
SIOCOUTQNSD = 0x894B
UNSENT_DEFAULT = 64 * 1024
UNSENT_MIN = 16 * 1024
UNSENT_MAX = 4 * 1024 * 1024


def unsent_bytes(transport: Any) -> int:
    """Bytes written to ``transport`` not yet on the wire: its own buffer and the kernel's unsent
    queue (0 for the kernel's where the platform cannot say)."""
    if transport is None:
        return 0
    n = int(transport.get_write_buffer_size())
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            n += struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0"))[0]
        except (OSError, ValueError):
            pass
    return n


# ----- dialing ----------------------------------------------------------------------------------

@dataclass
class Dialed:
    """A connected protocol and how long its handshakes took."""

    transport: asyncio.Transport
    protocol: H2Protocol | H1Protocol
    tcp_ns: int
    tls_ns: int | None
    tls_version: str | None
    alpn: str | None

    @property
    def sock(self) -> Any:
        return self.transport.get_extra_info("socket")

    def close(self) -> None:
        self.transport.abort()


def client_ssl_context(base: ssl.SSLContext, *, h2: bool) -> ssl.SSLContext:
    """``base`` with ALPN set: h2 then http/1.1, or http/1.1 only."""
    base.set_alpn_protocols(["h2", "http/1.1"] if h2 else ["http/1.1"])
    return base


async def dial(addr: tuple[int, Any], *, ssl_ctx: ssl.SSLContext | None, server_hostname: str | None,
               timeout_s: float, load: bool = False, small: bool = False) -> Dialed:
    """Connect to ``addr`` (family, sockaddr), TLS when ``ssl_ctx``; the protocol follows ALPN (h2 when
    the server chose it). ``load`` sets ``TCP_NOTSENT_LOWAT`` (a load-generating connection); ``small``
    keeps h2's default frame size and windows (small exchanges: a peer's frame costs at most 16 KiB)."""
    loop = asyncio.get_running_loop()
    family, sockaddr = addr
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if load:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, NOTSENT_LOWAT_BYTES)
            except OSError:
                pass
        t0 = time.perf_counter_ns()
        t1 = await asyncio.wait_for(_timed_connect(loop, sock, sockaddr), timeout_s)
        holder: list[H2Protocol | H1Protocol] = []

        def factory() -> asyncio.BaseProtocol:
            return _Chooser(holder, small)

        transport, _ = await asyncio.wait_for(
            loop.create_connection(factory, sock=sock, ssl=ssl_ctx, server_hostname=server_hostname,
                                   ssl_handshake_timeout=timeout_s if ssl_ctx else None), timeout_s)
        t2 = time.perf_counter_ns()
    except BaseException:
        sock.close()
        raise
    sslobj = transport.get_extra_info("ssl_object")
    return Dialed(transport, holder[0], t1 - t0, (t2 - t1) if ssl_ctx is not None else None,
                  sslobj.version() if sslobj is not None else None,
                  sslobj.selected_alpn_protocol() if sslobj is not None else None)


async def _timed_connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, sockaddr: Any) -> int:
    """Connect the non-blocking ``sock``; the clock read when the loop sees it writable (the
    handshake done), not after the awaits that follow: the TCP handshake as curl times it."""
    err = sock.connect_ex(sockaddr)
    if err == 0:
        return time.perf_counter_ns()
    if err not in (errno.EINPROGRESS, errno.EAGAIN):
        raise OSError(err, os.strerror(err))
    done: asyncio.Future[int] = loop.create_future()

    def writable() -> None:
        if not done.done():
            done.set_result(time.perf_counter_ns())

    loop.add_writer(sock.fileno(), writable)
    try:
        t1 = await done
    finally:
        loop.remove_writer(sock.fileno())
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))
    return t1


class _Chooser(asyncio.BufferedProtocol):
    """Picks the protocol once the connection (and TLS, with its ALPN) is up, then hands over."""

    def __init__(self, holder: list[H2Protocol | H1Protocol], small: bool = False) -> None:
        self.holder = holder
        self.small = small
        self.inner: H2Protocol | H1Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sslobj = transport.get_extra_info("ssl_object")
        alpn = sslobj.selected_alpn_protocol() if sslobj is not None else None
        self.inner = H2Protocol(small=self.small) if alpn == "h2" else H1Protocol()
        self.holder.append(self.inner)
        self.inner.connection_made(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        assert self.inner is not None
        return self.inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        assert self.inner is not None
        self.inner.buffer_updated(nbytes)

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            self.inner.eof_received()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


@dataclass
class Response:
    status: int
    body: bytes


class _Stream:
    def __init__(self, loop: asyncio.AbstractEventLoop, count_only: bool, upload: bool) -> None:
        self.done: asyncio.Future[Response] = loop.create_future()
        self.status = 0
        self.body = bytearray()
        self.count_only = count_only
        self.upload = upload
        # For a timed request (measure http): when the response's head arrived, its body bytes counted
        # per stream, the head itself (bounded by the parsers' caps) and how much body to keep.
        self.sent_ns = 0  # the request written to the socket
        self.first_ns = 0
        self.end_ns = 0
        self.nbytes = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.http_version = ""
        self.keep = MAX_SMALL_BODY
        self.max_body = 0  # more body bytes than this (when not 0) fail the stream at once
        #: Called once the response is complete or failed, from the protocol's own callback: a caller
        #: that chains requests writes the next one there, with no task wake-up in between.
        self.on_end: Callable[[_Stream], None] | None = None

    def finish(self) -> None:
        self.end_ns = self.end_ns or time.perf_counter_ns()
        if not self.done.done():
            self.done.set_result(Response(self.status, bytes(self.body)))
            if self.on_end is not None:
                self.on_end(self)

    def fail(self, why: str) -> None:
        if not self.done.done():
            self.done.set_exception(HttpError(why))
            self.done.exception()  # retrieved: a probe nobody awaits any more is not an error report
            if self.on_end is not None:
                self.on_end(self)


_UPLOAD_PAYLOAD = bytes(CHUNK)
_WINDOW_STEP = 16 * 1024 * 1024


def _window_update(stream_id: int, increment: int) -> bytes:
    """An HTTP/2 WINDOW_UPDATE frame (type 8), written by hand for the fast path."""
    return (4).to_bytes(3, "big") + b"\x08\x00" + stream_id.to_bytes(4, "big") + increment.to_bytes(4, "big")


# ----- HTTP/2 -----------------------------------------------------------------------------------

def _error_name(code: Any) -> str:
    """An HTTP/2 error code as a user can look it up: 'error 2 INTERNAL_ERROR' (h2 gives the codes
    it knows as an enum, others as a plain int)."""
    name = getattr(code, "name", None)
    return f"error {int(code)} {name}" if name else f"error {int(code)}"


class H2Protocol:
    """One HTTP/2 connection: many streams; ``bytes_in`` counts DATA payload received."""

    http_version = "h2"

    def __init__(self, *, small: bool = False) -> None:
        self.small = small  # h2's default frame size and windows (not raised for throughput)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.bytes_in = 0
        self.paused = False
        self.closed = False
        self._buf = bytearray(256 * 1024)
        self._mv = memoryview(self._buf)
        # The fast path for the load: DATA frames of a count_only stream are counted and skipped here,
        # never parsed by h2 (h2 costs tens of microseconds a frame: a gigabit of 16 KiB frames would
        # take the whole loop, and every probe would wait for it). Every other frame goes to h2.
        self._fast: set[int] = set()  # count_only streams
        self._hdr = bytearray()  # a frame header read in part
        self._skip = 0  # payload bytes of a counted DATA frame still to come
        self._to_h2 = 0  # payload bytes of a frame for h2 still to come
        self._unacked: dict[int, int] = {}  # counted bytes not yet given back in WINDOW_UPDATE
        self._skip_sid = 0
        # Bounds on what a hostile server can make this connection hold or do, checked on each frame's
        # header before its payload is read (see _split).
        self._head_block = 0  # bytes of the header block being received (HEADERS and CONTINUATION)
        self._ctl_count = 0  # SETTINGS and PING frames asking for an acknowledgement, this second
        self._ctl_since = 0  # when that second began (perf_counter_ns)
        # GOAWAY is read here, not by h2: h2 closes its whole connection on one, and then refuses the
        # rest of the responses the server still sends (a graceful GOAWAY, as nginx sends at its
        # keepalive_requests, precedes the last response). Only its first 8 bytes are kept.
        self._goaway_left = 0  # payload bytes of a GOAWAY still to come
        self._goaway = bytearray()
        #: The server sent GOAWAY: no new request on this connection; those under way may finish.
        self.going_away = False
        #: Upload bytes written but not yet sent (ours and the kernel's) at most; the caller sets it
        #: from the connection's rate (a few milliseconds' worth).
        self.unsent_limit = UNSENT_DEFAULT
        self._retry: asyncio.TimerHandle | None = None
        self.read_ns = 0  # when the bytes being handled were read (a timed request's first/last byte)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.conn.initiate_connection()
        if self.small:
            self.conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
            self._flush()
            return
        # Pending until the server acknowledges them; a larger inbound frame than the one advertised
        # so far is accepted at once (the server may use the new size as soon as it has read ours).
        self.conn.update_settings({
            h2.settings.SettingCodes.MAX_FRAME_SIZE: _H2_MAX_FRAME,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _H2_MAX_WINDOW,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
        self.conn.max_inbound_frame_size = _H2_MAX_FRAME
        self.conn.incoming_buffer.max_frame_size = _H2_MAX_FRAME
        self.conn.increment_flow_control_window(_H2_MAX_WINDOW - 65535)
        self._flush()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._mv

    def buffer_updated(self, nbytes: int) -> None:
        if self.closed:
            return  # refused (see _hostile): the rest of what was read is not looked at
        self.read_ns = time.perf_counter_ns()
        data = self._split(self._mv[:nbytes])
        if data:
            self._handle(data)

    def _split(self, view: memoryview) -> bytes:
        """Count and drop the fast streams' DATA payloads; the rest of the bytes, for h2."""
        n = len(view)
        i = 0
        out = bytearray()
        while i < n:
            if self._skip:
                k = min(self._skip, n - i)
                self._skip -= k
                i += k
                self.bytes_in += k
                self._unacked[self._skip_sid] = self._unacked.get(self._skip_sid, 0) + k
                continue
            if self._goaway_left:
                k = min(self._goaway_left, n - i)
                self._goaway += view[i:i + min(k, max(0, 8 - len(self._goaway)))]
                self._goaway_left -= k
                i += k
                if not self._goaway_left:
                    out = self._take_goaway(out)
                    if self.closed or self.transport is None or self.transport.is_closing():
                        return b""
                continue
            if self._to_h2:
                k = min(self._to_h2, n - i)
                out += view[i:i + k]
                self._to_h2 -= k
                i += k
                continue
            k = min(9 - len(self._hdr), n - i)
            self._hdr += view[i:i + k]
            i += k
            if len(self._hdr) < 9:
                break
            hdr = self._hdr
            length = int.from_bytes(hdr[0:3], "big")
            sid = int.from_bytes(hdr[5:9], "big") & 0x7FFFFFFF
            refusal = self._hostile(hdr[3], hdr[4], length)
            if refusal:
                self._hdr = bytearray()
                self._fail_all(refusal)
                self.closed = True
                if self.transport is not None:
                    self.transport.abort()
                return b""
            # DATA (type 0) without END_STREAM (0x1) or PADDED (0x8) on a counted stream
            if hdr[3] == 0 and not hdr[4] & 0x09 and sid in self._fast:
                self._skip, self._skip_sid = length, sid
            elif hdr[3] == 0x7 and sid == 0:  # GOAWAY
                self._goaway_left = length
                if not length:
                    self._hdr = bytearray()
                    out = self._take_goaway(out)
                    if self.closed or self.transport is None or self.transport.is_closing():
                        return b""
                    continue
            else:
                out += hdr
                self._to_h2 = length
            self._hdr = bytearray()
        self._give_back()
        return bytes(out)

    def _hostile(self, kind: int, flags: int, length: int) -> str:
        """Why a frame (its type, flags and payload length) is refused before it is read; '' if not.

        A header block is held whole until its last frame (h2 keeps up to 64 CONTINUATION frames, and
        this connection allows 16 MiB frames for throughput): at MAX_HEAD in all it is refused, as an
        HTTP/1.1 head is, so a server cannot make us buffer hundreds of MiB of headers. SETTINGS and
        PING frames each make h2 queue an acknowledgement: a server sending them without end (and
        perhaps never reading) would keep the loop busy parsing and let the acknowledgements pile up,
        so more than a legitimate peer ever sends in a second ends the connection."""
        if kind in (0x1, 0x5, 0x9):  # HEADERS, PUSH_PROMISE, CONTINUATION
            self._head_block += length
            if self._head_block > MAX_HEAD:
                return f"the response head is over {MAX_HEAD // 1024} KiB"
            if flags & 0x4:  # END_HEADERS
                self._head_block = 0
        elif kind in (0x4, 0x6) and not flags & 0x1:  # SETTINGS or PING, not an ACK
            if self.read_ns - self._ctl_since > 1_000_000_000:
                self._ctl_since, self._ctl_count = self.read_ns, 0
            self._ctl_count += 1
            if self._ctl_count > MAX_CONTROL_PER_S:
                return f"the server floods SETTINGS or PING frames (over {MAX_CONTROL_PER_S} a second)"
        return ""

    def _take_goaway(self, before: bytearray) -> bytearray:
        """Act on a whole GOAWAY, once h2 has had the frames ``before`` it (streams they end are
        done); the bytes still to give h2 (none yet)."""
        if before:
            self._handle(bytes(before))
        payload, self._goaway = bytes(self._goaway), bytearray()
        self.going_away = True
        if len(payload) < 8:
            self._fail_all("HTTP/2 protocol error: a GOAWAY frame shorter than 8 bytes")
        else:
            last_sid = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            code_int = int.from_bytes(payload[4:8], "big")
            try:
                code: Any = h2.errors.ErrorCodes(code_int)
            except ValueError:
                code = code_int  # a code HTTP/2 does not define: only its number
            why = f"the server ended the HTTP/2 connection ({_error_name(code)})"
            if code != h2.errors.ErrorCodes.NO_ERROR:
                self._fail_all(why)
            else:  # graceful: streams up to last_sid may still complete, later ones never will
                for sid in [sid for sid in self.streams if sid > last_sid]:
                    self._fast.discard(sid)
                    self.streams.pop(sid).fail(why + " before this request")
        return bytearray()

    def _give_back(self) -> None:
        """WINDOW_UPDATE for counted bytes, in big steps (the windows are 2^31 - 1)."""
        total = sum(self._unacked.values())
        if total < _WINDOW_STEP or self.transport is None or self.closed:
            return
        frames = [_window_update(0, total)]
        frames += [_window_update(sid, n) for sid, n in self._unacked.items() if n and sid in self._fast]
        self._unacked.clear()
        self.transport.write(b"".join(frames))

    def _handle(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._fail_all(f"HTTP/2 protocol error: {exc}")
            if self.transport is not None:
                self.transport.abort()
            return
        pump = False
        for ev in events:
            if isinstance(ev, h2.events.DataReceived):
                sid = ev.stream_id
                size = len(ev.data) if ev.data else 0
                self.bytes_in += size
                st = self.streams.get(sid)
                if st is not None:
                    st.nbytes += size
                if st is not None and not st.count_only and len(st.body) < st.keep:
                    st.body += ev.data[:st.keep - len(st.body)]
                if ev.flow_controlled_length:
                    try:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                    except h2.exceptions.StreamClosedError:
                        pass
                if st is not None and st.max_body and st.nbytes > st.max_body:
                    self.streams.pop(sid, None)
                    try:
                        self.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                    except h2.exceptions.ProtocolError:
                        pass  # the stream had ended already
                    st.fail(f"the response body is over {st.max_body:,} bytes")
            elif isinstance(ev, h2.events.ResponseReceived):
                st = self.streams.get(ev.stream_id)
                if st is not None:
                    st.first_ns = st.first_ns or self.read_ns
                    st.http_version = "2"
                    st.headers = list(ev.headers)
                    for k, v in ev.headers:
                        if k == b":status":
                            st.status = int(v)
            elif isinstance(ev, h2.events.StreamEnded):
                self._fast.discard(ev.stream_id)
                st = self.streams.pop(ev.stream_id, None)
                if st is not None:
                    st.end_ns = self.read_ns
                    st.finish()
            elif isinstance(ev, h2.events.StreamReset):
                self._fast.discard(ev.stream_id)
                st = self.streams.pop(ev.stream_id, None)
                if st is not None:
                    if st.status and not st.upload:
                        st.fail(f"stream reset ({_error_name(ev.error_code)})")
                    else:
                        st.finish() if st.status else st.fail(f"stream reset ({_error_name(ev.error_code)})")
            elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                pump = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._fail_all(f"the server ended the HTTP/2 connection ({_error_name(ev.error_code)})")
        if pump:
            self._pump()
        self._flush()

    def accepts_requests(self) -> bool:
        """Whether a new request may go on this connection: open, and no GOAWAY from the server."""
        return not self.closed and not self.going_away

    def request(self, method: str, scheme: str, authority: str, target: str, *, count_only: bool = False,
                upload: bool = False, extra_headers: list[tuple[str, str]] | None = None,
                body: bytes | None = None, keep: int = MAX_SMALL_BODY) -> _Stream:
        """Start a request; its stream's ``done`` resolves with the response (bounded body). ``body``
        (at most the server's flow-control window) and ``extra_headers`` go with it; ``keep`` bounds
        the body kept (the rest is only counted)."""
        if self.closed or self.transport is None:
            raise HttpError("the connection is closed")
        if self.going_away:
            raise HttpError("the server is closing this HTTP/2 connection (GOAWAY)")
        loop = asyncio.get_running_loop()
        sid = self.conn.get_next_available_stream_id()
        headers = [(b":method", method.encode()), (b":scheme", scheme.encode()),
                   (b":authority", authority.encode()), (b":path", target.encode()),
                   (b"user-agent", USER_AGENT)]
        if upload:
            headers.append((b"content-type", b"application/octet-stream"))
        for name, value in extra_headers or ():
            if name.lower() == "host":
                headers[2] = (b":authority", value.encode())
            elif name.lower() not in ("connection", "keep-alive", "transfer-encoding", "upgrade"):
                headers.append((name.lower().encode(), value.encode()))
        st = _Stream(loop, count_only, upload)
        st.keep = keep
        self.streams[sid] = st
        if count_only:
            self._fast.add(sid)
        try:
            self.conn.send_headers(sid, headers, end_stream=not upload and body is None)
            if body is not None:
                if len(body) > self.conn.local_flow_control_window(sid):
                    raise HttpError("the request body is larger than the server's HTTP/2 flow-control window")
                for i in range(0, len(body), self.conn.max_outbound_frame_size):
                    self.conn.send_data(sid, body[i:i + self.conn.max_outbound_frame_size])
                self.conn.end_stream(sid)
        except h2.exceptions.ProtocolError as exc:  # too many streams, a closed connection
            self.streams.pop(sid, None)
            raise HttpError(f"cannot open a stream: {exc}") from None
        if upload:
            self._pump()
        self._flush()
        return st

    def _pump(self) -> None:
        """Send upload data as far as the flow-control windows, the transport and ``unsent_limit``
        allow. Data written but not yet sent delays every request behind it on this connection (a
        self probe's HEADERS): so little is kept unsent, and the pump looks again a millisecond later."""
        if self.paused or self.closed:
            return
        for sid, st in list(self.streams.items()):
            if not st.upload:
                continue
            while not self.paused and self.transport is not None and not self.transport.is_closing():
                room = self.unsent_limit - unsent_bytes(self.transport)
                if room <= 0:
                    self._retry_later()
                    break
                try:
                    window = self.conn.local_flow_control_window(sid)
                except h2.exceptions.ProtocolError:
                    break
                n = min(window, self.conn.max_outbound_frame_size, CHUNK, max(room, 16384))
                if n <= 0:
                    break
                try:
                    self.conn.send_data(sid, _UPLOAD_PAYLOAD[:n] if n < CHUNK else _UPLOAD_PAYLOAD)
                except h2.exceptions.ProtocolError:
                    break
                self._flush()

    def _retry_later(self) -> None:
        if self._retry is None and not self.closed:
            self._retry = asyncio.get_running_loop().call_later(0.001, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self._pump()
        self._flush()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()
        self._flush()

    def eof_received(self) -> None:
        self._fail_all("the server closed the connection")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._fail_all("the connection was closed" + (f": {exc}" if exc else ""))

    def _fail_all(self, why: str) -> None:
        streams, self.streams = self.streams, {}
        for st in streams.values():
            st.fail(why)


# ----- HTTP/1.1 ---------------------------------------------------------------------------------

_UNKNOWN = object()  # the head has not been read yet
_CHUNKED = object()  # chunked: h11 parses the body
_TO_CLOSE = -1  # no length: the body runs to the connection's close


def _framing(headers: Any) -> int | object:
    """How a response body ends, from its head: its Content-Length, chunked, or at the close."""
    length: int | object = _TO_CLOSE
    for name, value in headers:
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return _CHUNKED
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                pass
    return length


class H1Protocol:
    """One HTTP/1.1 connection, one request at a time. A ``count_only`` response's body is counted in
    ``bytes_in`` straight from the receive buffer; other responses go through h11 (bounded)."""

    http_version = "http/1.1"

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.bytes_in = 0
        self.paused = False
        self.closed = False
        self._buf = bytearray(1024 * 1024)
        self._mv = memoryview(self._buf)
        self._h11: h11.Connection | None = None
        self._requests: dict[tuple[Any, ...], h11.Request] = {}  # request events built (and validated) once
        self._st: _Stream | None = None
        self._head = bytearray()
        self._raw = False  # past the head of a count_only response: count bytes, parse nothing
        self._length: int | object = _UNKNOWN  # a counted body's bytes to come: an int, _CHUNKED, _TO_CLOSE
        self._uploading = False
        self._chunk = b"%x\r\n" % CHUNK + _UPLOAD_PAYLOAD + b"\r\n"
        self._lowat = 1  # the socket's SO_RCVLOWAT now
        self.read_ns = 0  # when the bytes being handled were read (a timed request's first/last byte)
        self._tls_hint = False  # cleartext and never answered: a silent close may be a TLS server

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._tls_hint = transport.get_extra_info("sslcontext") is None
        transport.set_write_buffer_limits(high=2 * CHUNK + 64)

    def accepts_requests(self) -> bool:
        """Whether a new request may go on this connection: open, and the last exchange (if any)
        left it reusable."""
        return not self.closed if self._h11 is None else self.reusable()

    def reusable(self) -> bool:
        """Whether another request may go on this connection now: the last exchange ended whole and
        neither side asked to close (h11's states are both DONE)."""
        conn = self._h11
        return (not self.closed and conn is not None and conn.our_state is h11.DONE
                and conn.their_state is h11.DONE and (self._st is None or self._st.done.done()))

    def _set_lowat(self, nbytes: int) -> None:
        """Wake this reader per ``nbytes`` received rather than per arrival. A counted body needs no
        byte sooner, and over HTTP/1.1 no probe shares the connection (self probes read TCP_INFO)."""
        if nbytes == self._lowat or self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, nbytes)
        except (OSError, AttributeError):
            return
        self._lowat = nbytes

    def request(self, method: str, scheme: str, authority: str, target: str, *, count_only: bool = False,
                upload: bool = False, extra_headers: list[tuple[str, str]] | None = None,
                body: bytes | None = None, keep: int = MAX_SMALL_BODY) -> _Stream:
        if self.closed or self.transport is None:
            raise HttpError("the connection is closed")
        if self._st is not None and not self._st.done.done():
            raise HttpError("a request is under way on this HTTP/1.1 connection")
        conn = self._h11
        if conn is not None and conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()  # the last exchange went through h11 whole: keep its state machine
        else:
            # h11 holds at most this much of an incomplete head: a larger response head is an error.
            conn = self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        key = (method, target, authority, tuple(extra_headers or ()), upload, None if body is None else len(body))
        event = self._requests.get(key)
        st = _Stream(asyncio.get_running_loop(), count_only, upload)
        st.keep = keep
        try:
            if event is None:
                headers = [("Host", authority), ("User-Agent", "netkit")]
                for name, value in extra_headers or ():
                    if name.lower() in ("host", "user-agent"):
                        headers = [(k, v) for k, v in headers if k.lower() != name.lower()]
                    headers.append((name, value))
                if upload:
                    headers += [("Transfer-Encoding", "chunked"), ("Content-Type", "application/octet-stream")]
                elif body is not None:
                    headers.append(("Content-Length", str(len(body))))
                event = h11.Request(method=method, target=target, headers=headers)  # validated once
                if len(self._requests) >= 8:
                    self._requests.clear()
                self._requests[key] = event
            data = conn.send(event) or b""
            if body:
                data += conn.send(h11.Data(data=body)) or b""
        except h11.LocalProtocolError as exc:
            raise HttpError(f"cannot form the request: {exc}") from None
        if not upload:
            data += conn.send(h11.EndOfMessage()) or b""
        # h11's work is done before the write: after it only the return to the loop, so the answer's
        # first byte is stamped when it comes, not after work of ours.
        self._start(st)
        self.transport.write(data)
        st.sent_ns = time.perf_counter_ns()
        if upload:
            self._uploading = True
            self._pump()
        return st

    def _start(self, st: _Stream) -> None:
        """``st`` becomes the exchange under way (its response's bytes are read for it)."""
        self._st = st
        self._head.clear()
        self._raw = False
        self._set_lowat(1)
        self._length = _UNKNOWN

    def _pump(self) -> None:
        # A closing transport drops writes without pausing: stop there (it would loop forever).
        while self._uploading and not self.paused and not self.closed and self.transport is not None \
                and not self.transport.is_closing():
            self.transport.write(self._chunk)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._mv

    def buffer_updated(self, nbytes: int) -> None:
        self.read_ns = time.perf_counter_ns()
        if self._raw:
            self._count_raw(nbytes)
            return
        st = self._st
        data = bytes(self._mv[:nbytes])
        if st is None or self._h11 is None:
            return  # bytes nobody asked for: ignored
        if not st.first_ns:
            st.first_ns = self.read_ns
        if st.count_only and self._length is _UNKNOWN:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > 64 * 1024:
                    st.fail("the response head is over 64 KiB")
                return
            body = bytes(self._head[end + 4:])
            self._receive(bytes(self._head[:end + 4]))
            if self._length is _CHUNKED:
                if body:
                    self._receive(body)  # chunked: h11 frames it (counted per Data event)
                return
            self._raw = True
            if not isinstance(self._length, int) or self._length > 4 * RAW_LOWAT:
                self._set_lowat(RAW_LOWAT)
            self._mv[:len(body)] = body
            self._count_raw(len(body))
            return
        self._receive(data)

    def _count_raw(self, nbytes: int) -> None:
        """A counted body's bytes, straight from the buffer: to its Content-Length, or to the close."""
        if isinstance(self._length, int) and self._length >= 0:
            take = min(nbytes, self._length)
            self._length -= take
            self.bytes_in += take
            if self._length < 2 * RAW_LOWAT:
                self._set_lowat(1)  # the body's last bytes must wake the reader
            if self._length == 0 and self._st is not None:
                self._raw = False
                self._st.finish()
            return
        self.bytes_in += nbytes

    def _receive(self, data: bytes) -> None:
        st, conn = self._st, self._h11
        assert st is not None and conn is not None
        try:
            conn.receive_data(data)
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA or ev is h11.PAUSED:
                    return
                if isinstance(ev, h11.InformationalResponse):
                    continue
                if isinstance(ev, h11.Response):
                    self._tls_hint = False  # it speaks HTTP: a later silent close is not that
                    st.status = ev.status_code
                    st.http_version = ev.http_version.decode()
                    st.headers = list(ev.headers)
                    if st.count_only:
                        self._length = _framing(ev.headers)
                        if self._length is not _CHUNKED:
                            return  # the body is counted raw, from the buffer
                    elif st.upload:
                        return  # an upload's early answer: the body goes on
                elif isinstance(ev, h11.Data) and st.count_only:
                    self.bytes_in += len(ev.data)
                    st.nbytes += len(ev.data)
                elif isinstance(ev, h11.Data):
                    self.bytes_in += len(ev.data)
                    st.nbytes += len(ev.data)
                    if len(st.body) < st.keep:
                        st.body += ev.data[:st.keep - len(st.body)]
                    if st.max_body and st.nbytes > st.max_body:
                        st.fail(f"the response body is over {st.max_body:,} bytes")
                        return
                elif isinstance(ev, h11.EndOfMessage):
                    st.end_ns = self.read_ns
                    st.finish()
                    return
                elif isinstance(ev, h11.ConnectionClosed):
                    st.fail("the server closed the connection")
                    return
        except h11.RemoteProtocolError as exc:
            st.fail(f"malformed HTTP response: {exc}")

    def eof_received(self) -> None:
        self.closed = True
        if self._st is not None:
            conn = self._h11
            if (conn is not None and conn.their_state is h11.SEND_RESPONSE and not conn.trailing_data[0]
                    and not self._head):
                # Not one byte of an answer: h11 would call the close a protocol error. A TLS
                # server asked in cleartext closes like this (curl: "Empty reply from server").
                self._st.fail("the server closed the connection without answering: a TLS port? try https://"
                              if self._tls_hint else "the server closed the connection without answering")
                return
            if self._h11 is not None and not self._raw:
                try:
                    self._receive(b"")
                except Exception:
                    pass
            if self._st is not None:
                self._st.fail("the server closed the connection")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._uploading = False
        if self._st is not None:
            self._st.fail("the connection was closed" + (f": {exc}" if exc else ""))
