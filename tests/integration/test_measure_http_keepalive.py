"""``netkit measure http`` on kept-alive HTTP/1.1 connections, where requests follow each other back to
back on one connection: a response that stalls mid-connection is a timeout for that request only, a
server's ``Connection: close`` makes the next request dial anew, and every request is counted once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.support import clean_env, netkit_cmd, read_request_head, run_netkit, tcp_peer

BODY = b"hello\n"


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
        while read_request_head(c, buf) is not None:
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


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(x) for x in f.read().split()}
    except OSError:
        return set()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="worker processes need two cores")
def test_concurrency_over_workers_counts_every_request_once() -> None:
    handler, connections = _keepalive_server()
    with tcp_peer(handler) as port:  # type: ignore[arg-type]
        r = run_netkit(["--format", "jsonl", "measure", "http", f"http://127.0.0.1:{port}/", "-n", "400",
                        "-C", "4"], timeout=30)
    assert r.exit_code == 0, r.stderr
    docs = r.jsonl()
    reqs = [d for d in docs if d.get("event") == "request"]
    assert sorted(d["seq"] for d in reqs) == list(range(1, 401))
    assert all(d["ok"] and d["bytes"] == len(BODY) for d in reqs)
    summary = docs[-1]["urls"][0]
    assert summary["count"] == 400 and summary["ok"] == 400 and summary["statuses"] == {"200": 400}
    assert summary["new_connections"] == 4 and len(connections) == 4
    assert summary["sampled_every"] == 1 and summary["ms"]["total"]["p50"] > 0


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="worker processes need two cores")
def test_interrupt_with_workers_prints_the_summary_and_leaves_no_process() -> None:
    handler, _ = _keepalive_server()
    with tcp_peer(handler) as port:  # type: ignore[arg-type]
        proc = subprocess.Popen(netkit_cmd("--format", "jsonl", "measure", "http", f"http://127.0.0.1:{port}/",
                                           "-d", "30s", "-C", "2"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        deadline = time.monotonic() + 10
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 2:
            workers = _children(proc.pid)
            time.sleep(0.05)
        assert len(workers) == 2
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # a request streamed from a worker
        assert first["event"] == "request" and first["ok"]
        proc.send_signal(signal.SIGINT)  # the parent only: it stops its workers itself
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    doc = json.loads(out.splitlines()[-1])
    assert doc["event"] == "summary" and doc["interrupted"] is True and doc["urls"][0]["count"] > 0
    assert doc["urls"][0]["errors"]["total"] == 0
    assert not any(os.path.exists(f"/proc/{w}") and _state(w) != "Z" for w in workers)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
