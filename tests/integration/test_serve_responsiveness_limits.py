"""``netkit serve responsiveness`` holds its own caps against clients that never read.

The server runs as a user runs it (a subprocess, jsonl events on stdout, a 1 s idle timeout and a
3 s connection lifetime) so its resident memory can be watched:

- sixteen clients ask for /large and never read (HTTP/1.1 and HTTP/2 prior knowledge, small
  receive buffers), and one more asks on 50 streams at once with the largest windows and frames:
  the server's memory grows by a bounded amount (its write buffers pause at their high-water
  mark), each is cut at the idle timeout, and the server goes on serving;
- one client that reads /large all along is cut at the lifetime cap (with a GOAWAY over HTTP/2).
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import support

N_STALLED = 16


def _stalled_h1(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /large HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return s


def _h2c(port: int, path: str, rcvbuf: int | None = None, streams: int = 1,
         ) -> tuple[socket.socket, h2.connection.H2Connection]:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1,
                       h2.settings.SettingCodes.MAX_FRAME_SIZE: 2**24 - 1})
    c.increment_flow_control_window(2**31 - 1 - 65535)
    for sid in range(1, 2 * streams, 2):
        c.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x")],
                       end_stream=True)
    s.sendall(c.data_to_send())
    return s, c


def _reader(port: int, result: dict[str, Any]) -> None:
    """Read /large over h2c until the server ends the connection; note what ended it and when."""
    s, c = _h2c(port, "/large")
    t0 = time.monotonic()
    s.settimeout(10)
    got = 0
    try:
        while True:
            data = s.recv(1 << 20)
            if not data:
                break
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    got += len(ev.data)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    result["goaway"] = True
            out = c.data_to_send()
            if out:
                s.sendall(out)
    except OSError:
        pass
    finally:
        s.close()
    result["seconds"] = time.monotonic() - t0
    result["bytes"] = got


def test_stalled_readers_are_cut_memory_stays_bounded_and_a_reader_at_the_lifetime_cap() -> None:
    with support.netkit_server("serve", "responsiveness", "--no-tls", "--port", "0", "--idle-timeout", "1s",
                               "--max-duration", "3s", "--format", "jsonl") as srv:
        assert srv.proc.stdout is not None
        events: list[dict[str, Any]] = []

        def collect() -> None:
            assert srv.proc.stdout is not None
            for line in srv.proc.stdout:
                events.append(json.loads(line))

        collector = threading.Thread(target=collect, daemon=True)
        collector.start()
        rss0 = support.server_rss_mb(srv)
        reader: dict[str, Any] = {}
        rt = threading.Thread(target=_reader, args=(srv.port, reader), daemon=True)
        rt.start()
        stalled: list[socket.socket] = []
        for i in range(N_STALLED):
            stalled.append(_stalled_h1(srv.port) if i % 2 else _h2c(srv.port, "/large", rcvbuf=4096)[0])
        # One more that opens 50 /large streams with the largest windows and frames h2 allows:
        # the server still queues no more than its own bound (paused, never cut for its buffer).
        stalled.append(_h2c(srv.port, "/large", rcvbuf=4096, streams=50)[0])
        peak = rss0

        def all_cut() -> bool:
            nonlocal peak
            peak = max(peak, support.server_rss_mb(srv))
            return sum(1 for e in events if e.get("reason") == "idle-timeout") >= N_STALLED + 1

        support.wait_until(all_cut, timeout=6, interval=0.05)
        for s in stalled:
            s.close()
        assert peak - rss0 < 24, f"server memory grew {peak - rss0:.1f} MiB for {N_STALLED} stalled clients"
        rt.join(timeout=8)
        assert not rt.is_alive()
        # The reader was cut at the lifetime cap, told by a GOAWAY, after moving real data.
        assert 2.5 <= reader["seconds"] <= 5.0 and reader.get("goaway") and reader["bytes"] > 10 * 1024 * 1024
        # Still serving.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\nx")
        # Stopped here, not by srv.stop(): the collector alone reads stdout, to its end.
        srv.proc.send_signal(signal.SIGINT)
        code = srv.proc.wait(timeout=10)
        collector.join(timeout=5)
        assert srv.proc.stderr is not None
        err = srv.proc.stderr.read().decode()
    assert code == 0 and "Traceback" not in err
    closes = [e for e in events if e["event"] == "close"]
    idle = [e for e in closes if e["reason"] == "idle-timeout"]
    assert {e["protocol"] for e in idle} == {"http/1.1", "h2c"}
    assert any(e["reason"] == "max-duration" and e["protocol"] == "h2c" for e in closes)
    summary = events[-1]
    assert summary["event"] == "summary"
    assert summary["limits_hit"]["idle_timeout"] >= N_STALLED + 1 and summary["limits_hit"]["max_duration"] >= 1
    assert summary["limits_hit"]["write_buffer"] == 0
