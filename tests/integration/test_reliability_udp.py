"""The UDP reflector (``netkit serve udp --mode echo``) fed malformed, spoofed and flooding traffic.

After each kind of abuse it must still answer valid probes with the reflector fields filled, and
``netkit measure latency --method udp`` against it must still succeed. ``RELIABILITY_SCALE=full``
floods for longer (``bench/reliability.py``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
import support

from netkit.core import packet

FULL = os.environ.get("RELIABILITY_SCALE") == "full"
FLOOD_S = 10.0 if FULL else 1.5
Record = Callable[[str, object], None]
pytestmark = pytest.mark.usefixtures("no_socket_leak")


@pytest.fixture
def reflector() -> Iterator[support.Server]:
    with support.netkit_server("--format", "json", "serve", "udp", "--mode", "echo", "--port", "0") as server:
        yield server


def probe_roundtrip(port: int, session: int, seqs: range, timeout: float = 1.0,
                    tries: int = 3) -> dict[int, packet.Probe]:
    """Send valid probes and collect the reflected ones (each probe retried up to ``tries`` times)."""
    got: dict[int, packet.Probe] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for seq in seqs:
            for _ in range(tries):
                s.sendto(packet.encode(packet.Probe(session, seq, time.perf_counter_ns(), size=64)),
                         ("127.0.0.1", port))
                try:
                    while True:
                        data, _ = s.recvfrom(2048)
                        p = packet.decode(data)
                        if p.session == session:
                            got[p.seq] = p
                        if p.seq == seq:
                            break
                    break
                except TimeoutError:
                    continue
    return got


def measure_ok(server: support.Server) -> dict:
    r = support.run_netkit(["--format", "json", "measure", "latency", "--method", "udp", "-c", "20", "-i", "5ms",
                            server.addr], timeout=30)
    assert r.exit_code == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r.json()["targets"][0]


def test_reliability_udp_malformed_and_truncated(reflector: support.Server, record_property: Record) -> None:
    """Random datagrams, truncated probes, wrong versions and flags: reflected verbatim or dropped."""
    rng = random.Random(7)
    good = packet.encode(packet.Probe(1234, 1, 99, size=64))
    bad: list[bytes] = [b"", b"\x00", packet.MAGIC, good[:8], good[:55], good[:4] + b"\x09" + good[5:],
                        good[:5] + b"\xff" + good[6:], good[:6] + b"\x00\x01" + good[8:]]
    bad += [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 600))) for _ in range(300)]
    bad += [good[: rng.randrange(0, 56)] for _ in range(100)]
    bad += [packet.MAGIC + bytes([packet.VERSION]) + os.urandom(rng.randrange(0, 100)) for _ in range(100)]
    verbatim = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        for d in bad:
            s.sendto(d, ("127.0.0.1", reflector.port))
            try:
                reply, _ = s.recvfrom(2048)
            except TimeoutError:
                continue
            probe, _ = packet.try_decode(d)
            if probe is None:
                assert reply == d, "a malformed datagram must come back verbatim, never rewritten"
                verbatim += 1
    got = probe_roundtrip(reflector.port, 0xC0FFEE, range(10))
    assert len(got) == 10 and all(p.reflected for p in got.values())
    assert [got[i].refl_count for i in range(10)] == list(range(1, 11))
    m = measure_ok(reflector)
    record_property("held", "reflector, then 10 valid probes and measure latency --method udp")
    record_property("injected", f"{len(bad)} malformed/truncated/random datagrams")
    record_property("result", f"{verbatim} reflected verbatim, none rewritten; valid probes answered; "
                              f"measure: {m['received']}/{m['sent']} received")
    code, out, err = reflector.stop()
    assert code == 0 and "Traceback" not in err
    summary = json.loads(out)
    assert summary["errors"] == 0


def test_reliability_udp_spoofed_sessions(reflector: support.Server, record_property: Record) -> None:
    """Probes with many random session ids: memory stays bounded; real sessions are still answered."""
    proc = psutil.Process(reflector.proc.pid)
    rss0 = proc.memory_info().rss
    n = 200_000 if FULL else 20_000
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        buf = bytearray(packet.encode(packet.Probe(0, 0, 0, size=64)))
        for i in range(n):
            packet.encode_into(buf, random.getrandbits(64), i, 0)
            try:
                s.sendto(buf, ("127.0.0.1", reflector.port))
            except BlockingIOError:
                time.sleep(0.001)
    got = probe_roundtrip(reflector.port, 0xBEEF, range(20))
    rss1 = proc.memory_info().rss
    assert len(got) == 20 and [got[i].refl_count for i in range(20)] == list(range(1, 21))
    m = measure_ok(reflector)
    record_property("held", "reflector with one real session")
    record_property("injected", f"{n:,} probes with random session ids")
    record_property("result", f"real session answered with exact counts; RSS {rss0 / 2**20:.0f} -> "
                              f"{rss1 / 2**20:.0f} MB; measure {m['received']}/{m['sent']}")
    assert (rss1 - rss0) < 64 * 2**20


def test_reliability_udp_session_spoofed_from_other_sender(reflector: support.Server,
                                                           record_property: Record) -> None:
    """A third party guessing (or sniffing) our session id must not change our session's count."""
    session = 0xABCDEF
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spoofer:
        for seq in range(100, 150):
            spoofer.sendto(packet.encode(packet.Probe(session, seq, 0, size=64)), ("127.0.0.1", reflector.port))
    got = probe_roundtrip(reflector.port, session, range(5))
    record_property("held", "one real session")
    record_property("injected", "50 probes with the same session id from another socket")
    record_property("result", f"real session's counts {[got[i].refl_count for i in sorted(got)]}")
    assert [got[i].refl_count for i in range(5)] == [1, 2, 3, 4, 5]


def _flood(port: int, k: int, stop: Any, sent: Any) -> None:
    """One flooding process: random and probe-shaped datagrams, as fast as the socket takes them."""
    payloads = [os.urandom(64), packet.encode(packet.Probe(k, 0, 0, size=1200)), os.urandom(1400)]
    n = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        i = 0
        while not stop.is_set():
            for _ in range(256):
                try:
                    s.sendto(payloads[i % 3], ("127.0.0.1", port))
                    n += 1
                except (BlockingIOError, ConnectionRefusedError):
                    pass
                i += 1
    sent.value = n


def test_reliability_udp_flood(reflector: support.Server, record_property: Record) -> None:
    """A flood at the fastest rate this test can send: valid probes are still answered."""
    ctx = multiprocessing.get_context("fork")  # separate processes: no GIL between sender and prober
    stop = ctx.Event()
    counters = [ctx.Value("q", 0) for _ in range(2)]
    procs = [ctx.Process(target=_flood, args=(reflector.port, k, stop, counters[k]), daemon=True)
             for k in range(2)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    answered = 0
    asked = 0
    try:
        while time.monotonic() - t0 < FLOOD_S:
            got = probe_roundtrip(reflector.port, 0xF100D, range(asked, asked + 5), timeout=0.2, tries=5)
            answered += len(got)
            asked += 5
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    elapsed = time.monotonic() - t0
    total = sum(c.value for c in counters)
    pps = total / elapsed
    after = probe_roundtrip(reflector.port, 0xAF7E, range(20))
    m = measure_ok(reflector)
    record_property("held", "valid probes during the flood, then 20 more and measure latency")
    record_property("injected", f"{total:,} datagrams in {elapsed:.1f}s ({pps:,.0f}/s, 2 sender processes)")
    record_property("result", f"{answered}/{asked} probes answered during the flood (5 tries each); "
                              f"20/20 after; measure {m['received']}/{m['sent']}")
    assert answered >= asked * 0.5, (answered, asked)
    assert len(after) == 20
    assert m["received"] == m["sent"]
    assert reflector.proc.poll() is None
