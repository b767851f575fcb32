"""``netkit serve tcp`` under load and abuse: nothing lost, nothing leaked, nothing hung.

Each test runs the real server as a subprocess, does one kind of harm to it, then checks that a
normal echo still succeeds and that the server's file descriptors came back to their baseline
(psutil on the server's pid). Sizes are scaled for CI; ``RELIABILITY_SCALE=full`` (set by
``bench/reliability.py``) runs the published sizes: 10,000 connections and 1 GiB.

Each test records what it held, what it injected and what it measured with ``record_property``;
``bench/reliability.py`` collects those into ``docs/reliability.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator

import psutil
import pytest
import support

FULL = os.environ.get("RELIABILITY_SCALE") == "full"
LOAD_CONNS = 10_000 if FULL else 1_000
STREAM_BYTES = (1 << 30) if FULL else (64 << 20)
ROUNDS = 3  # echoes per held connection
MiB = 1 << 20

Record = Callable[[str, object], None]


pytestmark = pytest.mark.usefixtures("no_socket_leak")


# ----- helpers ---------------------------------------------------------------------------------

def server_fds(server: support.Server) -> int:
    return psutil.Process(server.proc.pid).num_fds()


def echo_once(port: int, payload: bytes = b"hello after abuse\n", timeout: float = 5.0) -> bytes:
    """One normal client: send, half-close, read to EOF. Returns what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        got = 0
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
            got += len(data)
            if got > len(payload) + 65536:  # more than an echo can return: stop reading, keep memory bounded
                break
    return b"".join(chunks)


def assert_healthy(server: support.Server, base_fds: int) -> None:
    """The server is alive, still echoes, and holds no more descriptors than before the abuse."""
    assert server.proc.poll() is None, "server died"
    assert echo_once(server.port) == b"hello after abuse\n"
    try:
        support.wait_until(lambda: server_fds(server) <= base_fds, timeout=5.0)
    except AssertionError:
        raise AssertionError(f"server fds {server_fds(server)} > baseline {base_fds}: leaked") from None


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[support.Server, int]]]:
    """Start ``netkit --format json serve tcp --port 0 ARGS``; yield (server, baseline fds)."""
    servers: list[support.Server] = []

    def start(*args: str) -> tuple[support.Server, int]:
        server = support.start_netkit_server("--format", "json", "serve", "tcp", "--port", "0", *args)
        servers.append(server)
        if "--tls" not in args and "source" not in args:  # (source mode streams forever: no echo)
            assert echo_once(server.port) == b"hello after abuse\n"  # warm up before the baseline
        support.wait_until(lambda: server_fds(server) == server_fds(server), timeout=1)
        return server, server_fds(server)

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
        server.proc.communicate(timeout=10)


def abort(s: socket.socket) -> None:
    """Close with RST (``SO_LINGER`` 0), as a crashed or hostile peer does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def recv_until_closed(s: socket.socket, deadline_s: float) -> tuple[int, str]:
    """Read and drop until the peer closes; return (bytes read, how it ended)."""
    s.settimeout(0.2)
    end = time.monotonic() + deadline_s
    total = 0
    while time.monotonic() < end:
        try:
            data = s.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return total, "reset"
        if not data:
            return total, "eof"
        total += len(data)
    return total, "open"


# ----- load ------------------------------------------------------------------------------------

async def _hold_and_echo(port: int, n: int, holder: dict[str, object],
                         server: support.Server) -> tuple[int, int, float]:
    """Open n connections, hold them all, echo a distinct payload on each; return (ok, bad, seconds)."""
    sem = asyncio.Semaphore(256)  # connect concurrency (the listen backlog), not held concurrency
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def connect() -> None:
        async with sem:
            for attempt in range(5):
                try:
                    conns.append(await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10))
                    return
                except (OSError, asyncio.TimeoutError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.05 * (attempt + 1))

    t0 = time.perf_counter()
    await asyncio.gather(*(connect() for _ in range(n)))

    async def exchange(i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        ok = True
        for round_ in range(ROUNDS):  # several echoes per connection, each payload distinct
            payload = hashlib.sha256(f"{i}/{round_}".encode()).digest() * 32 + os.urandom(1024)  # 2 KiB
            writer.write(payload)
            await writer.drain()
            got = await asyncio.wait_for(reader.readexactly(len(payload)), 30)
            ok = ok and hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
        return ok

    try:
        results = await asyncio.gather(*(exchange(i, r, w) for i, (r, w) in enumerate(conns)))
        holder["rss"] = support.server_rss_mb(server)  # while every connection is still open
        holder["fds_held"] = server_fds(server)
    finally:
        elapsed = time.perf_counter() - t0
        for _, w in conns:
            w.close()
        await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    return sum(results), len(results) - sum(results), elapsed


def test_reliability_load_concurrent_echo(serve, record_property: Record) -> None:
    """LOAD_CONNS connections held at once, each echoing a distinct payload: zero corrupted."""
    limit = raise_nofile(2 * LOAD_CONNS + 200)
    if limit < LOAD_CONNS + 200:
        pytest.skip(f"RLIMIT_NOFILE {limit} is too low for {LOAD_CONNS} connections")
    server, base = serve("--max-conns", "0", "--idle-timeout", "0")
    rss0 = support.server_rss_mb(server)
    holder: dict[str, object] = {}

    async def main() -> None:
        holder["result"] = await _hold_and_echo(server.port, LOAD_CONNS, holder, server)

    asyncio.run(main())
    ok, bad, elapsed = holder["result"]  # type: ignore[misc]
    record_property("held", f"{LOAD_CONNS:,} concurrent TCP connections, {ROUNDS} echoes of 2 KiB each")
    record_property("injected", "-")
    record_property("result", f"{ok * ROUNDS:,} payloads SHA-256 verified, {bad} connections corrupted; server RSS "
                              f"{rss0:.0f} -> {holder['rss']:.0f} MB; {elapsed:.1f}s")
    assert bad == 0 and ok == LOAD_CONNS
    assert int(holder["fds_held"]) >= base + LOAD_CONNS * 0.99  # type: ignore[call-overload]
    assert_healthy(server, base)
    summary = support.stop_summary(server)
    assert summary["peak_concurrent"] >= LOAD_CONNS
    assert summary["errors"] == 0


def test_reliability_stream_sha256(serve, record_property: Record) -> None:
    """STREAM_BYTES through one echo connection, SHA-256 of both directions compared."""
    server, base = serve("--idle-timeout", "0")
    block = os.urandom(4 * MiB)
    sent = hashlib.sha256()
    received = hashlib.sha256()
    counts = {"sent": 0, "received": 0}
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MiB)

    def writer() -> None:
        i = 0
        while counts["sent"] < STREAM_BYTES:
            chunk = i.to_bytes(8, "big") + block[8 : min(len(block), STREAM_BYTES - counts["sent"])]
            sent.update(chunk)
            s.sendall(chunk)
            counts["sent"] += len(chunk)
            i += 1
        s.shutdown(socket.SHUT_WR)

    t0 = time.perf_counter()
    th = threading.Thread(target=writer, daemon=True)
    th.start()
    buf = bytearray(1 * MiB)
    view = memoryview(buf)
    while True:
        n = s.recv_into(buf)
        if not n:
            break
        received.update(view[:n])
        counts["received"] += n
    elapsed = time.perf_counter() - t0
    th.join(30)
    s.close()
    gbit = counts["received"] * 8 / elapsed / 1e9
    record_property("held", f"{STREAM_BYTES / MiB:,.0f} MiB through one echo connection")
    record_property("injected", "-")
    record_property("result", f"{counts['received']:,} bytes back, SHA-256 equal: "
                              f"{sent.digest() == received.digest()}; {gbit:.2f} Gbit/s each way")
    assert counts["sent"] == counts["received"] == STREAM_BYTES
    assert sent.hexdigest() == received.hexdigest()
    assert_healthy(server, base)


# ----- abuse -----------------------------------------------------------------------------------

def test_reliability_random_bytes(serve, record_property: Record) -> None:
    """Random bytes (also ones that start like a netkit session header) are echoed or dropped."""
    server, base = serve()
    payload = os.urandom(MiB)
    assert echo_once(server.port, payload, timeout=10) == payload
    bad_headers = 0
    for i in range(20):
        junk = b"\x00NKTS" + os.urandom(32 + i)  # a session-header magic with garbage after it
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            _, how = recv_until_closed(s, 5)
            bad_headers += how != "open"
    record_property("held", "1 MiB of random bytes; 20 fake session headers")
    record_property("injected", "random bytes, netkit header magic + garbage")
    record_property("result", f"random echoed intact; {bad_headers}/20 bad headers closed promptly")
    assert bad_headers == 20
    assert_healthy(server, base)


def test_reliability_idle_client_closed(serve, record_property: Record) -> None:
    """A client that connects and never sends is closed by --idle-timeout."""
    server, base = serve("--idle-timeout", "500ms")
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)]
    t0 = time.monotonic()
    results = [recv_until_closed(s, 5) for s in socks]
    elapsed = time.monotonic() - t0
    for s in socks:
        s.close()
    record_property("held", "20 silent connections, --idle-timeout 500ms")
    record_property("injected", "connect, never send")
    record_property("result", f"all closed by the server after {elapsed:.2f}s")
    assert all(how in ("eof", "reset") for _, how in results), results
    assert elapsed < 4
    assert_healthy(server, base)


def test_reliability_slow_reader_bounded(serve, record_property: Record) -> None:
    """A client that sends and never reads: the server stops reading; its memory stays bounded."""
    server, base = serve("--idle-timeout", "0")
    rss0 = support.server_rss_mb(server)
    socks = []
    pushed = 0
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.setblocking(False)
        chunk = bytes(256 * 1024)
        last_progress = time.monotonic()
        while time.monotonic() - last_progress < 0.5 and pushed < 2048 * MiB:
            try:
                n = s.send(chunk)
                pushed += n
                last_progress = time.monotonic()
            except BlockingIOError:
                time.sleep(0.01)
        socks.append(s)
    rss1 = support.server_rss_mb(server)
    record_property("held", "4 connections writing without ever reading")
    record_property("injected", "a slow (stopped) reader")
    record_property("result", f"kernel+server accepted {pushed / MiB:.1f} MiB in total, then pushed back; "
                              f"server RSS {rss0:.0f} -> {rss1:.0f} MB")
    for s in socks:
        abort(s)
    assert pushed < 256 * MiB, "the server kept reading from a client that never reads"
    assert rss1 - rss0 < 64
    assert_healthy(server, base)


def test_reliability_abortive_close_mid_transfer(serve, record_property: Record) -> None:
    """Clients that reset (SO_LINGER 0) in the middle of a transfer."""
    server, base = serve()
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            s.sendall(os.urandom(256 * 1024 if i % 2 else 100))
            if i % 3 == 0:
                s.recv(1000)
        finally:
            abort(s)
    record_property("held", "50 connections")
    record_property("injected", "RST (SO_LINGER 0) mid transfer")
    record_property("result", "server kept serving; no descriptor leaked")
    assert_healthy(server, base)
    summary = support.stop_summary(server)
    assert summary["connections"] >= 51


def test_reliability_half_closed(serve, record_property: Record) -> None:
    """Half-close in both directions: the echo is complete, the server then closes."""
    server, base = serve()
    payload = os.urandom(300_000)
    assert echo_once(server.port, payload) == payload  # write side shut first, then read to EOF
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.shutdown(socket.SHUT_WR)  # EOF before any byte
        _, how = recv_until_closed(s, 5)
    assert how == "eof"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.shutdown(socket.SHUT_RD)  # we will never read; send a little and go
        s.sendall(b"x" * 1000)
    record_property("held", "300 kB echo after SHUT_WR; EOF-only client; SHUT_RD client")
    record_property("injected", "half-closed connections")
    record_property("result", "echo complete, server closed each connection")
    assert_healthy(server, base)


def test_reliability_flood_above_max_conns(serve, record_property: Record) -> None:
    """More connections than --max-conns: the extra ones are refused or closed at once."""
    server, base = serve("--max-conns", "10", "--idle-timeout", "0")
    admitted = []
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"a%d\n" % i)
        assert s.recv(100) == b"a%d\n" % i
        admitted.append(s)
    t0 = time.monotonic()
    extra_closed = 0
    extras = []
    for _ in range(100):
        try:
            extras.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
        except OSError:
            extra_closed += 1
    for s in extras:
        _, how = recv_until_closed(s, 3)
        extra_closed += how != "open"
        s.close()
    elapsed = time.monotonic() - t0
    for i, s in enumerate(admitted):  # the admitted ones keep working
        s.sendall(b"b%d\n" % i)
        assert s.recv(100) == b"b%d\n" % i
        s.close()
    record_property("held", "--max-conns 10, 10 admitted connections")
    record_property("injected", "100 more connections")
    record_property("result", f"{extra_closed}/100 extra refused or closed in {elapsed:.2f}s; admitted kept echoing")
    assert extra_closed == 100
    assert_healthy(server, base)
    summary = support.stop_summary(server)
    assert summary["limits_hit"]["max_conns"] >= 100


def test_reliability_oversize_input(serve, record_property: Record) -> None:
    """A client sending far beyond --max-bytes is cut off; the server carries on."""
    server, base = serve("--max-bytes", "1M")
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    stop = threading.Event()

    def writer() -> None:
        try:
            for _ in range(64):  # up to 16 MiB
                if stop.is_set():
                    return
                s.sendall(bytes(256 * 1024))
        except OSError:
            pass

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    got, how = recv_until_closed(s, 10)
    stop.set()
    th.join(10)
    s.close()
    record_property("held", "--max-bytes 1M")
    record_property("injected", "16 MiB on one connection")
    record_property("result", f"cut off after {got:,} bytes echoed ({how})")
    assert how in ("eof", "reset")
    assert got <= MiB
    assert_healthy(server, base)
    summary = support.stop_summary(server)
    assert summary["limits_hit"]["max_bytes"] >= 1


def test_reliability_tls_server_sent_plaintext(serve, record_property: Record) -> None:
    """Plaintext to a TLS server: the connection ends promptly; TLS clients are still served."""
    server, base = serve("--tls")
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        _, how = recv_until_closed(s, 10)
    elapsed = time.monotonic() - t0
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test's own client; netkit's verification is tested elsewhere
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"tls echo\n")
            assert tls.recv(100) == b"tls echo\n"
    record_property("held", "serve tcp --tls")
    record_property("injected", "a plaintext HTTP request")
    record_property("result", f"closed ({how}) after {elapsed:.2f}s; TLS echo still works")
    assert how in ("eof", "reset")
    assert elapsed < 5
    support.wait_until(lambda: server_fds(server) <= base, timeout=5)
    assert server.proc.poll() is None


def test_reliability_tls_client_against_plaintext(serve, record_property: Record) -> None:
    """``send tcp --tls`` and ``probe --tls`` against a plaintext echo: a clear error, no hang."""
    server, base = serve()
    t0 = time.monotonic()
    r = support.run_netkit(["send", "tcp", "--tls", "--timeout", "2s", "--wait", "1s", server.addr, "hi"],
                           timeout=30)
    elapsed = time.monotonic() - t0
    assert r.exit_code == 1, (r.exit_code, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.strip()
    assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
    p = support.run_netkit(["--format", "json", "probe", "--tls", "--timeout", "2s", server.addr], timeout=30)
    assert p.exit_code == 1, p.stderr
    assert p.json()["targets"][0]["state"] == "tls-error"
    record_property("held", "plaintext echo server")
    record_property("injected", "TLS ClientHello from send tcp --tls and probe --tls")
    record_property("result", f"exit 1 in {elapsed:.2f}s: {r.stderr.strip().splitlines()[-1][:80]}; "
                              "probe state tls-error")
    assert elapsed < 10
    assert_healthy(server, base)


def test_reliability_tls_client_against_silent_server(record_property: Record) -> None:
    """A TCP listener that accepts and never answers the TLS handshake: ends within --timeout."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    port = lst.getsockname()[1]
    try:
        t0 = time.monotonic()
        r = support.run_netkit(["send", "tcp", "--tls", "--timeout", "1s", "--wait", "1s", f"127.0.0.1:{port}",
                                "hi"], timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        lst.close()
    record_property("held", "a listener that never speaks")
    record_property("injected", "TLS handshake with no answer")
    record_property("result", f"exit {r.exit_code} after {elapsed:.2f}s")
    assert r.exit_code == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert elapsed < 8


def test_reliability_sigint_under_load(serve, record_property: Record) -> None:
    """Ctrl-C with hundreds of open connections, some stalled mid-transfer: a prompt summary, exit 0."""
    server, base = serve("--idle-timeout", "0", "--max-conns", "0")
    socks = []
    for i in range(300):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        if i % 3 == 0:
            s.setblocking(False)
            try:
                for _ in range(64):  # fill the pipe and never read (a stalled reader)
                    s.send(bytes(64 * 1024))
            except BlockingIOError:
                pass
        socks.append(s)
    support.wait_until(lambda: server_fds(server) >= base + 300, timeout=10)  # all accepted
    t0 = time.monotonic()
    code, out, err = server.stop(timeout=15)
    took = time.monotonic() - t0
    for s in socks:
        abort(s)
    record_property("held", "300 open connections, 100 of them stalled with full buffers")
    record_property("injected", "SIGINT")
    record_property("result", f"exit {code} after {took:.2f}s with a summary")
    assert code == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["connections"] >= 300 and summary["peak_concurrent"] >= 300
    assert took < 5


def test_reliability_source_mode_reader_never_reads(serve, record_property: Record) -> None:
    """``--mode source`` writes as fast as the client reads: a client that never reads costs no memory."""
    server, base = serve("--mode", "source", "--idle-timeout", "0")
    rss0 = support.server_rss_mb(server)
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(8)]
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    # Let the server fill every socket buffer; then its memory must stop growing.
    samples = []
    for _ in range(10):
        samples.append(support.server_rss_mb(server))
        time.sleep(0.1)
    rss1 = max(samples)
    n, how = recv_until_closed(socks[0], 0.5)  # the stream is really flowing
    for s in socks:
        abort(s)
    record_property("held", "--mode source, 8 clients that never read")
    record_property("injected", "stalled readers")
    record_property("result", f"server RSS {rss0:.0f} -> {rss1:.0f} MB; a reader then got {n:,} bytes")
    assert n > 0 and how == "open"
    assert rss1 - rss0 < 64
    support.wait_until(lambda: server_fds(server) <= base, timeout=5)
    assert server.proc.poll() is None
