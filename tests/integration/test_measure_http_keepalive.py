"""``netkit measure http`` on kept-alive HTTP/1.1 connections, where requests follow each other back to
back on one connection: a response that stalls mid-connection is a timeout for that request only, a
server's ``Connection: close`` makes the next request dial anew, and every request is counted once."""

from __future__ import annotations

import socket
import threading
import time

from tests.support import run_netkit, tcp_peer

BODY = b"hello\n"


def _read_request(c: socket.socket, buf: bytearray) -> bool:
    while b"\r\n\r\n" not in buf:
        chunk = c.recv(4096)
        if not chunk:
            return False
        buf += chunk
    del buf[:buf.index(b"\r\n\r\n") + 4]
    return True


def _keepalive_server(*, close_every: int = 0, stall_at: int = 0) -> tuple[object, list[int]]:
    """A handler answering requests on one connection; ``close_every`` N answers ends the connection
    with ``Connection: close``; the ``stall_at``-th request overall (1-based) gets no answer."""
    answered = [0]
    lock = threading.Lock()
    connections: list[int] = []

    def handler(c: socket.socket) -> None:
        buf = bytearray()
        on_this = 0
        with lock:
            connections.append(1)
        while _read_request(c, buf):
            with lock:
                answered[0] += 1
                n = answered[0]
            if n == stall_at:
                c.settimeout(10)
                c.recv(1)  # until the client gives up on it
                return
            on_this += 1
            close = close_every and on_this >= close_every
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(BODY), b"Connection: close\r\n"
                                                                            if close else b"") + BODY)
            if close:
                return

    return handler, connections


def test_stall_on_a_kept_alive_connection_is_one_timeout() -> None:
    handler, connections = _keepalive_server(stall_at=3)
    with tcp_peer(handler) as port:  # type: ignore[arg-type]
        t0 = time.monotonic()
        r = run_netkit(["--format", "jsonl", "measure", "http", f"http://127.0.0.1:{port}/", "-n", "6",
                        "--timeout", "0.5s"], timeout=20)
        took = time.monotonic() - t0
    assert "Traceback" not in r.stderr
    assert r.exit_code == 1  # a request failed
    docs = r.jsonl()
    reqs = [d for d in docs if d.get("event") == "request"]
    summary = docs[-1]["urls"][0]
    assert sorted(d["seq"] for d in reqs) == [1, 2, 3, 4, 5, 6]
    bad = [d for d in reqs if not d["ok"]]
    assert [d["seq"] for d in bad] == [3] and bad[0]["error_kind"] == "timeout", bad
    assert "within 0.5 s" in bad[0]["error"]
    assert summary["count"] == 6 and summary["ok"] == 5 and summary["errors"]["timeout"] == 1
    assert summary["new_connections"] == 2 and len(connections) == 2  # the stalled connection was closed
    assert took < 8


def test_connection_close_dials_anew_and_counts_every_request() -> None:
    handler, connections = _keepalive_server(close_every=4)
    with tcp_peer(handler) as port:  # type: ignore[arg-type]
        r = run_netkit(["--format", "jsonl", "measure", "http", f"http://127.0.0.1:{port}/", "-n", "10",
                        "-C", "1"], timeout=20)
    assert r.exit_code == 0, r.stderr
    docs = r.jsonl()
    reqs = [d for d in docs if d.get("event") == "request"]
    assert [d["seq"] for d in reqs] == list(range(1, 11))
    assert all(d["ok"] and d["status"] == 200 and d["bytes"] == len(BODY) for d in reqs)
    # Connections 1-4, 5-8, 9-10: the first request on each paid the connect.
    assert [d["seq"] for d in reqs if d["new_connection"]] == [1, 5, 9]
    assert all(d["ms"]["connect"] == 0 for d in reqs if not d["new_connection"])
    summary = docs[-1]["urls"][0]
    assert summary["count"] == 10 and summary["ok"] == 10 and summary["new_connections"] == 3
    assert len(connections) == 3
