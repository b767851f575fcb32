"""``netkit measure dns --https`` against a DoH server written here that speaks HTTP/2 (h2) or
HTTP/1.1 (h11), whichever ALPN chose, and answers from dnspython: HTTP/2 is used when offered, one
connection carries every query of a run (the setup reported on the first query only), GET sends the
query base64url-encoded with id 0, --http1.1 forces HTTP/1.1; a server that stalls, sends an endless
body or a huge header list over HTTP/2 ends as a clear error within the timeout."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dns_peers
import pytest
import support

from netkit.io.tls import server_context


class DohServer:
    """What the server saw: connections accepted, and per request its method, path and query id."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()


def _answer(method: str, path: str, body: bytes, server: DohServer) -> bytes:
    if method == "GET":
        encoded = parse_qs(urlsplit(path).query)["dns"][0]
        assert "=" not in encoded  # base64url without padding (RFC 8484 6)
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    with server.lock:
        server.requests.append((method, path, int.from_bytes(body[:2], "big")))
    return bytes(dns_peers.answer_for(body).to_wire())


def _serve_h2(t: ssl.SSLSocket, mode: str, server: DohServer) -> None:
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    t.sendall(conn.data_to_send())
    heads: dict[int, dict[str, str]] = {}
    bodies: dict[int, bytes] = {}
    endless: list[int] = []
    while True:
        data = t.recv(65536)
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                heads[ev.stream_id] = dict(ev.headers)  # type: ignore[arg-type]
                bodies[ev.stream_id] = b""
            elif isinstance(ev, h2.events.DataReceived):
                bodies[ev.stream_id] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id in endless:
                endless.remove(ev.stream_id)  # the client gave up on the endless body
            elif isinstance(ev, h2.events.StreamEnded):
                sid = ev.stream_id
                answer = _answer(heads[sid][":method"], heads[sid][":path"], bodies[sid], server)
                if mode == "stall":
                    continue
                extra = [(f"x-filler-{i}", "x" * 1000) for i in range(300)] if mode == "huge-headers" else []
                conn.send_headers(sid, [(":status", "200"), ("content-type", "application/dns-message"),
                                        *extra])
                if mode == "endless":
                    endless.append(sid)
                else:
                    conn.send_data(sid, answer, end_stream=True)
        for sid in endless:  # as much as the client's window lets through, again at each WINDOW_UPDATE
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            while room > 0:
                conn.send_data(sid, b"\0" * room)
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
        t.sendall(conn.data_to_send())


def _serve_h1(t: ssl.SSLSocket, server: DohServer) -> None:
    import h11

    conn = h11.Connection(h11.SERVER)
    while True:
        method, path, body = "", "", b""
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                data = t.recv(65536)
                if not data:
                    return
                conn.receive_data(data)
            elif isinstance(ev, h11.Request):
                method, path = ev.method.decode(), ev.target.decode()
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                break
            elif isinstance(ev, h11.ConnectionClosed):
                return
        answer = _answer(method, path, body, server)
        t.sendall(conn.send(h11.Response(status_code=200, headers=[
            ("Content-Type", "application/dns-message"), ("Content-Length", str(len(answer)))])))
        t.sendall(conn.send(h11.Data(data=answer)) + conn.send(h11.EndOfMessage()))
        conn.start_next_cycle()


def _handler(ctx: ssl.SSLContext, mode: str, server: DohServer) -> Callable[[socket.socket], None]:
    def handler(c: socket.socket) -> None:
        c.settimeout(10)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as DoH servers do: no Nagle wait
        with ctx.wrap_socket(c, server_side=True) as t:
            with server.lock:
                server.connections += 1
            if t.selected_alpn_protocol() == "h2":
                _serve_h2(t, mode, server)
            else:
                _serve_h1(t, server)

    return handler


@pytest.fixture()
def doh(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Callable[..., support.CliResult], DohServer]]:
    """Run netkit against the server (its mode from the test's ``mode`` parameter, ``ok`` by default)."""
    mode = getattr(request, "param", "ok")
    cert = tmp_path / "ca.pem"
    tls = server_context(keep_cert_at=cert)
    tls.context.set_alpn_protocols(["h2", "http/1.1"])
    server = DohServer()
    with support.tcp_peer(_handler(tls.context, mode, server)) as port:
        def run(*args: str, url_host: str = "localhost") -> support.CliResult:
            return support.invoke(["--format", "json", "measure", "dns", "--https",
                                   f"https://{url_host}:{port}/dns-query", "-s", f"127.0.0.1:{port}",
                                   "--cafile", str(cert), "-i", "0", *args])

        yield run, server


def test_http2_one_connection_for_the_run(doh: tuple[Callable[..., support.CliResult], DohServer]) -> None:
    run, server = doh
    res = run("a.test", "b.test", "-c", "3")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert [q["http_version"] for q in doc["queries"]] == ["2"] * 6
    assert doc["rows"][0]["answers"] == ["198.18.0.9"]
    assert server.connections == 1 and len(server.requests) == 6
    setups = [q["connect_ms"] for q in doc["queries"]]
    assert setups[0] is not None and setups[0] > 0 and setups[1:] == [None] * 5
    assert all(q["rtt_ms"] > 0 for q in doc["queries"])
    assert {m for m, _, _ in server.requests} == {"POST"}


def test_get_over_http1_to_an_address(doh: tuple[Callable[..., support.CliResult], DohServer]) -> None:
    run, server = doh
    res = run("a.test", "-c", "3", "--doh-get", "--http1.1", url_host="127.0.0.1")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert [q["http_version"] for q in doc["queries"]] == ["1.1"] * 3
    assert doc["rows"][0]["answers"] == ["198.18.0.9"]
    assert server.connections == 1
    assert [(m, p.split("?")[0], qid) for m, p, qid in server.requests] == [("GET", "/dns-query", 0)] * 3


@pytest.mark.parametrize(("doh", "error"), [
    ("stall", "no answer within the timeout"),
    ("endless", "the DoH answer is larger than any DNS message"),
    ("huge-headers", "DoH over HTTP/2: the response head is over 64 KiB"),
], indirect=["doh"], ids=["stall", "endless-body", "huge-headers"])
def test_hostile_http2_server_is_a_clear_error(doh: tuple[Callable[..., support.CliResult], DohServer],
                                               error: str) -> None:
    run, _ = doh
    start = time.monotonic()
    res = run("a.test", "-W", "500ms")
    took = time.monotonic() - start
    assert res.exit_code == 1, res.stderr
    assert res.json()["queries"][0]["error"].startswith(error)
    assert took < 3
