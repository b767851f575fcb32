"""The HTTP of ``netkit serve responsiveness``: one handler per connection, HTTP/1.1 or HTTP/2.

A handler is fed the connection's bytes (``data``) and writes through its connection
(:class:`netkit.io.servers.responsiveness_server.NqConn`), which counts bytes, holds the transport
and the flow control (``paused``) and ends the connection. The protocol work is the sans-IO
libraries': ``h11`` for HTTP/1.1, ``h2`` for HTTP/2. What is served:

- ``/large``: 200, ``application/octet-stream``, Content-Length 1 TiB, sent from one preallocated
  block as fast as the client reads (HTTP/1.1: the block's memoryview written while the transport is
  not paused; HTTP/2: DATA frames as large as the client's SETTINGS_MAX_FRAME_SIZE and its flow
  control windows allow, up to :data:`MAX_DATA_FRAME`, round robin over the connection's streams).
- ``/small``: 200, one byte. The configuration document: ``application/json``. ``/upload``: read and
  discarded, 200 when the body ends. Anything else 404 (a known path with another method 405).

Limits are the server's: HTTP/2 advertises SETTINGS_MAX_CONCURRENT_STREAMS and refuses a stream
beyond it with RST_STREAM(REFUSED_STREAM); an upload over ``max_upload`` is answered 413 and reset
(HTTP/2) or closed (HTTP/1.1); a header block over ``max_header_bytes`` and any garbage end the
connection (HTTP/2 with a GOAWAY naming the error). HTTP/1.1 stops reading while a response is
still going out (no pipelined request piles up in memory).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h11

from netkit.core.nq_server import LARGE_SIZE, SMALL_BODY, ConnEnd, Route, allowed_method, config_document, route
from netkit.core.nq_server import url_host as choose_url_host

if TYPE_CHECKING:  # pragma: no cover
    from netkit.io.servers.responsiveness_server import NqConn

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # a client's first bytes in HTTP/2
BLOCK_SIZE = 1024 * 1024
#: The largest DATA frame sent, whatever larger size the client allows: large enough that the
#: per-frame cost is small against the copy, small enough that a probe's response on the same
#: connection waits behind little.
MAX_DATA_FRAME = 256 * 1024
#: The receive window the server gives each HTTP/2 stream and the connection: uploads are read
#: and dropped at once, so a large window costs no memory and keeps an upload from being window-bound.
H2_WINDOW = 16 * 1024 * 1024 - 1
#: The largest frame a client may send us: 4x h2's default (fewer frames per upload), and small
#: enough that h2's backlog of 64 CONTINUATION frames (a header flood) stays within 4 MiB.
H2_MAX_FRAME = 64 * 1024
FRAME_PING = b"nqframes"  # the opaque data of the PING that confirms a larger frame size
H1_BURST = 16  # HTTP/1.1: /large blocks written per turn of the loop, at most
SEND_ROUNDS = 64  # HTTP/2: rounds of one frame per sending stream per turn of the loop, at most

_block: list[memoryview] = []


def send_block() -> memoryview:
    """One preallocated block for every /large body (its content is irrelevant; it is never compressed)."""
    if not _block:
        _block.append(memoryview(bytes(range(256)) * (BLOCK_SIZE // 256)))
    return _block[0]


#: Bytes of DATA frames in one prebuilt run (:func:`_frame_run`), and the runs kept (per stream id
#: and frame size, shared by every connection; the oldest is dropped): 32 x 256 KiB at most.
FRAMES_BYTES = 256 * 1024
MAX_FRAME_RUNS = 32
_runs: dict[tuple[int, int], memoryview] = {}


def _frame_run(stream_id: int, frame: int) -> memoryview:
    """As many DATA frames of ``frame`` payload bytes on ``stream_id`` as fit in FRAMES_BYTES (one
    at least), back to back, ready to write."""
    key = (stream_id, frame)
    run = _runs.get(key)
    if run is None:
        header = frame.to_bytes(3, "big") + b"\x00\x00" + (stream_id & 0x7FFFFFFF).to_bytes(4, "big")
        payload = bytes(send_block()[:frame]) if frame <= BLOCK_SIZE else bytes(frame)
        count = max(1, FRAMES_BYTES // (frame + 9))
        run = memoryview((header + payload) * count)
        if len(_runs) >= MAX_FRAME_RUNS:
            del _runs[next(iter(_runs))]
        _runs[key] = run
    return run


def _window_update(stream_id: int, increment: int) -> bytes:
    return (b"\x00\x00\x04\x08\x00" + stream_id.to_bytes(4, "big")
            + min(increment, 0x7FFFFFFF).to_bytes(4, "big"))


class H1Handler:
    """HTTP/1.1 on one connection (h11); one request at a time."""

    def __init__(self, conn: NqConn) -> None:
        self.conn = conn
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=conn.server.config.max_header_bytes)
        self.route: Route | None = None
        self.large_left = 0  # /large bytes still to send
        self.uploaded = 0
        self.responded = False
        self.scheduled = False  # a pump is due at the loop's next turn
        self.body_left = 0  # an upload's body bytes still to come (counted, not parsed)
        self.keep_alive = True

    # ----- input --------------------------------------------------------------------------------
    def data(self, data: bytes) -> None:
        if self.body_left:
            self._body(data)
            return
        self.h11.receive_data(data)
        self._events()

    def _body(self, data: bytes) -> None:
        """An upload with a Content-Length: its bytes are counted here, never copied through h11
        (three copies per read there); the next request starts on a fresh h11 connection."""
        conn = self.conn
        take = min(len(data), self.body_left)
        self.body_left -= take
        self.uploaded += take
        conn.server.uploaded(take)
        if self.body_left:
            return
        old = self.h11
        try:
            out = old.send(h11.Response(status_code=200, headers=[
                (b"content-type", b"text/plain"), (b"content-length", b"0"), (b"cache-control", b"no-store")]))
            out += old.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            conn.end(ConnEnd.PROTOCOL, f"HTTP/1.1: {exc}")
            return
        conn.write(out)
        self.route = None
        if not self.keep_alive:
            conn.end(ConnEnd.DONE)
            return
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=conn.server.config.max_header_bytes)
        rest = data[take:]
        if rest:
            self.h11.receive_data(rest)
            self._events()

    def eof(self) -> None:
        if self.body_left:  # the client stopped mid-upload (as the draft's clients do)
            self.conn.end(ConnEnd.EOF)
            return
        self.h11.receive_data(b"")
        self._events()

    def _events(self) -> None:
        conn = self.conn
        h = self.h11
        while not conn.ending:
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as exc:
                self._protocol_error(exc)
                return
            if ev is h11.NEED_DATA:
                return
            if ev is h11.PAUSED:
                # Our response is still going out: read nothing more until it is done.
                conn.pause_reading()
                return
            if isinstance(ev, h11.Request):
                self._request(ev)
                if self.body_left or self.h11 is not h:
                    return  # the body is counted by _body, or a fresh h11 took over
            elif isinstance(ev, h11.Data):
                if self.route is Route.UPLOAD:
                    self.uploaded += len(ev.data)
                    conn.server.uploaded(len(ev.data))
                    cap = conn.server.config.max_upload
                    if cap is not None and self.uploaded > cap and not self.responded:
                        conn.server.limit_hit("max_upload", conn, cap)
                        self._simple(413, b"upload over the server's limit\n", close=True)
                        conn.end(ConnEnd.MAX_UPLOAD)
                        return
            elif isinstance(ev, h11.EndOfMessage):
                if self.route is Route.UPLOAD and not self.responded:
                    self._simple(200, b"")
                self._next_cycle()
            elif isinstance(ev, h11.ConnectionClosed):
                conn.end(ConnEnd.EOF)
                return

    def _protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        conn = self.conn
        too_big = "maximum" in str(exc) or exc.error_status_hint == 431
        if too_big:
            conn.server.limit_hit("max_header", conn, conn.server.config.max_header_bytes)
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = 431 if too_big else exc.error_status_hint
            try:
                conn.write(self.h11.send(h11.Response(status_code=status, headers=[
                    (b"content-length", b"0"), (b"connection", b"close")])))
                conn.write(self.h11.send(h11.EndOfMessage()))
            except h11.LocalProtocolError:
                pass
        conn.end(ConnEnd.PROTOCOL, f"HTTP/1.1: {exc}")

    def _request(self, req: h11.Request) -> None:
        conn = self.conn
        cap = conn.server.config.max_header_bytes
        # h11 bounds a header block still arriving; one that arrived whole in a read is checked here.
        if len(req.target) + sum(len(k) + len(v) + 4 for k, v in req.headers) > cap:
            conn.server.limit_hit("max_header", conn, cap)
            self._simple(431, b"request header block too large\n", close=True)
            conn.end(ConnEnd.PROTOCOL, "HTTP/1.1: request header block over the limit")
            return
        target = req.target.decode("ascii", "replace")
        r = route(req.method.decode("ascii", "replace"), target)
        self.route = r
        self.uploaded = 0
        self.responded = False
        conn.request(r)
        if r is Route.UPLOAD:
            most = conn.server.config.max_upload
            length = next((v for k, v in req.headers if k == b"content-length"), None)
            if most is not None and length is not None and length.isdigit() and int(length) > most:
                conn.server.limit_hit("max_upload", conn, most)
                self._simple(413, b"upload over the server's limit\n", close=True)
                conn.end(ConnEnd.MAX_UPLOAD)
                return
            if self.h11.they_are_waiting_for_100_continue:
                conn.write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
            chunked = any(k == b"transfer-encoding" for k, _ in req.headers)
            if length is not None and length.isdigit() and int(length) > 0 and not chunked:
                self.body_left = int(length)
                self.keep_alive = req.http_version == b"1.1" and not any(
                    k == b"connection" and b"close" in v.lower() for k, v in req.headers)
                buffered, _ = self.h11.trailing_data  # the body's first bytes, read with the headers
                if buffered:
                    self._body(buffered)
            return  # answered when the body ends
        if r is Route.LARGE:
            self.responded = True
            conn.write(self.h11.send(h11.Response(status_code=200, headers=[
                (b"content-type", b"application/octet-stream"), (b"content-length", str(LARGE_SIZE).encode()),
                (b"cache-control", b"no-store")])))
            self.large_left = LARGE_SIZE
            self.pump()
            return
        if r is Route.SMALL:
            self._simple(200, SMALL_BODY, ctype=b"application/octet-stream")
        elif r is Route.CONFIG:
            host = choose_url_host(conn.server.config, conn.server.host,
                                   next((v.decode("ascii", "replace") for k, v in req.headers if k == b"host"), None))
            self._simple(200, config_document(conn.server.config, conn.tls, conn.server.port, host),
                         ctype=b"application/json")
        elif r is Route.BAD_METHOD:
            self._simple(405, b"method not allowed\n", extra=[(b"allow", allowed_method(r, target).encode())])
        else:
            self._simple(404, b"not found\n")

    def _simple(self, status: int, body: bytes, *, ctype: bytes = b"text/plain", close: bool = False,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store"), *(extra or [])]
        if close:
            headers.append((b"connection", b"close"))
        self.responded = True
        h = self.h11
        try:
            out = h.send(h11.Response(status_code=status, headers=headers))
            if body:
                out += h.send(h11.Data(data=body))
            out += h.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            self.conn.end(ConnEnd.PROTOCOL, f"HTTP/1.1: {exc}")
            return
        self.conn.write(out)
        self._next_cycle()

    def _next_cycle(self) -> None:
        h = self.h11
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            self.route = None
            self.conn.resume_reading()
            # A pipelined request already buffered is handled now (the caller's loop goes on).
        elif h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            if h.our_state is h11.DONE or h.our_state is h11.MUST_CLOSE:
                self.conn.end(ConnEnd.DONE)

    # ----- output -------------------------------------------------------------------------------
    def pump(self) -> None:
        """Write /large's body while the transport takes it (the same block every time: the write
        copies nothing that the kernel takes at once, and what it buffers is bounded by high_water).

        At most :data:`H1_BURST` blocks per turn of the loop, then again at the next turn: other
        connections get theirs, and a TLS transport whose connection is gone (it drops writes
        without pausing, and says nothing until its connection_lost runs) cannot hold the loop.
        """
        if self.scheduled:
            return  # the turn already due does it
        conn = self.conn
        if self.large_left <= 0:
            return
        # No more at once than the connection may hold unsent (a few ms of its rate): the transport
        # pauses on what the kernel refuses, so one write is the most that waits in front of it.
        size = min(BLOCK_SIZE, conn.unsent_cap)
        block = send_block()[:size]
        write = conn.transport_write
        t = conn.transport
        assert t is not None
        for _ in range(H1_BURST):
            if conn.paused or conn.ending or t.is_closing():
                return
            left = self.large_left
            if left <= size:
                write(block[:left])
                self.large_left = 0
                conn.end(ConnEnd.DONE)  # the object is whole; h11 never saw it: close cleanly
                return
            write(block)
            self.large_left = left - size
        self.scheduled = True
        asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        self.scheduled = False
        self.pump()

    def resume(self) -> None:
        self.pump()

    def goaway(self) -> None:
        pass


class _ServerH2(h2.connection.H2Connection):
    """h2's connection with its own stream-count check turned off: a stream beyond
    SETTINGS_MAX_CONCURRENT_STREAMS is refused by :class:`H2Handler` with RST_STREAM(REFUSED_STREAM),
    a stream error as RFC 9113 allows, where h2 would end the whole connection."""

    @property
    def open_inbound_streams(self) -> int:
        super().open_inbound_streams  # noqa: B018  # h2 drops closed streams in this property
        return 0


class _Sending:
    """An HTTP/2 response body still going out."""

    __slots__ = ("body", "left", "offset")

    def __init__(self, left: int, body: memoryview | None) -> None:
        self.left = left
        self.body = body  # None: /large (the shared block, endlessly)
        self.offset = 0


class H2Handler:
    """HTTP/2 on one connection (h2): many streams; a connection error ends it with a GOAWAY."""

    def __init__(self, conn: NqConn) -> None:
        self.conn = conn
        cfg = conn.server.config
        self.h2 = _ServerH2(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: cfg.max_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: H2_WINDOW,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: H2_MAX_FRAME,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: cfg.max_header_bytes,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
        self.h2.max_inbound_frame_size = H2_MAX_FRAME
        self.h2.decoder.max_header_list_size = cfg.max_header_bytes  # h2 reads it from here, not the settings
        self.sending: dict[int, _Sending] = {}
        self.uploads: dict[int, int] = {}  # stream -> bytes received so far
        self.active: set[int] = set()  # streams with a request being served
        self.scheduled = False  # a pump is due at the loop's next turn
        # The frame splitter (data()): uploads' DATA frames are dropped before h2 (which would
        # parse, copy and even format each one for its log); everything else is h2's.
        self.preface_left = len(H2_PREFACE)
        self.head = b""
        self.pass_left = 0
        self.drop_left = 0
        self.drop_sid = 0
        self.drop_end = False
        self.unacked = 0  # dropped bytes not yet given back to the connection's window
        self.unacked_stream: dict[int, int] = {}
        self.frame_cap = 16384  # DATA frame size the client surely takes (see RemoteSettingsChanged)
        self.frame_wanted = 0
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(H2_WINDOW - 65535)  # the connection's window too
        self._flush()

    def data(self, data: bytes) -> None:
        """Split the bytes at frame boundaries: an upload's DATA frames are counted and dropped
        here (see :meth:`_dropped`); every other byte goes to h2, in order."""
        view = memoryview(data)
        i, n = 0, len(view)
        start = 0  # bytes from here to i are for h2 and not handed over yet
        while i < n:
            if self.preface_left:  # the client's preface: h2's
                take = min(self.preface_left, n - i)
                self.preface_left -= take
                i += take
            elif self.pass_left:  # the rest of a frame for h2
                take = min(self.pass_left, n - i)
                self.pass_left -= take
                i += take
            elif self.drop_left:  # the rest of a dropped DATA frame (start == i here)
                take = min(self.drop_left, n - i)
                self.drop_left -= take
                i += take
                start = i
                self._dropped(take)
                if self.conn.ending:
                    return
            else:  # a frame header, perhaps split over reads
                held = self.head
                need = 9 - len(held)
                if n - i < need:
                    if not self._feed(view[start:i]):
                        return
                    self.head = held + bytes(view[i:n])
                    start = i = n
                    break
                header = held + bytes(view[i:i + need])
                self.head = b""
                i += need
                length = int.from_bytes(header[:3], "big")
                if header[3] == 0 and length <= H2_MAX_FRAME:  # DATA: whose?
                    # h2 first takes what came before (an upload's HEADERS may be among it).
                    if not self._feed(view[start:i - need]):
                        return
                    sid = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
                    if sid in self.uploads:
                        self.drop_sid, self.drop_left, self.drop_end = sid, length, bool(header[4] & 0x1)
                        start = i
                        if length == 0:
                            self._dropped(0)
                            if self.conn.ending:
                                return
                        continue
                    if not self._feed(memoryview(header)):
                        return
                    start = i
                elif held:  # a header that came in pieces: h2 has seen none of it
                    if not self._feed(view[start:i - need]) or not self._feed(memoryview(header)):
                        return
                    start = i
                self.pass_left = length
        if not self._feed(view[start:n]):
            return
        self.pump()
        self._flush()

    def _feed(self, chunk: memoryview) -> bool:
        """Hand ``chunk`` to h2 and act on its events; False once the connection is ending."""
        conn = self.conn
        if conn.ending:
            return False
        if not len(chunk):
            return True
        try:
            for ev in self.h2.receive_data(bytes(chunk)):
                self._event(ev)
                if conn.ending:
                    return False
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(exc)
            return False
        return True

    def _dropped(self, nbytes: int) -> None:
        """``nbytes`` of an upload's DATA frame were read and dropped. h2 never sees them, so the
        window is given back here (raw WINDOW_UPDATEs, once a quarter of it is used); at the
        frame's end an END_STREAM is handed to h2 as an empty DATA frame, so the stream ends."""
        sid = self.drop_sid
        conn = self.conn
        if nbytes:
            conn.server.uploaded(nbytes)
            self.unacked += nbytes
            self.unacked_stream[sid] = self.unacked_stream.get(sid, 0) + nbytes
            if sid in self.uploads:
                total = self.uploads[sid] = self.uploads[sid] + nbytes
                cap = conn.server.config.max_upload
                if cap is not None and total > cap:
                    self._over_cap(sid)
                    self.unacked_stream.pop(sid, None)
        if self.drop_left:
            return
        updates = b""
        if self.unacked >= H2_WINDOW // 4:
            updates += _window_update(0, self.unacked)
            self.unacked = 0
        pending = self.unacked_stream.get(sid, 0)
        if sid in self.uploads and pending >= H2_WINDOW // 4:
            updates += _window_update(sid, pending)
            self.unacked_stream[sid] = 0
        if updates:
            self._flush()
            conn.write(updates)
        if self.drop_end:
            self.drop_end = False
            self.unacked_stream.pop(sid, None)
            if sid in self.uploads:
                self._feed(memoryview(b"\x00\x00\x00\x00\x01" + sid.to_bytes(4, "big")))

    def eof(self) -> None:
        self.conn.end(ConnEnd.EOF)

    def _protocol_error(self, exc: Exception) -> None:
        conn = self.conn
        text = str(exc) or type(exc).__name__
        if isinstance(exc, h2.exceptions.DenialOfServiceError) and "header" in text.lower():
            conn.server.limit_hit("max_header", conn, conn.server.config.max_header_bytes)
        self._flush()  # h2 has queued the GOAWAY naming the error
        conn.end(ConnEnd.PROTOCOL, f"HTTP/2: {text}")

    def _event(self, ev: Any) -> None:
        conn = self.conn
        if isinstance(ev, h2.events.RequestReceived):
            self._request(ev)
        elif isinstance(ev, h2.events.DataReceived):
            sid = ev.stream_id
            n = ev.flow_controlled_length
            if n:  # dropped at once: give the window back now
                self.h2.acknowledge_received_data(n, sid)
            got = len(ev.data)
            conn.server.uploaded(got)
            if sid in self.uploads:
                total = self.uploads[sid] = self.uploads[sid] + got
                cap = conn.server.config.max_upload
                if cap is not None and total > cap:
                    self._over_cap(sid)
        elif isinstance(ev, h2.events.StreamEnded):
            if self.uploads.pop(sid := ev.stream_id, None) is not None:
                self._respond(sid, 200, b"", ctype=b"text/plain")
        elif isinstance(ev, h2.events.StreamReset):
            self._forget(ev.stream_id)
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            changed = ev.changed_settings.get(h2.settings.SettingCodes.MAX_FRAME_SIZE)
            if changed is not None and changed.new_value > self.frame_cap:
                # Larger frames only once the client surely applies its new size: a client applies
                # it when it reads our SETTINGS ACK, and h2 (as a client) checks frame sizes per
                # read, so a large frame read together with the ACK would be refused. The answer
                # to a PING sent after the ACK proves that read is over.
                self.frame_wanted = changed.new_value
                self.h2.ping(FRAME_PING)
        elif isinstance(ev, h2.events.PingAckReceived):
            if ev.ping_data == FRAME_PING and self.frame_wanted:
                self.frame_cap = min(self.frame_wanted, self.h2.max_outbound_frame_size)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            conn.end(ConnEnd.EOF)

    def _forget(self, sid: int) -> None:
        self.sending.pop(sid, None)
        self.uploads.pop(sid, None)
        self.active.discard(sid)

    def _over_cap(self, sid: int) -> None:
        conn = self.conn
        conn.server.limit_hit("max_upload", conn, conn.server.config.max_upload)
        self.uploads.pop(sid, None)
        self._respond(sid, 413, b"upload over the server's limit\n", ctype=b"text/plain")
        self._reset(sid, h2.errors.ErrorCodes.NO_ERROR)  # stop sending: the answer is out

    def _reset(self, sid: int, code: h2.errors.ErrorCodes) -> None:
        try:
            self.h2.reset_stream(sid, code)
        except h2.exceptions.StreamClosedError:
            pass
        self._forget(sid)

    def _request(self, ev: h2.events.RequestReceived) -> None:
        conn = self.conn
        sid = ev.stream_id
        headers = {bytes(k): bytes(v) for k, v in (ev.headers or [])}
        if len(self.active) >= conn.server.config.max_streams:
            conn.server.limit_hit("max_streams", conn, conn.server.config.max_streams)
            self._reset(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        self.active.add(sid)
        method = headers.get(b":method", b"").decode("ascii", "replace")
        target = headers.get(b":path", b"/").decode("ascii", "replace")
        r = route(method, target)
        conn.request(r)
        ended = ev.stream_ended is not None
        if r is Route.UPLOAD:
            cap = conn.server.config.max_upload
            length = headers.get(b"content-length", b"")
            if cap is not None and length.isdigit() and int(length) > cap:
                self.uploads[sid] = 0
                self._over_cap(sid)
                return
            if ended:
                self._respond(sid, 200, b"", ctype=b"text/plain")
            else:
                self.uploads[sid] = 0
                # Its DATA never reaches h2 (data() drops it), so h2 must not hold the body to
                # the announced Content-Length when the stream ends; the count is ours.
                stream = self.h2.streams.get(sid)
                if stream is not None and hasattr(stream, "_expected_content_length"):
                    stream._expected_content_length = None
            return
        if r is Route.LARGE:
            self.h2.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/octet-stream"),
                                       (b"content-length", str(LARGE_SIZE).encode()),
                                       (b"cache-control", b"no-store")])
            self.sending[sid] = _Sending(LARGE_SIZE, None)
            return
        if r is Route.SMALL:
            self._respond(sid, 200, SMALL_BODY, ctype=b"application/octet-stream")
        elif r is Route.CONFIG:
            authority = headers.get(b":authority") or headers.get(b"host")
            host = choose_url_host(conn.server.config, conn.server.host,
                                   authority.decode("ascii", "replace") if authority else None)
            self._respond(sid, 200, config_document(conn.server.config, conn.tls, conn.server.port, host),
                          ctype=b"application/json")
        elif r is Route.BAD_METHOD:
            self._respond(sid, 405, b"method not allowed\n", ctype=b"text/plain",
                          extra=[(b"allow", allowed_method(r, target).encode())])
        else:
            self._respond(sid, 404, b"not found\n", ctype=b"text/plain")

    def _respond(self, sid: int, status: int, body: bytes, *, ctype: bytes,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b":status", str(status).encode()), (b"content-type", ctype),
                   (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"), *(extra or [])]
        self.h2.send_headers(sid, headers, end_stream=not body)
        if body:
            self.sending[sid] = _Sending(len(body), memoryview(body))
        else:
            self.active.discard(sid)

    # ----- output -------------------------------------------------------------------------------
    def pump(self) -> None:
        """Queue DATA frames while the transport is not paused and windows allow: one frame per
        sending stream per round (a /small answer is never stuck behind a /large stream's run)."""
        conn = self.conn
        h = self.h2
        if self.scheduled:
            return  # the turn already due does it
        block = send_block()
        for _ in range(SEND_ROUNDS):
            if conn.paused or conn.ending or not self.sending or conn.closing():
                return
            moved = False
            streams = list(self.sending.items())
            if len(streams) > 1:  # short answers first: a probe's byte never waits for a /large
                streams.sort(key=lambda kv: kv[1].body is None)  # stream's share of the window
            for sid, st in streams:
                if conn.paused or conn.ending:  # the transport is full: the rest wait for resume
                    break
                try:
                    room = h.local_flow_control_window(sid)
                except h2.exceptions.StreamClosedError:
                    self._forget(sid)
                    continue
                frame = min(h.max_outbound_frame_size, MAX_DATA_FRAME, self.frame_cap, conn.unsent_cap)
                if st.body is None and room >= frame and st.left > FRAMES_BYTES:
                    self._raw_frames(sid, st, frame, room)
                    moved = True
                    continue
                n = min(room, frame, st.left)
                if n <= 0:
                    continue
                if st.body is None:
                    chunk = block[:n]
                else:
                    chunk = st.body[st.offset:st.offset + n]
                    st.offset += n
                st.left -= n
                done = st.left == 0
                h.send_data(sid, chunk, end_stream=done)
                if done:
                    del self.sending[sid]
                    self.active.discard(sid)
                moved = True
                if n >= 16384:
                    self._flush()  # a full frame goes out now, so the transport may pause us
            self._flush()
            if not moved:
                return
        # Still room to send: go on at the next turn of the loop, after other connections had theirs.
        self.scheduled = True
        asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        self.scheduled = False
        self.pump()
        self._flush()

    def _raw_frames(self, sid: int, st: _Sending, frame: int, room: int) -> None:
        """/large's DATA frames written whole from a prebuilt run of frames (header and payload:
        the payload is irrelevant, so the same bytes serve every write), where ``send_data`` would
        build and copy each frame. h2's flow-control windows are charged as ``send_data`` would
        charge them, so its accounting of later WINDOW_UPDATEs stays exact."""
        h = self.h2
        run = _frame_run(sid, frame)
        k = min(room // frame, len(run) // (frame + 9), max(1, self.conn.unsent_cap // (frame + 9)))
        self._flush()  # anything h2 queued (headers, acks) goes first
        self.conn.write(run[: k * (frame + 9)])
        sent = k * frame
        h.outbound_flow_control_window -= sent
        h.streams[sid].outbound_flow_control_window -= sent
        st.left -= sent

    def resume(self) -> None:
        self.pump()
        self._flush()

    def _flush(self) -> None:
        out = self.h2.data_to_send()
        if out:
            self.conn.write(out)

    def goaway(self) -> None:
        """Tell the client this connection is ending (a limit, the server stopping)."""
        try:
            self.h2.close_connection()
        except h2.exceptions.ProtocolError:
            return
        self._flush()


__all__ = ["BLOCK_SIZE", "H2_PREFACE", "MAX_DATA_FRAME", "H1Handler", "H2Handler", "send_block"]
