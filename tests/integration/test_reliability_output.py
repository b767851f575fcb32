"""A server whose stdout reader stops (``| less`` paused, a suspended terminal) keeps serving.

The server's stdout is a pipe this test never reads: once the pipe (64 KiB) and the server's
event queue are full, events are dropped and counted, one warning says so, every client is still
served, and SIGTERM stops the server at once.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable

import pytest
import support

Record = Callable[[str, object], None]
pytestmark = pytest.mark.usefixtures("no_socket_leak")

STOP_WITHIN_S = 3.0  # SIGTERM to exit, with a stalled reader (the close gives up after 0.5 s idle)


def start_unread(*args: str) -> support.Server:
    """A server whose stdout is a pipe nobody reads (its stderr is read for the ready line)."""
    return support.start_netkit_server(*args)  # stdout=PIPE, and this test never reads it


def stop_timed(server: support.Server) -> tuple[int, float, str]:
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        raise AssertionError("SIGTERM did not stop a server whose stdout is not read") from None
    elapsed = time.monotonic() - t0
    assert server.proc.stderr is not None
    err = server.proc.stderr.read().decode(errors="replace")
    assert server.proc.stdout is not None
    server.proc.stdout.close()
    return server.proc.returncode, elapsed, err


def test_reliability_tcp_server_with_unread_stdout_keeps_accepting(record_property: Record) -> None:
    conns = 3000
    server = start_unread("--format", "jsonl", "serve", "tcp", "--port", "0")
    try:
        served = 0
        for i in range(conns):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                s.sendall(b"ping %d\n" % i)
                s.shutdown(socket.SHUT_WR)
                got = b""
                while True:
                    data = s.recv(4096)
                    if not data:
                        break
                    got += data
            assert got == b"ping %d\n" % i, f"connection {i} not served"
            served += 1
        code, elapsed, err = stop_timed(server)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate()
    record_property("injected", f"{conns} connections (2 events each) into a stdout pipe nobody reads")
    record_property("result", f"{served} served; SIGTERM to exit {elapsed:.2f} s")
    assert served == conns
    assert code == 0, err
    assert elapsed < STOP_WITHIN_S
    assert "Traceback" not in err
    assert err.count("events are dropped") <= 1  # at most one notice, however many were dropped
    assert "not being read" in err  # the summary could not be written, and it says so


def test_reliability_udp_server_with_unread_stdout_drops_events_and_stops(record_property: Record) -> None:
    # ~190 bytes of jsonl per datagram: the pipe and the queue are full after some 6,000 events.
    # The kernel drops datagrams the server has no time to read (a busy machine), so send until
    # the server says it drops events, within a bound, rather than a count that may fall short.
    server = start_unread("--format", "jsonl", "serve", "udp", "--port", "0")
    assert server.proc.stderr is not None
    early = b""
    sent = 0
    try:
        deadline = time.monotonic() + 30
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while b"events are dropped" not in early and time.monotonic() < deadline and sent < 1_000_000:
                for _ in range(200):
                    s.sendto(b"x" * 64, ("127.0.0.1", server.port))
                sent += 200
                time.sleep(0.001)  # stay under the server's receive buffer
                if select.select([server.proc.stderr], [], [], 0)[0]:
                    early += os.read(server.proc.stderr.fileno(), 65536)
        code, elapsed, err = stop_timed(server)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate()
    err = early.decode(errors="replace") + err
    record_property("result", f"{sent} datagrams; SIGTERM to exit {elapsed:.2f} s; stderr: {err.strip()[-200:]}")
    assert code == 0, err
    assert elapsed < STOP_WITHIN_S
    assert err.count("events are dropped") == 1


# ----- the queue itself (a real pipe) ----------------------------------------------------------

def test_queued_writer_never_blocks_and_counts_what_it_drops() -> None:
    import os

    from netkit.io.stdout_queue import QueuedWriter

    r, w = os.pipe()
    notices: list[int] = []
    writer = QueuedWriter(w, max_bytes=10_000, on_first_drop=lambda: notices.append(1))
    try:
        line = "e" * 99 + "\n"
        t0 = time.monotonic()
        for i in range(5000):  # 500 kB into a 64 KiB pipe nobody reads, plus a 10 kB queue
            writer.write(line)
            if i % 50 == 0:
                time.sleep(0.001)  # let the thread fill the pipe
        assert time.monotonic() - t0 < 2.0  # never blocked
        assert writer.dropped > 0 and notices == [1]
        assert writer.pending_bytes <= 10_000 + len(line)
        writer.droppable = False
        writer.write("summary\n")  # queued whatever the bound
        t0 = time.monotonic()
        assert writer.close(idle_s=0.2, max_s=2.0) is False  # the reader is stalled: give up
        assert time.monotonic() - t0 < 1.0
        # The reader resumes: whole lines, in order, the summary last.
        got = b""
        while not got.endswith(b"summary\n"):
            got += os.read(r, 1 << 20)
        lines = got.decode().splitlines()
        assert lines[-1] == "summary" and set(lines[:-1]) == {line.strip()}
        assert len(lines) - 1 + writer.dropped == 5000
    finally:
        os.close(r)
        os.close(w)


def test_queued_writer_keeps_order_and_reports_a_closed_reader() -> None:
    import os

    from netkit.io.stdout_queue import QueuedWriter

    r, w = os.pipe()
    broken: list[int] = []
    writer = QueuedWriter(w, on_broken=lambda: broken.append(1))
    try:
        for i in range(1000):
            writer.write(f"{i}\n")
        assert writer.close() is True
        assert writer.dropped == 0
        os.set_blocking(r, False)
        assert os.read(r, 1 << 20).decode().split() == [str(i) for i in range(1000)]
    finally:
        os.close(r)
    writer = QueuedWriter(w, on_broken=lambda: broken.append(1))
    r2, w2 = os.pipe()
    os.close(w)
    writer.fd = w2
    os.close(r2)  # the reader went away: EPIPE (SIGPIPE is ignored by Python)
    writer.write("lost\n")
    support.wait_until(lambda: broken, timeout=5)
    assert writer.broken and writer.close() is False
    os.close(w2)


def test_reliability_server_with_stdout_and_stderr_in_one_unread_pipe() -> None:
    """``2>&1 | less`` paused: the warnings share the stalled pipe; the server still serves and stops."""
    proc = subprocess.Popen(support.netkit_cmd("--format", "jsonl", "serve", "udp", "--port", "0"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=support.clean_env())
    try:
        assert proc.stdout is not None
        port = 0
        while not port:
            m = support.READY.search(proc.stdout.readline().decode(errors="replace"))
            if m:
                port = int(m.group(2))
        # now nobody reads: events, then the drop warning, fill the one pipe
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(20_000):
                s.sendto(b"y" * 64, ("127.0.0.1", port))
                if i % 200 == 0:
                    time.sleep(0.001)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
    assert elapsed < STOP_WITHIN_S
