"""The prober against real peers on loopback: listeners, refusals, TLS, banners, UDP."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import support

from netkit.core.backoff import Backoff
from netkit.core.probe_models import ProbeState
from netkit.core.targets import Target
from netkit.io.measure.probe import ProbeOptions, TargetProber, is_self_connect, probe_many

MS = 1_000_000


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def listener() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1024)  # never accepted: room for every probe's connection
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@contextmanager
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connects are refused, and nobody else can take it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@contextmanager
def tool(argv: list[str], port: int, udp: bool = False) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not udp:
            def listening() -> bool:
                return f":{port:04X} 00000000:0000 0A" in Path("/proc/net/tcp").read_text()
        else:
            def listening() -> bool:
                return f":{port:04X} 00000000:0000 07" in Path("/proc/net/udp").read_text()
        support.wait_until(listening, timeout=5)
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_open_and_refused_in_input_order(no_socket_leak: None) -> None:
    with listener() as up, closed_port() as down:
        targets = [Target("127.0.0.1", down), Target("127.0.0.1", up), Target("localhost", up)]
        res = run(probe_many(targets, ProbeOptions(timeout_s=1)))
    assert [r.target for r in res] == [str(t) for t in targets]
    assert [r.state for r in res] == [ProbeState.CLOSED, ProbeState.OPEN, ProbeState.OPEN]
    assert res[0].error == "connection refused" and res[0].connect_ms is None
    assert res[1].connect_ms is not None and res[1].connect_ms < 1000 and res[1].attempts == 1
    assert res[1].resolve_ms is None  # an IP literal is not looked up
    assert res[2].resolve_ms is not None and res[2].address == "127.0.0.1"


def test_retries_succeed_when_the_server_comes_up_late(no_socket_leak: None) -> None:
    """The listener starts 1.5 s in (from a timer thread); retries with backoff reach it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    started = threading.Event()

    def start() -> None:
        sock.listen(8)
        started.set()

    timer = threading.Timer(1.5, start)
    timer.start()
    try:
        opts = ProbeOptions(timeout_s=1, retries=30, backoff=Backoff(100 * MS, 1.5, 300 * MS), deadline_s=10)
        res = run(probe_many([Target("127.0.0.1", port)], opts))[0]
    finally:
        timer.cancel()
        sock.close()
    assert started.is_set()
    assert res.state is ProbeState.OPEN
    assert res.attempts > 2
    assert res.elapsed_ms >= 1400
    # Each failed attempt is instant, so attempts follow the schedule: 0, .1, .25, .475, .775, 1.075, 1.375, 1.675
    assert res.attempts <= 9


def test_retries_stop_at_the_deadline() -> None:
    with closed_port() as port:
        opts = ProbeOptions(timeout_s=1, retries=100, backoff=Backoff(100 * MS, 1.0), deadline_s=0.55)
        t0 = time.monotonic()
        res = run(probe_many([Target("127.0.0.1", port)], opts))[0]
        took = time.monotonic() - t0
    assert res.state is ProbeState.CLOSED
    # 0, .1, .2, .3, .4, .5 on an ideal clock (exact in the unit tests); the loop's own latency
    # may push the last one past the deadline, which must then not be made.
    assert 4 <= res.attempts <= 6
    assert res.elapsed_ms < 550 + 100  # the last attempt starts before the deadline; a refusal is instant
    assert took < 1.5


def test_dns_error_without_network() -> None:
    # An IPv4 literal asked for as IPv6 fails inside getaddrinfo: no query leaves the machine.
    res = run(probe_many([Target("127.0.0.1", 80)], ProbeOptions(family=socket.AF_INET6)))[0]
    assert res.state is ProbeState.DNS_ERROR and res.address is None and "not resolved" in (res.error or "")


def test_self_connect_is_detected() -> None:
    """A socket bound to P connecting to P lands on itself (TCP simultaneous open)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        s.settimeout(2)
        s.connect(s.getsockname())
        assert is_self_connect(s)
    finally:
        s.close()
    with listener() as port:
        c = socket.create_connection(("127.0.0.1", port), timeout=2)
        try:
            assert not is_self_connect(c)
        finally:
            c.close()


@contextmanager
def tls_server(tmp: Path) -> Iterator[tuple[int, Path]]:
    """A small asyncio TLS server (netkit's ephemeral certificate) in a thread."""
    from netkit.io.tls import server_context

    cert = tmp / "cert.pem"
    tls = server_context(host="127.0.0.1", keep_cert_at=cert)
    ready = threading.Event()
    box: dict[str, object] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"hello over tls\n")
            await writer.drain()
            await reader.read(100)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls.context)
        box["port"] = server.sockets[0].getsockname()[1]
        box["stop"] = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        await box["stop"].wait()  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()

    th = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    th.start()
    assert ready.wait(10)
    try:
        yield int(box["port"]), cert  # type: ignore[call-overload]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
        th.join(10)


def test_tls_against_our_own_server(tmp_path: Path) -> None:
    import re


    with tls_server(tmp_path) as (port, cert):
        t = [Target("127.0.0.1", port)]
        ok = run(probe_many(t, ProbeOptions(tls=True, tls_cafile=str(cert),
                                            expect=re.compile("^hello"))))[0]
        unverified = run(probe_many(t, ProbeOptions(tls=True)))[0]
        expiring = run(probe_many(t, ProbeOptions(tls=True, tls_cafile=str(cert),
                                                  min_cert_days=2)))[0]
    assert ok.state is ProbeState.OPEN, ok.error
    assert ok.tls is not None and ok.tls.verified
    assert ok.tls.protocol in ("TLSv1.2", "TLSv1.3") and ok.tls.cipher
    assert "netkit ephemeral" in (ok.tls.subject or "") and ok.tls.issuer == ok.tls.subject
    assert 0.9 < (ok.tls.days_left or 0) <= 1.0
    assert unverified.state is ProbeState.TLS_ERROR and "verification failed" in (unverified.error or "")
    assert expiring.state is ProbeState.TLS_ERROR and "expires in" in (expiring.error or "")
    assert expiring.tls is not None  # what was seen is still reported


def test_tls_against_netkit_serve_tls() -> None:
    import re


    with support.netkit_server("serve", "tcp", "--tls", "--port", "0") as server:
        m = re.search(r"fingerprint ([0-9A-F:]{95})", server.ready_line)
        res = run(probe_many([Target(server.host, server.port)], ProbeOptions(
            tls=True, tls_insecure=True, send=b"echo me\n", expect=re.compile("^echo me"))))[0]
    assert res.state is ProbeState.OPEN, res.error
    assert res.tls is not None and res.tls.protocol in ("TLSv1.2", "TLSv1.3")
    if m:  # the server prints its certificate's fingerprint: the probe saw the same certificate
        assert res.tls.fingerprint_sha256 == m.group(1)


def test_tls_against_ncat_ssl() -> None:
    support.require_tool("ncat")

    port = free_port()
    with tool(["ncat", "--ssl", "-l", "-k", "127.0.0.1", str(port)], port):
        t = [Target("127.0.0.1", port)]
        ok = run(probe_many(t, ProbeOptions(tls=True, tls_insecure=True)))[0]
        strict = run(probe_many(t, ProbeOptions(tls=True)))[0]
    assert ok.state is ProbeState.OPEN and ok.tls is not None and not ok.tls.verified
    assert ok.tls.days_left is not None and ok.tls.days_left > 1
    assert strict.state is ProbeState.TLS_ERROR


def test_tls_against_a_plain_listener_is_a_tls_error() -> None:
    support.require_tool("ncat")

    port = free_port()
    with tool(["ncat", "-l", "-k", "127.0.0.1", str(port), "--sh-exec", "echo SSH-2.0-test"], port):
        res = run(probe_many([Target("127.0.0.1", port)],
                             ProbeOptions(timeout_s=2, tls=True, tls_insecure=True)))[0]
    assert res.state is ProbeState.TLS_ERROR and res.connect_ms is not None


def test_banner_match_and_mismatch_against_ncat() -> None:
    import re

    support.require_tool("ncat")
    port = free_port()
    with tool(["ncat", "-l", "-k", "127.0.0.1", str(port), "--sh-exec", "echo SSH-2.0-test"], port):
        t = [Target("127.0.0.1", port)]
        good = run(probe_many(t, ProbeOptions(expect=re.compile("^SSH-"))))[0]
        bad = run(probe_many(t, ProbeOptions(timeout_s=1, expect=re.compile("^HTTP/"))))[0]
    assert good.state is ProbeState.OPEN
    assert bad.state is ProbeState.MISMATCH and "SSH-2.0-test" in (bad.error or "")


def test_send_and_expect_a_reply_from_socat_echo() -> None:
    import re

    support.require_tool("socat")
    port = free_port()
    with tool(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", "PIPE"], port):
        res = run(probe_many([Target("127.0.0.1", port)],
                             ProbeOptions(send=b"PING 42\n", expect=re.compile(r"^PING \d+"))))[0]
    assert res.state is ProbeState.OPEN


def test_udp_echo_closed_and_silent() -> None:
    support.require_tool("socat")
    port = free_port(socket.SOCK_DGRAM)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: the kernel answers with ICMP port unreachable
    try:
        with tool(["socat", f"UDP4-RECVFROM:{port},bind=127.0.0.1,fork", "PIPE"], port, udp=True):
            targets = [Target("127.0.0.1", port), Target("127.0.0.1", closed_port),
                       Target("127.0.0.1", silent.getsockname()[1])]
            res = run(probe_many(targets, ProbeOptions(udp=True, timeout_s=0.5)))
    finally:
        silent.close()
    assert [r.state for r in res] == [ProbeState.OPEN, ProbeState.CLOSED, ProbeState.OPEN_FILTERED]
    assert res[0].connect_ms is not None
    assert "unreachable" in (res[1].error or "")


def test_small_concurrency_keeps_input_order() -> None:
    with listener() as up, closed_port() as down:
        targets = [Target("127.0.0.1", up if i % 3 == 0 else down) for i in range(200)]
        opts = ProbeOptions(concurrency=7)
        res = run(probe_many(targets, opts, prober=TargetProber(opts)))
    assert [r.state is ProbeState.OPEN for r in res] == [i % 3 == 0 for i in range(200)]


@pytest.mark.root
@pytest.mark.parametrize("engine", ["async", "scan"])
def test_blackholed_port_times_out_within_the_deadline(engine: str) -> None:
    """In a namespace of our own, nft drops SYNs to one port: state timeout, bounded by --deadline."""
    support.require_root_netns()
    support.require_tool("nft")
    script = (
        "ip link set lo up && "
        "nft add table inet nkprobe && "
        "nft add chain inet nkprobe out '{ type filter hook output priority 0; }' && "
        "nft add rule inet nkprobe out tcp dport 9 drop && "
        "ip route add unreachable 192.0.2.0/24 && "
        'exec "$0" -m netkit probe 127.0.0.1:9 192.0.2.1:80 --timeout 0.4s --retries 10 --backoff 0.1s '
        f"--deadline 1.5s --format json --engine {engine}"
    )
    import json
    import sys

    t0 = time.monotonic()
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script, sys.executable], capture_output=True,
                          timeout=30, env=support.clean_env())
    took = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    blackholed, unroutable = doc["targets"]
    assert blackholed["state"] == "timeout" and blackholed["attempts"] >= 2
    assert blackholed["elapsed_ms"] <= 1500 + 250  # the deadline, plus timer latency on a busy machine
    assert unroutable["state"] == "unreachable"
    assert took < 1.5 + 4.0  # the deadline plus start-up (generous: CI machines are shared)
