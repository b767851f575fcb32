"""``netkit measure http --http2`` against hostile HTTP/2 servers: each is a clear error with bounded time
and memory, never a hang or a traceback.

netkit speaks HTTP/2 only over TLS (ALPN), so the hostile peer is a TLS server with an ephemeral
certificate (``-k``) that writes its frames by hand: a well-behaved library would refuse to send them.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import hpack
import pytest

from netkit.io.tls import make_self_signed
from tests.support import recv_exact, run_netkit_measured, tcp_peer

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0, 1, 3, 4, 6, 7, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
INTERNAL_ERROR = 2
FLOOD_SECONDS = 8  # longer than the client's --timeout: the client must end it, not the server


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big") + payload


def status_block(status: int = 200) -> bytes:
    return hpack.Encoder().encode([(b":status", str(status).encode())])


def _read_request(c: ssl.SSLSocket, *, ack_settings: bool = True) -> int:
    """Read the client's preface and frames up to its request's HEADERS; the request's stream id. The
    server's own SETTINGS go first; the client's are acknowledged unless ``ack_settings`` is False."""
    recv_exact(c, len(PREFACE))
    c.sendall(frame(SETTINGS, 0, 0))
    while True:
        head = recv_exact(c, 9)
        length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
        stream_id = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        recv_exact(c, length)
        if kind == SETTINGS and not flags & ACK and ack_settings:
            c.sendall(frame(SETTINGS, ACK, 0))
        if kind == HEADERS:
            return stream_id


def _until_closed(c: ssl.SSLSocket, seconds: float = 10) -> None:
    """Read (and drop) what the client sends until it closes the connection."""
    c.settimeout(seconds)
    while c.recv(65536):
        pass


def _send_for(c: ssl.SSLSocket, chunk: bytes, seconds: float = FLOOD_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        c.sendall(chunk)


# ----- the hostile servers ----------------------------------------------------------------------------

def _endless_continuation(c: ssl.SSLSocket) -> None:
    """HEADERS without END_HEADERS, then 10 MB of CONTINUATION frames that never end the block."""
    sid = _read_request(c)
    filler = hpack.Encoder().encode([(b"x-filler", b"a" * 1000)])
    c.sendall(frame(HEADERS, 0, sid, status_block()))
    cont = frame(CONTINUATION, 0, sid, filler * 16)
    for _ in range(10 * 1024 * 1024 // len(cont)):
        c.sendall(cont)


def _huge_literal(c: ssl.SSLSocket) -> None:
    """One HEADERS frame (the client allows 16 MiB frames) holding a 10 MB HPACK literal."""
    sid = _read_request(c)
    block = status_block() + hpack.Encoder().encode([(b"x-huge", b"a" * (10 * 1024 * 1024))], huffman=False)
    c.sendall(frame(HEADERS, END_HEADERS, sid, block))
    _until_closed(c)


def _big_continuation_frames(c: ssl.SSLSocket) -> None:
    """A header block in CONTINUATION frames of 4 MiB each: h2 keeps up to 64 of them (256 MiB)."""
    sid = _read_request(c)
    c.sendall(frame(HEADERS, 0, sid, status_block()))
    cont = frame(CONTINUATION, 0, sid, b"\x00" * (4 * 1024 * 1024))
    for _ in range(64):
        c.sendall(cont)
    _until_closed(c)


def _endless_data(c: ssl.SSLSocket) -> None:
    """A response whose DATA never ends (within the client's windows, which it keeps opening)."""
    sid = _read_request(c)
    c.sendall(frame(HEADERS, END_HEADERS, sid, status_block()))
    _send_for(c, frame(DATA, 0, sid, b"z" * 16384) * 4)


def _data_past_window(c: ssl.SSLSocket) -> None:
    """The client's SETTINGS never acknowledged, so its stream window is still the initial 64 KiB:
    1 MiB of DATA at once ignores it."""
    sid = _read_request(c, ack_settings=False)
    c.sendall(frame(HEADERS, END_HEADERS, sid, status_block()))
    c.sendall(frame(DATA, 0, sid, b"z" * 16384) * 64)
    _until_closed(c)


def _stall_after_headers(c: ssl.SSLSocket) -> None:
    sid = _read_request(c)
    c.sendall(frame(HEADERS, END_HEADERS, sid, status_block()))
    c.settimeout(10)
    _until_closed(c)  # until the client gives up


def _goaway_mid_body(c: ssl.SSLSocket) -> None:
    sid = _read_request(c)
    c.sendall(frame(HEADERS, END_HEADERS, sid, status_block()) + frame(DATA, 0, sid, b"z" * 1000)
              + frame(GOAWAY, 0, 0, sid.to_bytes(4, "big") + INTERNAL_ERROR.to_bytes(4, "big")))
    _until_closed(c)


def _goaway_refusing(c: ssl.SSLSocket) -> None:
    """A graceful GOAWAY (NO_ERROR) whose last stream is before the request: it will never be answered."""
    _read_request(c)
    c.sendall(frame(GOAWAY, 0, 0, (0).to_bytes(4, "big") + (0).to_bytes(4, "big")))
    _until_closed(c)


def _goaway_graceful(c: ssl.SSLSocket) -> None:
    """GOAWAY (NO_ERROR) covering the request before its response, as nginx sends at its
    keepalive_requests: the response still counts, and the next request needs a new connection."""
    sid = _read_request(c)
    c.sendall(frame(HEADERS, END_HEADERS, sid, status_block())
              + frame(GOAWAY, 0, 0, sid.to_bytes(4, "big") + (0).to_bytes(4, "big") + b"bye")
              + frame(DATA, END_STREAM, sid, b"hello"))
    _until_closed(c)


def _reset_mid_body(c: ssl.SSLSocket) -> None:
    sid = _read_request(c)
    c.sendall(frame(HEADERS, END_HEADERS, sid, status_block()) + frame(DATA, 0, sid, b"z" * 1000)
              + frame(RST_STREAM, 0, sid, INTERNAL_ERROR.to_bytes(4, "big")))
    _until_closed(c)


def _settings_flood(c: ssl.SSLSocket) -> None:
    """SETTINGS frames without end and the client's acknowledgements never read."""
    _read_request(c)
    _send_for(c, frame(SETTINGS, 0, 0) * 4096)


def _ping_flood(c: ssl.SSLSocket) -> None:
    _read_request(c)
    _send_for(c, frame(PING, 0, 0, b"netkit!!") * 4096)


# ----- the tests --------------------------------------------------------------------------------------

@contextmanager
def h2_peer(handler: Callable[[ssl.SSLSocket], None]) -> Iterator[int]:
    """A loopback TLS server offering only h2 (ALPN) that runs ``handler`` on each connection."""
    cert, key = make_self_signed()
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "cert.pem").write_bytes(cert)
        (Path(d) / "key.pem").write_bytes(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(Path(d) / "cert.pem", Path(d) / "key.pem")
    ctx.set_alpn_protocols(["h2"])

    def tls(c: socket.socket) -> None:
        with ctx.wrap_socket(c, server_side=True) as s:
            handler(s)

    with tcp_peer(tls) as port:
        yield port


@pytest.mark.parametrize("handler,kind,words", [
    (_endless_continuation, "protocol", "head is over"),
    (_huge_literal, "protocol", "head is over"),
    (_big_continuation_frames, "protocol", "head is over"),
    (_endless_data, "timeout", "no complete response within 1 s"),
    (_data_past_window, "protocol", "Flow control window"),
    (_stall_after_headers, "timeout", "no complete response within 1 s"),
    (_goaway_mid_body, "protocol", "ended the HTTP/2 connection (error 2 INTERNAL_ERROR)"),
    (_goaway_refusing, "protocol", "ended the HTTP/2 connection (error 0 NO_ERROR) before this request"),
    (_reset_mid_body, "protocol", "stream reset (error 2 INTERNAL_ERROR)"),
    (_settings_flood, "protocol", "floods SETTINGS or PING frames"),
    (_ping_flood, "protocol", "floods SETTINGS or PING frames"),
], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
def test_hostile_h2_server_is_a_clear_error(handler, kind: str, words: str) -> None:  # type: ignore[no-untyped-def]
    with h2_peer(handler) as port:
        t0 = time.monotonic()
        r = run_netkit_measured(["measure", "http", f"https://127.0.0.1:{port}/", "--http2", "-k", "-n", "1",
                                 "--timeout", "1s", "--format", "jsonl"], timeout=20)
        took = time.monotonic() - t0
    assert "Traceback" not in r.stderr, r.stderr
    assert r.exit_code == 1, (r.exit_code, r.stdout, r.stderr)
    req = r.jsonl()[0]
    assert req["ok"] is False and req["error_kind"] == kind and words in req["error"], req
    assert took < 6, took
    assert r.peak_rss_kib is not None and r.peak_rss_kib < 200 * 1024, r.peak_rss_kib


def test_graceful_goaway_lets_the_response_finish() -> None:
    with h2_peer(_goaway_graceful) as port:
        r = run_netkit_measured(["measure", "http", f"https://127.0.0.1:{port}/", "--http2", "-k", "-n", "3",
                                 "--timeout", "1s", "--format", "jsonl"], timeout=20)
    assert r.exit_code == 0 and "Traceback" not in r.stderr, (r.stdout, r.stderr)
    reqs = [o for o in r.jsonl() if o["event"] == "request"]
    assert [(q["ok"], q["status"], q["bytes"], q["new_connection"]) for q in reqs] == [(True, 200, 5, True)] * 3
