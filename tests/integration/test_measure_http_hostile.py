"""``netkit measure http`` against hostile servers: each is a clear error with bounded time and memory,
never a hang or a traceback; and the CLI's exit codes."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support import free_tcp_port, read_request_head, run_netkit, run_netkit_measured, tcp_peer


def _huge_head(c: socket.socket) -> None:
    read_request_head(c)
    c.sendall(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    for _ in range(10 * 1024):  # 10 MB of header lines
        c.sendall(line)


def _endless_chunked(c: socket.socket) -> None:
    read_request_head(c)
    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % 65536 + b"z" * 65536 + b"\r\n"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        c.sendall(chunk)


def _stall_after_status(c: socket.socket) -> None:
    read_request_head(c)
    c.sendall(b"HTTP/1.1 200 OK\r\n")
    c.settimeout(10)
    c.recv(1)  # until the client gives up


@pytest.mark.parametrize("handler,kind,words", [
    (_huge_head, "protocol", "head is over"),
    (_endless_chunked, "timeout", "no complete response within 1 s"),
    (_stall_after_status, "timeout", "no complete response within 1 s"),
])
def test_hostile_server_is_a_clear_error(handler, kind: str, words: str) -> None:  # type: ignore[no-untyped-def]
    with tcp_peer(handler) as port:
        t0 = time.monotonic()
        r = run_netkit_measured(["measure", "http", f"http://127.0.0.1:{port}/", "-n", "1", "--timeout", "1s",
                                 "--format", "jsonl"], timeout=20)
        took = time.monotonic() - t0
    assert "Traceback" not in r.stderr
    assert r.exit_code == 1
    req = r.jsonl()[0]
    assert req["ok"] is False and req["error_kind"] == kind and words in req["error"], req
    assert took < 6
    # The child's peak resident memory: the body is counted, not kept; the head is capped.
    assert r.peak_rss_kib is not None and r.peak_rss_kib < 200 * 1024, r.peak_rss_kib


def test_exit_codes() -> None:
    port = free_tcp_port()
    r = run_netkit(["measure", "http", f"http://127.0.0.1:{port}/", "-n", "1"])
    assert r.exit_code == 1 and "refused" in r.stderr and "Traceback" not in r.stderr
    for bad in (["ftp://x/"], ["http://127.0.0.1/", "--resolve", "nonsense"],
                ["http://127.0.0.1/", "--expect-status", "abc"], ["http://127.0.0.1/", "-H", "nocolon"],
                ["http://127.0.0.1/", "--http1.1", "--http2"], ["http://127.0.0.1/", "--http2"]):
        r = run_netkit(["measure", "http", *bad])
        assert r.exit_code == 2, (bad, r.stderr)
        assert "Traceback" not in r.stderr
