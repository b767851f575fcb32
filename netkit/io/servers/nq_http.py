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
H1_BURST = 16  # HTTP/1.1: /large blocks written per turn of the loop, at most
SEND_ROUNDS = 64  # HTTP/2: rounds of one frame per sending stream per turn of the loop, at most

_block: list[memoryview] = []


def send_block() -> memoryview:
    """One preallocated block for every /large body (its content is irrelevant; it is never compressed)."""
    if not _block:
        _block.append(memoryview(bytes(range(256)) * (BLOCK_SIZE // 256)))
    return _block[0]


def _content_type(r: Route) -> bytes:
    return b"application/json" if r is Route.CONFIG else b"application/octet-stream"


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

    # ----- input --------------------------------------------------------------------------------
    def data(self, data: bytes) -> None:
        self.h11.receive_data(data)
        self._events()

    def eof(self) -> None:
        self.h11.receive_data(b"")
        self._events()

    def _events(self) -> None:
        conn = self.conn
        while not conn.ending:
            try:
                ev = self.h11.next_event()
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
        block = send_block()
        write = conn.transport_write
        size = len(block)
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
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(H2_WINDOW - 65535)  # the connection's window too
        self._flush()

    def data(self, data: bytes) -> None:
        conn = self.conn
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(exc)
            return
        try:
            for ev in events:
                self._event(ev)
                if conn.ending:
                    return
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(exc)
            return
        self.pump()
        self._flush()

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
            for sid, st in list(self.sending.items()):
                room = h.local_flow_control_window(sid)
                n = min(room, h.max_outbound_frame_size, MAX_DATA_FRAME, st.left)
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


__all__ = ["BLOCK_SIZE", "MAX_DATA_FRAME", "H1Handler", "H2Handler", "send_block"]
