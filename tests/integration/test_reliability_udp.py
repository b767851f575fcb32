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
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
import support

from netkit.core import keyed, limits, packet

NS = 1_000_000_000
FULL = os.environ.get("RELIABILITY_SCALE") == "full"
FLOOD_S = 10.0 if FULL else 1.5
Record = Callable[[str, object], None]
pytestmark = pytest.mark.usefixtures("no_socket_leak")


@pytest.fixture
def reflector() -> Iterator[support.Server]:
    with support.netkit_server("--format", "json", "serve", "udp", "--mode", "echo", "--port", "0") as server:
        yield server


def probe_roundtrip(port: int, session: int, seqs: range, timeout: float = 1.0,
                    tries: int = 3) -> dict[int, packet.ProbePacket]:
    """Send valid probes and collect the reflected ones (each probe retried up to ``tries`` times)."""
    got: dict[int, packet.ProbePacket] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for seq in seqs:
            for _ in range(tries):
                s.sendto(packet.encode(packet.ProbePacket(session, seq, time.perf_counter_ns(), size=64)),
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
    good = packet.encode(packet.ProbePacket(1234, 1, 99, size=64))
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
        buf = bytearray(packet.encode(packet.ProbePacket(0, 0, 0, size=64)))
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
            spoofer.sendto(packet.encode(packet.ProbePacket(session, seq, 0, size=64)), ("127.0.0.1", reflector.port))
    got = probe_roundtrip(reflector.port, session, range(5))
    record_property("held", "one real session")
    record_property("injected", "50 probes with the same session id from another socket")
    record_property("result", f"real session's counts {[got[i].refl_count for i in sorted(got)]}")
    assert [got[i].refl_count for i in range(5)] == [1, 2, 3, 4, 5]


def _flood(port: int, k: int, stop: Any, sent: Any) -> None:
    """One flooding process: random and probe-shaped datagrams, as fast as the socket takes them."""
    payloads = [os.urandom(64), packet.encode(packet.ProbePacket(k, 0, 0, size=1200)), os.urandom(1400)]
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


# ----- loops and reflection: what the reflector never answers ---------------------------------

def spoof_udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
    """Send one UDP datagram with a forged source port (raw socket; the kernel fills the IPv4
    header, and on loopback its source address is 127.0.0.1: forge ``src`` ports only)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    try:
        header = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0)  # checksum 0: none (IPv4)
        raw.sendto(header + payload, (dst[0], 0))
    finally:
        raw.close()


def require_raw() -> None:
    if not support.is_root():
        pytest.skip("forging a source port needs a raw socket (root)")


def echo_server(*extra: str) -> support.Server:
    return support.start_netkit_server("--format", "json", "serve", "udp", "--mode", "echo", "--port", "0",
                                       *extra)


def cpu_s(server: support.Server) -> float:
    t = psutil.Process(server.proc.pid).cpu_times()
    return float(t.user + t.system)


def wait_idle(*servers: support.Server, window_s: float = 0.3, timeout: float = 10.0) -> None:
    """Until the servers together spend under 5% of a core over ``window_s`` (a loop spends 100%)."""
    state = {"t": time.monotonic(), "cpu": sum(cpu_s(s) for s in servers)}

    def idle() -> bool:
        now, cpu = time.monotonic(), sum(cpu_s(s) for s in servers)
        if now - state["t"] < window_s:
            return False
        busy = (cpu - state["cpu"]) / (now - state["t"])
        state.update(t=now, cpu=cpu)
        return busy < 0.05

    support.wait_until(idle, timeout=timeout, interval=0.05)


def keyed_query(key_text: str) -> bytes:
    key = keyed.derive_key(key_text)
    q = bytearray(keyed.KEYED_MIN_SIZE)
    session = keyed.new_session_id(time.time_ns(), random.getrandbits(32))
    packet.encode_into(q, session, 0, 1, flags=packet.FLAG_QUERY)
    keyed.sign_probe_into(key, q)
    return bytes(q)


PAYLOADS = {
    "plain": b"one spoofed datagram",
    "probe": packet.encode(packet.ProbePacket(77, 0, 1, size=64)),
    # truncated, REFLECTED already set: not a probe, so it comes back verbatim, flag and all
    "malformed-probe": packet.encode(packet.ProbePacket(77, 0, 1, flags=packet.FLAG_REFLECTED, size=64))[:40],
    "keyed-query": b"",  # built per run (the session id carries the time)
}


@pytest.mark.root
@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_reliability_udp_spoofed_from_itself_is_never_answered(kind: str, record_property: Record) -> None:
    """Source = destination = the reflector: it would answer itself forever (100% CPU)."""
    require_raw()
    extra = ("--key", "loop-test") if kind == "keyed-query" else ()
    server = echo_server(*extra)
    try:
        payload = keyed_query("loop-test") if kind == "keyed-query" else PAYLOADS[kind]
        spoof_udp(("127.0.0.1", server.port), ("127.0.0.1", server.port), payload)
        wait_idle(server)
        code, out, err = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate()
    summary = json.loads(out)
    record_property("injected", f"one {kind} datagram from the reflector's own address and port")
    record_property("result", f"{summary['datagrams']} in, {summary['datagrams_out']} out")
    assert code == 0, err
    assert summary["datagrams"] == 1 and summary["datagrams_out"] == 0
    assert summary["reflector"]["dropped_self"] == 1


@pytest.mark.root
@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_reliability_udp_two_reflectors_pointed_at_each_other_stop(kind: str, record_property: Record) -> None:
    """A datagram spoofed from reflector B to reflector A: they stop bouncing it."""
    require_raw()
    extra = ("--key", "loop-test") if kind == "keyed-query" else ()
    a = echo_server(*extra)
    b = echo_server(*extra)
    try:
        payload = keyed_query("loop-test") if kind == "keyed-query" else PAYLOADS[kind]
        spoof_udp(("127.0.0.1", b.port), ("127.0.0.1", a.port), payload)
        wait_idle(a, b)
        summaries = [json.loads(s.stop()[1]) for s in (a, b)]
    finally:
        for s in (a, b):
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.communicate()
    sent = sum(s["datagrams_out"] for s in summaries)
    record_property("injected", f"one {kind} datagram spoofed from one reflector to another")
    record_property("result", f"{sent} replies in all, then quiet")
    # A probe (or query) comes back marked as a reply, which the other side never answers; a
    # datagram echoed verbatim is answered at most REPEAT_MAX times by each side.
    assert sent <= (1 if kind in ("probe", "keyed-query") else 2 * limits.REPEAT_MAX)
    assert sum(s["datagrams"] for s in summaries) <= sent + 1


def test_reliability_udp_replayed_keyed_query_is_not_answered() -> None:
    """A recorded keyed count query: answered once; a replay, now or after the window, is not."""
    key = "replay-test"
    with support.netkit_server("--format", "json", "serve", "udp", "--mode", "echo", "--port", "0",
                               "--key", key) as server:
        probe = bytearray(keyed.KEYED_MIN_SIZE)
        query = bytearray(keyed_query(key))
        session = packet.peek_seq(query)[0]  # type: ignore[index]
        packet.encode_into(probe, session, 0, 1)
        keyed.sign_probe_into(keyed.derive_key(key), probe)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            s.sendto(probe, ("127.0.0.1", server.port))
            assert packet.decode(s.recv(2048)).refl_count == 1
            s.sendto(query, ("127.0.0.1", server.port))
            assert packet.decode(s.recv(2048)).refl_count == 1  # the real query
            s.settimeout(0.3)
            for _ in range(3):
                s.sendto(query, ("127.0.0.1", server.port))  # the recorded one, replayed
                with pytest.raises(TimeoutError):
                    s.recv(2048)
        code, out, _ = server.stop()
    summary = json.loads(out)
    assert code == 0 and summary["reflector"]["replayed"] == 3


def test_reliability_udp_replayed_keyed_query_after_the_window() -> None:
    """The recorded attack (a query replayed every 20 s through t+380 s), on the guard's clocks."""
    from netkit.core.guard import Guard, GuardedReflector
    from netkit.io.servers.reflector import Reflector

    key = keyed.derive_key("window-test")
    start_wall = 1_900_000_000 * NS
    clock = {"wall": start_wall}
    guard = Guard(limits.Limits(), key, wall_clock=lambda: clock["wall"])
    reflector = GuardedReflector(guard, Reflector())
    session = keyed.new_session_id(start_wall, 12345)
    probe, query = bytearray(keyed.KEYED_MIN_SIZE), bytearray(keyed.KEYED_MIN_SIZE)
    packet.encode_into(probe, session, 0, 1)
    packet.encode_into(query, session, 0, 1, flags=packet.FLAG_QUERY)
    keyed.sign_probe_into(key, probe)
    keyed.sign_probe_into(key, query)
    addr = ("127.0.0.1", 40000)
    assert reflector.reflect(bytes(probe), addr, 0) is not None
    assert reflector.reflect(bytes(query), addr, 1) is not None
    answered = []
    for t_s in range(20, 1300, 20):  # far past 2 x the 5-minute window
        clock["wall"] = start_wall + t_s * NS
        if reflector.reflect(bytes(query), addr, t_s * NS) is not None:
            answered.append(t_s)
    assert answered == []
    assert not guard.sessions.known(session)  # the replays did not keep it alive


def test_reliability_udp_failed_send_is_not_counted_as_sent() -> None:
    """A reply the kernel refused (sendto raised) is an error, never in datagrams_out."""
    from netkit.io.servers.reflector_server import ReflectorServer

    server = ReflectorServer("127.0.0.1", 0)
    real = server.sock

    class Refusing:  # the bound socket, with every second sendto refused by the "kernel"
        def __init__(self) -> None:
            self.calls = 0

        def recvfrom_into(self, buf: bytearray) -> tuple[int, Any]:
            return real.recvfrom_into(buf)

        def sendto(self, data: bytes, addr: Any) -> int:
            self.calls += 1
            if self.calls % 2 == 0:
                raise BlockingIOError(11, "Resource temporarily unavailable")
            return real.sendto(data, addr)

    server.sock = Refusing()  # type: ignore[assignment]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            for seq in range(10):
                c.sendto(packet.encode(packet.ProbePacket(5, seq, 0, size=100)), real.getsockname())
            support.wait_until(lambda: (server._on_readable(), server.datagrams_in)[1] >= 10, timeout=5)
    finally:
        server.sock = real
        server.close()
    assert server.datagrams_in == 10
    assert server.datagrams_out == 5 and server.bytes_out == 500 and server.send_errors == 5
