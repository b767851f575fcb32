"""Keys and limits on real servers over loopback: keyed sessions, no amplification, enforced limits."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any

import support

from netkit.core import keyed, packet
from netkit.io.servers.server_guard import WRONG_KEY_MESSAGE, new_keyed_session

KEY_TEXT = "keyed-servers test key"
KEY = keyed.derive_key(KEY_TEXT)


def _summary(stdout: str) -> dict[str, Any]:
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return next(e for e in events if e["event"] == "summary")


def _udp(bind: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind, 0))
    s.settimeout(0.3)
    return s


def _probe(session: int, seq: int, key: keyed.Key | None = KEY, size: int = 100, flags: int = 0) -> bytes:
    buf = bytearray(size)
    packet.encode_into(buf, session, seq, time.perf_counter_ns(), flags=flags)
    if key is not None:
        keyed.sign_probe_into(key, buf)
    return bytes(buf)


def _answered(sock: socket.socket, addr: tuple[str, int], data: bytes) -> bytes | None:
    sock.sendto(data, addr)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return None


def _drain(sock: socket.socket, wait: float = 0.3) -> list[int]:
    """Sizes of every datagram that arrives until the socket stays quiet for ``wait`` s."""
    sizes = []
    sock.settimeout(wait)
    while True:
        try:
            sizes.append(len(sock.recv(65536)))
        except TimeoutError:
            return sizes


# ----- UDP ---------------------------------------------------------------------------------------

def test_keyed_udp_answers_only_valid_fresh_unreplayed_probes() -> None:
    with support.netkit_server("--format", "jsonl", "serve", "udp", "--mode", "echo", "--port", "0",
                               "--key", KEY_TEXT) as srv:
        addr = (srv.host, srv.port)
        s = _udp()
        try:
            s1 = new_keyed_session()
            good = _probe(s1, 0)
            reply = _answered(s, addr, good)
            assert reply is not None and len(reply) == len(good) and keyed.verify_probe(KEY, reply)
            assert packet.decode(reply).refl_count == 1
            recorded = _probe(s1, 1)
            assert _answered(s, addr, recorded) is not None
            # unkeyed, wrong key, one bit flipped, plain echo: no reply at all
            assert _answered(s, addr, _probe(s1, 2, key=None)) is None
            assert _answered(s, addr, _probe(s1, 3, key=keyed.derive_key("wrong"))) is None
            flipped = bytearray(_probe(s1, 4))
            flipped[17] ^= 0x04
            assert _answered(s, addr, bytes(flipped)) is None
            assert _answered(s, addr, b"hello") is None
            # a new session, then the recorded packet of the earlier one replayed: rejected
            s2 = new_keyed_session()
            assert _answered(s, addr, _probe(s2, 0)) is not None
            assert _answered(s, addr, recorded) is None
            # a packet recorded long ago (its session id is 10 minutes old): rejected
            old = keyed.new_session_id(time.time_ns() - 600 * 10**9, 1)
            assert _answered(s, addr, _probe(old, 0)) is None
        finally:
            s.close()
        code, out, _ = srv.stop()
    assert code == 0
    refl = _summary(out)["reflector"]
    assert refl["rejected_by_key"] == 6 and refl["replayed"] == 1 and refl["probes"] == 3


def test_wrong_or_missing_key_client_gets_one_clear_line() -> None:
    with support.netkit_server("serve", "udp", "--mode", "echo", "--port", "0", "--key", KEY_TEXT) as srv:
        t0 = time.monotonic()
        r = support.run_netkit(["measure", "throughput", srv.addr, "--udp", "-t", "0.5", "--key", "nope", "-q"],
                               timeout=30)
        assert r.exit_code == 1, r
        assert WRONG_KEY_MESSAGE in r.stderr and r.stderr.count("\n") == 1
        assert time.monotonic() - t0 < 10  # an answer, not a hang
        ok = support.run_netkit(["measure", "throughput", srv.addr, "--udp", "-t", "0.5", "-b", "2M",
                                 "--format", "json"], timeout=30, env=support.clean_env(NETKIT_KEY=KEY_TEXT))
        assert ok.exit_code == 0, ok
        assert ok.json()["udp"]["packets_received"] > 0
        # measure loss and measure latency --method udp: the same keyed probes, the same clear error
        loss = support.run_netkit(["measure", "loss", srv.addr, "-r", "100", "-d", "0.3s", "--key", KEY_TEXT,
                                   "--format", "json"], timeout=30)
        assert loss.exit_code == 0, loss
        tgt = loss.json()["targets"][0]
        assert tgt["received"] == tgt["sent"] > 0 and tgt["lost_forward"] == 0
        lat = support.run_netkit(["measure", "latency", "--method", "udp", "-c", "3", "-i", "20ms", srv.addr,
                                  "--format", "json"], timeout=30, env=support.clean_env(NETKIT_KEY=KEY_TEXT))
        assert lat.exit_code == 0, lat
        assert lat.json()["targets"][0]["received"] == 3
        for cmd in (["measure", "loss", srv.addr, "-r", "100", "-d", "0.3s"],
                    ["measure", "latency", "--method", "udp", "-c", "2", "-i", "20ms", "-W", "200ms", srv.addr]):
            bad = support.run_netkit([*cmd, "--key", "nope", "-q"], timeout=30)
            assert bad.exit_code == 1 and bad.stderr.strip().endswith(WRONG_KEY_MESSAGE), bad


def _mixed_flood(sock: socket.socket, addr: tuple[str, int], n: int, rnd: random.Random) -> int:
    sent = 0
    session = new_keyed_session()
    for i in range(n):
        kind = i % 6
        size = rnd.choice((1, 8, 55, 56, 57, 72, 100, 1400, 9000))
        if kind == 0:
            data = _probe(session, i, size=max(size, 72))
        elif kind == 1:
            data = _probe(session, i, key=None, size=max(size, 56))
        elif kind == 2:
            data = _probe(session, i, size=72, flags=packet.FLAG_QUERY)
        elif kind == 3:
            data = packet.MAGIC + bytes([1]) + os.urandom(size)  # malformed probe
        else:
            data = os.urandom(size)  # plain echo
        sock.sendto(data, addr)
        sent += len(data)
    return sent


def test_amplification_factor_at_most_one_over_a_mixed_flood() -> None:
    rnd = random.Random(10)
    for extra in ((), ("--key", KEY_TEXT)):
        with support.netkit_server("--format", "jsonl", "serve", "udp", "--mode", "echo", "--port", "0",
                                   *extra) as srv:
            s = _udp()
            try:
                sent = _mixed_flood(s, (srv.host, srv.port), 600, rnd)
                got = sum(_drain(s))
            finally:
                s.close()
            code, out, _ = srv.stop()
        summary = _summary(out)
        assert code == 0 and got > 0
        assert got / sent <= 1.0
        assert summary["bytes_out"] / summary["bytes_in"] <= 1.0


def test_flooding_source_is_held_to_its_rate_while_another_keeps_full_service() -> None:
    pps = 200
    with support.netkit_server("--format", "jsonl", "serve", "udp", "--mode", "echo", "--port", "0",
                               "--max-pps-per-source", str(pps)) as srv:
        addr = (srv.host, srv.port)
        flood, calm = _udp("127.0.0.1"), _udp("127.0.0.2")
        flood.setblocking(False)
        try:
            t0 = time.monotonic()
            sent_flood = calm_sent = 0
            data = _probe(1, 0, key=None, size=64)
            next_calm = t0
            # 100x the per-source limit, yet within what the server reads on a loaded 2-core
            # machine: a flood faster than the server can read fills the socket's receive
            # buffer, and the kernel then drops every source's datagrams before any limit runs.
            flood_pps = 100 * pps
            while time.monotonic() - t0 < 1.0:
                for _ in range(50 if sent_flood < (time.monotonic() - t0) * flood_pps else 0):
                    try:
                        flood.sendto(data, addr)
                        sent_flood += 1
                    except BlockingIOError:
                        pass
                if time.monotonic() >= next_calm:  # 50 packets/s from the second source
                    calm.sendto(_probe(2, calm_sent, key=None, size=64), addr)
                    calm_sent += 1
                    next_calm += 0.02
            # The server answers its backlog after the loop ends, its bucket refilling meanwhile:
            # the bound runs until the last reply, not until the last send.
            flood.setblocking(True)
            got_flood = 0
            flood.settimeout(0.3)
            last_reply = t0
            while True:
                try:
                    flood.recv(65536)
                except TimeoutError:
                    break
                got_flood += 1
                last_reply = time.monotonic()
            elapsed = max(last_reply, t0 + 1.0) - t0
            got_calm = len(_drain(calm))
        finally:
            flood.close()
            calm.close()
        _code, out, _ = srv.stop()
    assert sent_flood > 5 * pps  # it really flooded
    assert got_flood <= pps * elapsed + pps * 0.1 + 5  # rate x time + one burst (+ scheduling slack)
    assert got_flood >= pps * 0.5
    assert got_calm == calm_sent  # the second source keeps full service
    assert _summary(out)["reflector"]["rate_limited"] >= sent_flood - got_flood - 5


# ----- TCP ---------------------------------------------------------------------------------------

def test_keyed_tcp_throughput_measures_and_strangers_are_refused() -> None:
    with support.netkit_server("--format", "jsonl", "serve", "tcp", "--port", "0", "--key", KEY_TEXT) as srv:
        ok = support.run_netkit(["measure", "throughput", srv.addr, "-t", "0.5", "--key", KEY_TEXT,
                                 "--format", "json"], timeout=30)
        assert ok.exit_code == 0, ok
        assert ok.json()["counted_by"] == "receiver" and ok.json()["server"] == "netkit"
        bad = support.run_netkit(["measure", "throughput", srv.addr, "-t", "0.5", "--key", "wrong", "-q"], timeout=30)
        assert bad.exit_code == 1 and "check the key" in bad.stderr
        none = support.run_netkit(["measure", "throughput", srv.addr, "-t", "0.5", "-q"], timeout=30)
        assert none.exit_code == 1 and "--key" in none.stderr
        # a plain (unkeyed) TCP client of a keyed server gets nothing either
        with socket.create_connection((srv.host, srv.port), timeout=5) as c:
            c.sendall(b"hello\n")
            assert c.recv(100) == b""
        code, out, _ = srv.stop()
    assert code == 0
    hits = _summary(out)["limits_hit"]
    assert hits["rejected_by_key"] >= 3


def test_tcp_header_replay_is_rejected() -> None:
    from netkit.core import session_header as sh

    with support.netkit_server("--format", "jsonl", "serve", "tcp", "--port", "0", "--key", KEY_TEXT) as srv:
        head = sh.encode_header(sh.Header(flags=keyed.FLAG_KEYED, duration_ms=2000))
        wire = head + keyed.encode_header_trailer(KEY, head, time.time_ns() // 10**6, os.urandom(8))
        for expect_ack in (True, False):
            with socket.create_connection((srv.host, srv.port), timeout=5) as c:
                c.sendall(wire)
                got = c.recv(sh.ACK_LEN)
                assert (sh.decode_ack(got) is not None) == expect_ack
        _code, out, _ = srv.stop()
    assert _summary(out)["limits_hit"]["replayed"] == 1


def test_session_over_max_duration_is_cut_at_the_limit() -> None:
    with support.netkit_server("--format", "jsonl", "serve", "tcp", "--port", "0", "--max-duration", "1s") as srv:
        for extra in ((), ("--reverse",)):
            t0 = time.monotonic()
            r = support.run_netkit(["measure", "throughput", srv.addr, "-t", "5", *extra, "--format", "json"],
                                   timeout=30)
            took = time.monotonic() - t0
            assert r.exit_code == 0, r
            assert took < 3.5, took
            data = r.json()
            assert "max-duration" in (data["note"] or "")
            assert data["intervals"][-1]["end_s"] <= 1.6
        _code, out, _ = srv.stop()
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    cuts = [e for e in events if e["event"] == "limit" and e.get("reason") == "max_duration"]
    assert cuts and cuts[0]["limit"] == "over_limit"


def test_max_sessions_refuses_the_next_session() -> None:
    from netkit.core import session_header as sh

    with support.netkit_server("serve", "tcp", "--port", "0", "--max-sessions", "1") as srv:
        head = sh.encode_header(sh.Header(duration_ms=5000))
        with socket.create_connection((srv.host, srv.port), timeout=5) as first:
            first.sendall(head)
            assert sh.decode_ack(first.recv(sh.ACK_LEN)).ok
            with socket.create_connection((srv.host, srv.port), timeout=5) as second:
                second.sendall(head)
                ack = sh.decode_ack(second.recv(sh.ACK_LEN))
                assert ack is not None and ack.status == sh.STATUS_REFUSED


def test_public_bind_without_key_warns() -> None:
    with support.netkit_server("serve", "udp", "--mode", "echo", "--host", "0.0.0.0", "--port", "0") as srv:
        _, _, err = srv.stop()
    assert "without --key" in err and "reflect" in err


# ----- --deny in a private network namespace -------------------------------------------------------

_DENY_SCRIPT = textwrap.dedent('''
    import json, socket, subprocess, sys, time
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    sys.path.insert(0, sys.argv[1])
    import support
    res = {}
    with support.netkit_server("--format", "jsonl", "serve", "udp", "--mode", "echo", "--port", "0",
                               "--deny", "127.0.0.2/32") as u, \\
         support.netkit_server("--format", "jsonl", "serve", "tcp", "--port", "0",
                               "--deny", "127.0.0.2/32") as t:
        for src in ("127.0.0.1", "127.0.0.2"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((src, 0)); s.settimeout(0.5)
            s.sendto(b"ping", (u.host, u.port))
            try:
                res["udp " + src] = s.recv(100).decode()
            except TimeoutError:
                res["udp " + src] = None
            s.close()
            c = socket.create_connection((t.host, t.port), timeout=5, source_address=(src, 0))
            c.sendall(b"ping")
            try:
                res["tcp " + src] = c.recv(100).decode()
            except ConnectionResetError:
                res["tcp " + src] = ""
            c.close()
        res["udp summary"] = [json.loads(x) for x in u.stop()[1].splitlines()][-1]
        res["tcp summary"] = [json.loads(x) for x in t.stop()[1].splitlines()][-1]
    print(json.dumps(res))
''')


def test_deny_refuses_that_source_in_a_namespace() -> None:
    support.require_root_netns()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _DENY_SCRIPT, here],
                          capture_output=True, timeout=60, env=support.clean_env())
    assert proc.returncode == 0, proc.stderr.decode()
    res = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert res["udp 127.0.0.1"] == "ping" and res["udp 127.0.0.2"] is None
    assert res["tcp 127.0.0.1"] == "ping" and res["tcp 127.0.0.2"] == ""
    assert res["udp summary"]["reflector"]["denied"] == 1
    assert res["tcp summary"]["limits_hit"]["denied"] == 1


def test_keyed_requests_client_measures_and_wrong_key_gets_one_clear_line() -> None:
    """measure requests --netkit-header --key against a keyed serve tcp (the client side of the key)."""
    with support.netkit_server("serve", "tcp", "--port", "0", "--key", "sekrit") as srv:
        ok = support.run_netkit(["--format", "json", "measure", "requests", srv.addr, "--netkit-header",
                                 "--key", "sekrit", "-d", "500ms", "-c", "2"])
        assert ok.exit_code == 0, ok.stderr
        assert ok.json()["requests"] > 0
        bad = support.run_netkit(["measure", "requests", srv.addr, "--netkit-header", "--key", "wrong",
                                  "-d", "500ms", "-c", "1"], timeout=30)
        assert bad.exit_code == 1
        assert "check the key" in bad.stderr and "Traceback" not in bad.stderr
        code, out, _ = srv.stop()
    assert code == 0
    assert "rejected_by_key" in out
