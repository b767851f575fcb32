"""``netkit serve tcp`` against a hostile client: what it can make the server spend is bounded.

Each test plays one attack of a client that speaks netkit's session header (throughput and
request sessions), against a real server subprocess, and checks the bound the server must hold:
its RSS, threads and descriptors (psutil on the server's pid), the bytes it sent (what the client
read, and the server's own summary), and its counters. Sizes are scaled for CI;
``RELIABILITY_SCALE=full`` (``bench/reliability.py``) runs the published ones (1,000 header-only
connections, 500 silent TLS connections).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator

import psutil
import pytest
import support

from netkit.core import session_header as sh
from netkit.core.request_framing import REP_HEADER, REQ_HEADER, session_preamble

FULL = os.environ.get("RELIABILITY_SCALE") == "full"
HEADER_CONNS = 1_000 if FULL else 250
SILENT_TLS_CONNS = 500 if FULL else 200
MiB = 1 << 20

Record = Callable[[str, object], None]

pytestmark = pytest.mark.usefixtures("no_socket_leak")


# ----- helpers ---------------------------------------------------------------------------------

def proc(server: support.Server) -> psutil.Process:
    return psutil.Process(server.proc.pid)


@pytest.fixture
def serve() -> Iterator[Callable[..., support.Server]]:
    """Start ``netkit --format json serve tcp --port 0 ARGS``; killed at the end if still running."""
    servers: list[support.Server] = []

    def start(*args: str) -> support.Server:
        server = support.start_netkit_server("--format", "json", "serve", "tcp", "--port", "0", *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
        server.proc.communicate(timeout=10)


def tls_client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test's own client; netkit's verification is tested elsewhere
    return ctx


def connect(port: int, tls: bool = False, rcvbuf: int | None = None) -> socket.socket:
    raw = socket.socket()
    if rcvbuf is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: fixes the window
    raw.settimeout(5)
    raw.connect(("127.0.0.1", port))
    if not tls:
        return raw
    return tls_client_context().wrap_socket(raw, server_hostname="localhost")


def read_until_closed(s: socket.socket, deadline_s: float) -> tuple[int, str]:
    """Read and drop until the peer closes; (bytes read, "eof" | "reset" | "open")."""
    s.settimeout(0.2)
    end = time.monotonic() + deadline_s
    total = 0
    while time.monotonic() < end:
        try:
            data = s.recv(1 << 20)
        except (TimeoutError, ssl.SSLWantReadError):
            continue
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return total, "reset"
        if not data:
            return total, "eof"
        total += len(data)
    return total, "open"


def request_frames(count: int, reply_len: int, body: bytes = b"") -> bytes:
    return b"".join(REQ_HEADER.pack(len(body), reply_len, seq) + body for seq in range(count))


def throughput_header(direction: int, block_size: int = 128 * 1024, duration_ms: int = 30_000) -> bytes:
    return sh.encode_header(sh.Header(direction=direction, block_size=block_size, duration_ms=duration_ms))


def peak(sample: Callable[[], float], seconds: float) -> float:
    """The largest of ``sample()`` taken every 50 ms for ``seconds``."""
    best = sample()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
        best = max(best, sample())
    return best


# ----- 1. request sessions: replies only within the output budget ------------------------------

def test_reliability_request_session_max_bytes(serve, record_property: Record) -> None:
    """1,237 bytes asking for 100 replies of 16 MiB: the session ends with at most --max-bytes sent."""
    # --max-request 16M lets every frame through, so --max-bytes is the bound under test.
    server = serve("--max-bytes", "1M", "--max-request", "16M", "--idle-timeout", "0")
    attack = session_preamble() + request_frames(100, 16 * MiB)
    assert len(attack) == 1_237
    t0 = time.monotonic()
    with connect(server.port) as s:
        s.sendall(attack)
        got, how = read_until_closed(s, 10)
    elapsed = time.monotonic() - t0
    summary = support.stop_summary(server)
    record_property("held", "serve tcp --max-bytes 1M --max-request 16M")
    record_property("injected", "1,237-byte request session asking for 100 replies of 16 MiB each")
    record_property("result", f"client read {got:,} bytes ({how}) in {elapsed:.2f}s; server bytes out "
                              f"{summary['bytes_out']:,}")
    assert how in ("eof", "reset"), how
    assert got <= MiB - len(attack), f"read {got:,} bytes, over --max-bytes 1M"
    assert got > MiB // 2  # the replies that fit were sent
    assert summary["bytes_in"] + summary["bytes_out"] <= MiB
    assert summary["limits_hit"]["max_bytes"] == 1


def test_reliability_request_session_amplification(serve, record_property: Record) -> None:
    """Without --max-bytes, a request session's bytes out stay under the README's fixed multiple of bytes in."""
    server = serve("--idle-timeout", "0")
    # Tiny requests each asking for the largest reply the server grants (--max-request, 1 MiB).
    attack = session_preamble() + request_frames(200, MiB)
    with connect(server.port) as s:
        s.sendall(attack)
        got, how = read_until_closed(s, 10)
    summary = support.stop_summary(server)
    bound = 256 * len(attack) + MiB + 8 + 8  # README: out <= 256 x in + --max-request + headers
    record_property("held", "serve tcp (defaults: --max-request 1M, amplification 256x)")
    record_property("injected", f"{len(attack):,}-byte request session asking for 200 replies of 1 MiB")
    record_property("result", f"client read {got:,} bytes ({how}); bound 256 x in + 1 MiB = {bound:,}")
    assert how in ("eof", "reset"), how
    assert got <= bound, f"read {got:,} bytes for {len(attack):,} in"
    assert summary["limits_hit"].get("amplification", 0) >= 1, summary


def test_reliability_request_session_tls_non_reader(serve, record_property: Record) -> None:
    """Over TLS, requests for big replies from a client that never reads: server memory stays flat."""
    server = serve("--tls", "--idle-timeout", "0")
    rss0 = support.server_rss_mb(server)
    socks = []
    for _ in range(4):
        s = connect(server.port, tls=True, rcvbuf=64 * 1024)
        s.sendall(session_preamble() + request_frames(2_000, MiB))  # 24 kB in, 2 GB asked
        socks.append(s)
    rss1 = peak(lambda: support.server_rss_mb(server), 2.0)
    for s in socks:
        s.close()
    support.wait_until(lambda: len(proc(server).net_connections()) <= 1, timeout=10)
    rss2 = support.server_rss_mb(server)
    record_property("held", "serve tcp --tls")
    record_property("injected", "4 TLS request sessions asking 2,000 replies of 1 MiB each, never reading")
    record_property("result", f"server RSS {rss0:.0f} -> peak {rss1:.0f} -> {rss2:.0f} MB after they left")
    assert rss1 - rss0 < 64, f"RSS {rss0:.0f} -> {rss1:.0f} MB"
    assert rss2 - rss0 < 64


def test_reliability_request_session_unfinished_frames(serve, record_property: Record) -> None:
    """Frames announced large and never finished are not buffered; frames over --max-request are refused."""
    server = serve("--idle-timeout", "0")
    rss0 = support.server_rss_mb(server)
    socks = []
    for _ in range(20):
        s = connect(server.port)
        s.sendall(session_preamble() + REQ_HEADER.pack(MiB, 16, 0) + bytes(MiB - 1))  # one byte short
        socks.append(s)
    rss1 = peak(lambda: support.server_rss_mb(server), 1.0)
    with connect(server.port) as s:  # announced over --max-request: closed at once
        s.sendall(session_preamble() + REQ_HEADER.pack(16 * MiB, 16, 0))
        got, how = read_until_closed(s, 5)
    for s in socks:  # finishing the frame still gets its reply: the server skipped, not dropped, the body
        s.sendall(b"\x00")
    replies = 0
    for s in socks:
        s.settimeout(5)
        data = b""
        while len(data) < sh.ACK_LEN + REP_HEADER.size + 16:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        replies += len(data) == sh.ACK_LEN + REP_HEADER.size + 16
        s.close()
    summary = support.stop_summary(server)
    record_property("held", "serve tcp (default --max-request 1M)")
    record_property("injected", "20 request sessions each holding a 1 MiB frame one byte short; one 16 MiB frame")
    record_property("result", f"server RSS {rss0:.0f} -> {rss1:.0f} MB; the 16 MiB frame closed ({how}); "
                              f"{replies}/20 finished frames answered")
    assert rss1 - rss0 < 16, f"RSS {rss0:.0f} -> {rss1:.0f} MB: unfinished frames are buffered"
    assert how in ("eof", "reset") and got <= sh.ACK_LEN
    assert replies == 20
    assert summary["limits_hit"]["max_request"] == 1 and summary["errors"] == 0  # a limit, not an error


# ----- 2. throughput source over TLS: the client's block size does not size the server's buffers

def test_reliability_reverse_tls_block_size(serve, record_property: Record) -> None:
    """A reverse session announcing a 4 GiB block, over TLS, never reading: memory flat, idle timeout fires."""
    server = serve("--tls", "--idle-timeout", "1s")
    rss0 = support.server_rss_mb(server)
    socks = []
    for _ in range(4):
        s = connect(server.port, tls=True, rcvbuf=64 * 1024)
        s.sendall(throughput_header(sh.SOURCE, block_size=0xFFFFFFFF))
        s.sendall(sh.GO)
        socks.append(s)
    t0 = time.monotonic()
    rss1 = peak(lambda: support.server_rss_mb(server), 1.5)
    support.wait_until(lambda: len(proc(server).net_connections()) <= 1, timeout=10)
    closed_after = time.monotonic() - t0
    for s in socks:
        s.close()
    summary = support.stop_summary(server)
    record_property("held", "serve tcp --tls --idle-timeout 1s")
    record_property("injected", "4 reverse throughput sessions announcing a 4 GiB block, never reading")
    record_property("result", f"server RSS {rss0:.0f} -> peak {rss1:.0f} MB; closed by the idle timeout "
                              f"after {closed_after:.1f}s")
    assert rss1 - rss0 < 64, f"RSS {rss0:.0f} -> {rss1:.0f} MB"
    assert closed_after < 8
    assert summary["limits_hit"]["idle_timeout"] >= 4


def test_idle_tls_close_is_a_limit_not_an_error(serve) -> None:
    """The server closes idle TLS peers that never answer close_notify: each counts once, as
    idle_timeout, not also in errors (its own 2 s shutdown bound is not the peer's failure); a
    handshake that never comes still counts in errors."""
    server = serve("--tls", "--idle-timeout", "1s")
    idle = [connect(server.port, tls=True, rcvbuf=4096) for _ in range(3)]
    for s in idle:
        s.sendall(b"hi")
    silent = connect(server.port)  # never starts the handshake
    support.wait_until(lambda: len(proc(server).net_connections()) <= 1, timeout=15)
    for s in [*idle, silent]:
        s.close()
    summary = support.stop_summary(server)
    # The silent one is ended by the handshake bound, not the idle timeout it cannot act on.
    assert summary["limits_hit"]["idle_timeout"] == 3, summary
    assert summary["tls_handshake_failed"] == 1, summary
    assert summary["errors"] == 1, summary


# ----- 3. header-only connections: kilobytes each, no thread each --------------------------------

def test_reliability_header_only_connections(serve, record_property: Record) -> None:
    """HEADER_CONNS connections that send a session header (and a byte) and then nothing."""
    soft, hard = __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)
    if min(soft, hard) < HEADER_CONNS + 100:
        try:
            __import__("resource").setrlimit(__import__("resource").RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pytest.skip("RLIMIT_NOFILE too low")
    server = serve("--max-conns", "0", "--idle-timeout", "0")
    p = proc(server)
    rss0, threads0 = support.server_rss_mb(server), p.num_threads()
    headers = [
        throughput_header(sh.SINK) + b"\x00",  # a sink that sent one byte of data
        throughput_header(sh.SINK),
        throughput_header(sh.SOURCE),  # a source that never says GO
        session_preamble(),  # a request session that never asks
    ]
    socks = []
    for i in range(HEADER_CONNS):
        s = connect(server.port)
        s.sendall(headers[i % len(headers)])
        socks.append(s)
    support.wait_until(lambda: len(p.net_connections()) >= HEADER_CONNS, timeout=20)
    time.sleep(0.3)  # let every header reach its session
    rss1 = peak(lambda: support.server_rss_mb(server), 0.5)
    threads1 = p.num_threads()
    for s in socks:
        s.close()
    support.wait_until(lambda: len(p.net_connections()) <= 1, timeout=20)
    threads2 = p.num_threads()
    per_conn_kib = (rss1 - rss0) * 1024 / HEADER_CONNS
    record_property("held", f"serve tcp --max-conns 0, {HEADER_CONNS:,} connections")
    record_property("injected", "session headers (sink with one byte, sink, source without GO, requests), then silence")
    record_property("result", f"server RSS {rss0:.0f} -> {rss1:.0f} MB ({per_conn_kib:.1f} KiB per connection); "
                              f"threads {threads0} -> {threads1} -> {threads2}")
    assert rss1 < 150, f"RSS {rss1:.0f} MB"
    assert per_conn_kib < 64, f"{per_conn_kib:.0f} KiB per connection"
    assert threads1 < 20, f"{threads1} threads"


# ----- 6 and 10. TLS: limits at accept, handshake bounded and counted ------------------------------

def test_reliability_tls_silent_connections_max_conns(serve, record_property: Record) -> None:
    """SILENT_TLS_CONNS connections that never start TLS against --max-conns 5: about 5 descriptors held."""
    server = serve("--tls", "--max-conns", "5", "--idle-timeout", "0")
    p = proc(server)
    fds0 = p.num_fds()
    socks = []
    for _ in range(SILENT_TLS_CONNS):
        try:
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        except OSError:
            pass
    time.sleep(0.5)  # every connection is accepted by now (the backlog is 1,024)
    fds1 = peak(lambda: p.num_fds(), 1.0)
    t0 = time.monotonic()
    support.wait_until(lambda: p.num_fds() <= fds0, timeout=15)  # the 5 admitted: handshake timeout
    released = time.monotonic() - t0
    for s in socks:
        s.close()
    summary = support.stop_summary(server)
    record_property("held", "serve tcp --tls --max-conns 5")
    record_property("injected", f"{SILENT_TLS_CONNS} connections that never send a ClientHello")
    record_property("result", f"server descriptors {fds0} -> peak {fds1} -> {fds0} after {released:.1f}s; "
                              f"max_conns refusals {summary['limits_hit']['max_conns']}, "
                              f"failed handshakes {summary.get('tls_handshake_failed')}")
    assert fds1 - fds0 <= 8, f"descriptors {fds0} -> {fds1}"
    assert released < 12
    assert summary["limits_hit"]["max_conns"] >= SILENT_TLS_CONNS - 10
    assert summary["tls_handshake_failed"] >= 5  # the admitted ones timed out in the handshake


def test_reliability_tls_per_source_rate_at_accept(serve, record_property: Record) -> None:
    """The per-source rate is applied at accept too, before TLS: refused connections hold no descriptor."""
    server = serve("--tls", "--max-conns", "0", "--idle-timeout", "0", "--max-pps-per-source", "2")
    p = proc(server)
    fds0 = p.num_fds()
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(SILENT_TLS_CONNS)]
    time.sleep(0.5)
    fds1 = peak(lambda: p.num_fds(), 0.5)
    for s in socks:
        s.close()
    summary = support.stop_summary(server)
    refused = summary["limits_hit"]["rate_limited"]
    record_property("held", "serve tcp --tls --max-pps-per-source 2")
    record_property("injected", f"{SILENT_TLS_CONNS} connections at once from one address, never sending")
    record_property("result", f"{refused} refused at accept (rate_limited); server descriptors {fds0} -> peak {fds1}")
    assert refused >= SILENT_TLS_CONNS - 10
    assert fds1 - fds0 <= 10, f"descriptors {fds0} -> {fds1}"


def test_reliability_tls_failed_handshakes_counted(serve, record_property: Record) -> None:
    """Plaintext and aborted handshakes are counted in errors and tls_handshake_failed, with an event each."""
    server = support.start_netkit_server("--format", "jsonl", "serve", "tcp", "--port", "0", "--tls")
    try:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                read_until_closed(s, 5)
        with connect(server.port, tls=True) as s:  # a real client is still served
            s.sendall(b"tls echo\n")
            assert s.recv(100) == b"tls echo\n"
        code, out, err = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate(timeout=10)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    summary = events[-1]
    failed = [e for e in events if e["event"] == "close" and e.get("reason") == "tls-handshake"]
    record_property("held", "serve tcp --tls")
    record_property("injected", "5 plaintext HTTP requests")
    record_property("result", f"errors {summary['errors']}, tls_handshake_failed "
                              f"{summary.get('tls_handshake_failed')}, {len(failed)} close events 'tls-handshake'")
    assert summary["tls_handshake_failed"] == 5
    assert summary["errors"] >= 5
    assert len(failed) == 5
    assert summary["connections"] == 6


# ----- 8. the sink stops at --max-bytes ---------------------------------------------------------

def test_reliability_sink_max_bytes_exact(serve, record_property: Record) -> None:
    """A throughput sink sending 200 MiB against --max-bytes 10M: the server reads 10 MiB (+ one byte)."""
    server = serve("--max-bytes", "10M", "--idle-timeout", "0")
    block = bytes(MiB)
    sent = 0
    with connect(server.port) as s:
        s.sendall(throughput_header(sh.SINK))
        try:
            while sent < 200 * MiB:
                s.sendall(block)
                sent += len(block)
        except OSError:
            pass
    summary = support.stop_summary(server)
    total = summary["bytes_in"] + summary["bytes_out"]
    record_property("held", "serve tcp --max-bytes 10M")
    record_property("injected", "a throughput sink session sending up to 200 MiB")
    record_property("result", f"client sent {sent:,} bytes before the close; server counted {total:,} in + out "
                              f"(limit {10 * MiB:,})")
    assert summary["limits_hit"]["max_bytes"] == 1
    assert total <= 10 * MiB + 1, f"{total:,} bytes"


# ----- 3b. idle streams cannot hold the receive pool -------------------------------------------

def test_reliability_idle_sinks_release_the_pool(serve, record_property: Record) -> None:
    """Sinks that send a byte and stop give their pool thread back within about a second: a real
    stream that comes later is read by a pool thread (its CPU time shows on a thread other than the main one)."""
    server = serve("--idle-timeout", "0")
    p = proc(server)
    idle = []
    for _ in range(8):  # twice the pool
        s = connect(server.port)
        s.sendall(throughput_header(sh.SINK) + b"\x00")
        idle.append(s)
    time.sleep(2.0)  # 5 ticks of 0.2 s without a byte: parked
    before = {t.id: t.user_time + t.system_time for t in p.threads()}
    r = support.run_netkit(["--format", "json", "measure", "throughput", server.addr, "-t", "1"], timeout=30)
    after = {t.id: t.user_time + t.system_time for t in p.threads()}
    threads = p.num_threads()
    for s in idle:
        s.close()
    pool_cpu = max((v - before.get(k, 0.0) for k, v in after.items() if k != server.proc.pid), default=0.0)
    main_cpu = after.get(server.proc.pid, 0.0) - before.get(server.proc.pid, 0.0)
    rate = r.json()["summary"]["received_bits_per_second"] / 1e9 if r.exit_code == 0 else 0.0
    record_property("held", "serve tcp, receive pool of 4 threads")
    record_property("injected", "8 sink sessions that send one byte and stop, then a 1 s throughput test")
    record_property("result", f"{rate:.1f} Gbit/s; busiest pool thread {pool_cpu:.2f} s CPU, main thread "
                              f"{main_cpu:.2f} s; {threads} threads")
    assert r.exit_code == 0, r.stderr
    assert pool_cpu > main_cpu, "the stream was read on the event loop: idle sinks held the pool"
    assert threads < 20
