"""The HTTP handlers of ``netkit serve responsiveness`` fed bytes split at every size (no sockets).

The HTTP/2 handler drops an upload's DATA frames before h2 sees them and gives the window back
itself; the HTTP/1.1 handler counts an upload's body without h11. Both must behave as if nothing
were split whatever the reads look like: a client's preface, HEADERS, DATA and the next request
arrive byte by byte, in odd pieces, or whole, and the answers (read by a real h2 client / h11)
are the same: 200 for the upload with every byte counted, the window given back, then /small.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events
import h11
import pytest

from netkit.core.nq_server import ConnEnd, NqServerConfig, Route
from netkit.io.servers.nq_http import H1Handler, H2Handler

BODY = 200_000


class FakeServer:
    def __init__(self) -> None:
        self.config = NqServerConfig(port=4443)
        self.host = "127.0.0.1"
        self.port = 4443
        self.uploaded_bytes = 0
        self.limits: list[str] = []

    def uploaded(self, n: int) -> None:
        self.uploaded_bytes += n

    def limit_hit(self, which: str, conn: Any, value: Any, **_: Any) -> None:
        self.limits.append(which)


class FakeConn:
    """What a handler needs of its connection: writes collected, never paused."""

    def __init__(self) -> None:
        self.server = FakeServer()
        self.out = bytearray()
        self.ending = False
        self.paused = False
        self.tls = True
        self.transport = None
        self.unsent_cap = 256 * 1024  # a fast connection's: writes of a whole frame run
        self.routes: list[Route] = []
        self.ended: ConnEnd | None = None

    def write(self, data: bytes | memoryview) -> None:
        self.out += data

    def closing(self) -> bool:
        return False

    def request(self, r: Route) -> None:
        self.routes.append(r)

    def end(self, reason: ConnEnd, error: str | None = None, **_: Any) -> None:
        self.ending = True
        self.ended = reason

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _client_bytes() -> tuple[h2.connection.H2Connection, bytes, int]:
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "POST"), (":path", "/upload"), (":scheme", "https"), (":authority", "x"),
                       ("content-length", str(BODY))])
    sent = 0
    while sent < BODY:  # 16 KiB frames, the last one short, with a padded one among them
        n = min(16384 - 8, BODY - sent, c.local_flow_control_window(1))
        assert n > 0  # the default 64 KiB windows: the first 65,535 bytes go before any update
        c.send_data(1, b"\0" * n, end_stream=sent + n == BODY, pad_length=7 if sent == 16376 else None)
        sent += n
        if c.local_flow_control_window(1) < 16384 and sent < BODY:
            break
    return c, c.data_to_send(), sent


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_h2_upload_split_anywhere(piece: int) -> None:
    async def run() -> None:
        conn = FakeConn()
        handler = H2Handler(conn)  # type: ignore[arg-type]
        client, wire, sent = _client_bytes()
        # The client sends what its windows allow, reads the server's answers, sends more.
        for _ in range(64):
            for i in range(0, len(wire), piece):
                handler.data(wire[i:i + piece])
            assert not conn.ending, conn.ended
            events = client.receive_data(bytes(conn.out))
            conn.out.clear()
            if any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 1 for e in events):
                status = [dict(e.headers)[b":status"] for e in events if isinstance(e, h2.events.ResponseReceived)]
                assert status == [b"200"]
                break
            more = min(BODY - sent, client.local_flow_control_window(1))
            while more > 0:
                n = min(more, 16384)
                sent += n
                more -= n
                client.send_data(1, b"\0" * n, end_stream=sent == BODY)
            wire = client.data_to_send()
        else:
            raise AssertionError("the upload never ended")
        # Every byte counted (padding included: flow-controlled bytes), the window given back.
        assert conn.server.uploaded_bytes == BODY + 8
        assert client.outbound_flow_control_window >= 65535 - 16384
        # The same connection serves the next request.
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [(":method", "GET"), (":path", "/small"), (":scheme", "https"),
                                  (":authority", "x")], end_stream=True)
        wire = client.data_to_send()
        for i in range(0, len(wire), piece):
            handler.data(wire[i:i + piece])
        events = client.receive_data(bytes(conn.out))
        assert [e.data for e in events if isinstance(e, h2.events.DataReceived)] == [b"x"]
        assert conn.routes == [Route.UPLOAD, Route.SMALL]

    asyncio.run(run())


@pytest.mark.parametrize("piece", [1, 5, 333, 1 << 20])
def test_h1_upload_then_a_second_request_split_anywhere(piece: int) -> None:
    conn = FakeConn()
    handler = H1Handler(conn)  # type: ignore[arg-type]
    wire = (b"POST /upload?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BODY + b"\0" * BODY
            + b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    for i in range(0, len(wire), piece):
        handler.data(wire[i:i + piece])
    assert not conn.ending
    # Read the answers with h11 as a client would (it only needs a request of its own in flight).
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(bytes(conn.out))
    answers = []
    while True:
        ev = client.next_event()
        if isinstance(ev, h11.Response):
            answers.append(ev.status_code)
        elif isinstance(ev, h11.Data):
            answers.append(ev.data)
        elif ev is h11.NEED_DATA:
            break
        elif isinstance(ev, h11.EndOfMessage):
            if client.our_state is h11.DONE and client.their_state is h11.DONE:
                client.start_next_cycle()
                client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
                client.send(h11.EndOfMessage())
    assert answers == [200, 200, b"x", 200]
    assert conn.server.uploaded_bytes == BODY + 5
    assert conn.routes == [Route.UPLOAD, Route.SMALL, Route.UPLOAD]
