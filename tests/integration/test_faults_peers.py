"""Hostile and broken peers on loopback: resets, more bytes than asked, garbage for a netkit header.

Every client and meter must end with one clear line and a meaningful exit status, within a bound,
never with a traceback. The peers here are small in-process servers (threads) that misbehave on
purpose; netkit runs as a real subprocess.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable

import pytest
import support

from netkit.core import packet

Record = Callable[[str, object], None]
pytestmark = pytest.mark.usefixtures("no_socket_leak")


def require_built(*command: str) -> None:
    """Skip while a command is still the placeholder that says "not built yet"."""
    r = support.run_netkit([*command, "--help"], timeout=30)
    if "not built yet" in (r.stdout + r.stderr).lower():
        pytest.skip(f"`netkit {' '.join(command)}` is not built yet (placeholder)")


def assert_clean_failure(r: support.CliResult, codes: tuple[int, ...] = (1,)) -> str:
    """The exit status is one of ``codes`` and stderr is short, human, without a traceback."""
    assert r.exit_code in codes, (r.exit_code, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert "internal error" not in r.stderr, r.stderr
    return r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""


tcp_peer = support.tcp_peer
udp_peer = support.udp_peer


def reset_after_first_read(c: socket.socket) -> None:
    c.recv(65536)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def echo_double(c: socket.socket) -> None:
    """Answers every read with twice the bytes (more than asked)."""
    while True:
        data = c.recv(65536)
        if not data:
            return
        c.sendall(data + data)


def garbage_forever(c: socket.socket) -> None:
    """Answers anything with a stream of random bytes, bounded at 8 MiB."""
    c.recv(65536)
    for _ in range(128):
        c.sendall(os.urandom(65536))


def garbage_short(c: socket.socket) -> None:
    c.recv(65536)
    c.sendall(os.urandom(40))
    time.sleep(0.5)


def timed(args: list[str], timeout: float = 60) -> tuple[support.CliResult, float]:
    t0 = time.monotonic()
    r = support.run_netkit(args, timeout=timeout)
    return r, time.monotonic() - t0


# ----- tcp-echo latency ------------------------------------------------------------------------

def test_faults_latency_tcp_echo_peer_resets(record_property: Record) -> None:
    with tcp_peer(reset_after_first_read) as port:
        r, took = timed(["measure", "latency", "--method", "tcp-echo", "-c", "5", "-i", "50ms", "-W", "500ms",
                         f"127.0.0.1:{port}"])
    line = assert_clean_failure(r)
    record_property("held", "measure latency --method tcp-echo -c 5")
    record_property("injected", "peer resets after the first request")
    record_property("result", f"exit {r.exit_code} in {took:.1f}s: {line[:90]}")
    assert took < 15


def test_faults_latency_tcp_echo_peer_sends_more(record_property: Record) -> None:
    with tcp_peer(echo_double) as port:
        r, took = timed(["--format", "json", "measure", "latency", "--method", "tcp-echo", "-c", "5", "-i", "20ms",
                         "-W", "500ms", f"127.0.0.1:{port}"])
    assert r.exit_code in (0, 1), r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    t = r.json()["targets"][0]
    record_property("held", "measure latency --method tcp-echo -c 5")
    record_property("injected", "peer answers each request with twice the bytes")
    record_property("result", f"exit {r.exit_code} in {took:.1f}s; sent {t['sent']} received {t['received']}")
    assert t["sent"] == 5 and t["received"] <= 5
    assert took < 15


def test_faults_latency_tcp_echo_peer_garbage(record_property: Record) -> None:
    with tcp_peer(garbage_forever) as port:
        r, took = timed(["measure", "latency", "--method", "tcp-echo", "-c", "3", "-i", "20ms", "-W", "500ms",
                         f"127.0.0.1:{port}"])
    assert r.exit_code in (0, 1), r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    record_property("held", "measure latency --method tcp-echo -c 3")
    record_property("injected", "peer answers with 8 MiB of random bytes")
    record_property("result", f"exit {r.exit_code} in {took:.1f}s, no hang")
    assert took < 15


# ----- udp latency and loss ---------------------------------------------------------------------

def test_faults_latency_udp_garbage_replies(record_property: Record) -> None:
    """A UDP peer that answers each probe with random bytes: no reply counts, exit 1."""
    with udp_peer(lambda d: os.urandom(len(d))) as port:
        r, took = timed(["--format", "json", "measure", "latency", "--method", "udp", "-c", "5", "-i", "20ms",
                         "-W", "300ms", f"127.0.0.1:{port}"])
    assert_clean_failure(r)
    t = r.json()["targets"][0]
    record_property("held", "measure latency --method udp -c 5")
    record_property("injected", "random bytes in answer to every probe")
    record_property("result", f"exit 1 in {took:.1f}s; received {t['received']} of {t['sent']}")
    assert t["received"] == 0
    assert took < 15


def test_faults_latency_udp_forged_probes(record_property: Record) -> None:
    """Replies that are valid probes of another session, or with far-away sequence numbers."""
    def forge(d: bytes) -> bytes | None:
        p, _ = packet.try_decode(d)
        if p is None:
            return None
        return packet.encode(packet.ProbePacket(p.session ^ 1, p.seq + 10**9, p.client_send_ns, size=len(d)))

    with udp_peer(forge) as port:
        r, took = timed(["--format", "json", "measure", "latency", "--method", "udp", "-c", "5", "-i", "20ms",
                         "-W", "300ms", f"127.0.0.1:{port}"])
    assert_clean_failure(r)
    assert took < 15
    t = r.json()["targets"][0]
    record_property("held", "measure latency --method udp -c 5")
    record_property("injected", "replies forged with another session id and sequence +1e9")
    record_property("result", f"exit 1; received {t['received']}, duplicates {t['duplicates']}")
    assert t["received"] == 0 and t["duplicates"] == 0


def test_faults_loss_against_garbage_reflector(record_property: Record) -> None:
    with udp_peer(lambda d: b"\x1b[31m" + os.urandom(20)) as port:
        r, took = timed(["--format", "json", "measure", "loss", "--rate", "200", "--duration", "500ms",
                         "-W", "300ms", f"127.0.0.1:{port}"])
    assert_clean_failure(r)
    t = r.json()["targets"][0]
    record_property("held", "measure loss --rate 200 --duration 500ms")
    record_property("injected", "reflector answering escape codes and random bytes")
    record_property("result", f"exit 1 in {took:.1f}s; received {t['received']} of {t['sent']}")
    assert t["received"] == 0
    assert took < 15


# ----- send and probe ---------------------------------------------------------------------------

def test_faults_send_peer_resets(record_property: Record) -> None:
    with tcp_peer(reset_after_first_read) as port:
        r, took = timed(["send", "tcp", "--wait", "1s", f"127.0.0.1:{port}", "hello"])
    line = assert_clean_failure(r, (0, 1))
    record_property("held", "send tcp")
    record_property("injected", "peer resets after reading the message")
    record_property("result", f"exit {r.exit_code} in {took:.1f}s: {line[:90] or '(nothing on stderr)'}")
    assert took < 10
    assert "reset" in r.stderr.lower(), "a reset must be reported, not taken for a normal end"


def test_faults_send_peer_floods_reply(record_property: Record) -> None:
    """A peer that answers with far more than asked: bytes are copied through, then the peer ends."""
    with tcp_peer(garbage_forever) as port:
        r = support.run_netkit(["--format", "json", "send", "tcp", "--wait", "1s", f"127.0.0.1:{port}", "x"],
                               timeout=60)
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    record_property("held", "send tcp --format json")
    record_property("injected", "8 MiB random reply")
    record_property("result", f"received_bytes {doc['received_bytes']:,}; reply escaped: "
                              f"{chr(27) not in doc['reply']}")
    assert doc["received_bytes"] == 8 * 2**20
    assert "\x1b" not in (doc["reply"] or "")


def test_faults_probe_expect_peer_resets(record_property: Record) -> None:
    with tcp_peer(reset_after_first_read) as port:
        r, took = timed(["--format", "json", "probe", "--send", "hi", "--expect", "^OK", "--timeout", "1s",
                         f"127.0.0.1:{port}"])
    assert_clean_failure(r)
    assert took < 10
    t = r.json()["targets"][0]
    record_property("held", "probe --send hi --expect ^OK")
    record_property("injected", "peer resets instead of answering")
    record_property("result", f"state {t['state']}, error {t['error']!r}")
    assert t["state"] != "open"


# ----- throughput against things that are not netkit -------------------------------------------

def test_faults_throughput_garbage_to_header(record_property: Record) -> None:
    """Answering the netkit stream header with garbage: a clear error or a sender-side fallback."""
    require_built("measure", "throughput")
    with tcp_peer(garbage_short) as port:
        r, took = timed(["measure", "throughput", "--duration", "1s", f"127.0.0.1:{port}"])
    assert r.exit_code in (0, 1), (r.exit_code, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    record_property("held", "measure throughput --duration 1s")
    record_property("injected", "40 random bytes in answer to the netkit header")
    record_property("result", f"exit {r.exit_code} in {took:.1f}s")
    assert took < 15


def test_faults_throughput_peer_resets(record_property: Record) -> None:
    require_built("measure", "throughput")
    with tcp_peer(reset_after_first_read) as port:
        r, took = timed(["measure", "throughput", "--duration", "1s", f"127.0.0.1:{port}"])
    assert_clean_failure(r)
    record_property("held", "measure throughput --duration 1s")
    record_property("injected", "peer resets after the header")
    record_property("result", f"exit {r.exit_code} in {took:.1f}s")
    assert took < 15


def test_faults_throughput_reverse_peer_floods_garbage(record_property: Record) -> None:
    """--reverse against a peer that answers the header with a flood of random bytes: bounded, no crash."""
    require_built("measure", "throughput")
    with tcp_peer(garbage_forever) as port:
        r, took = timed(["measure", "throughput", "--reverse", "--duration", "1s", f"127.0.0.1:{port}"])
    assert r.exit_code in (0, 1), (r.exit_code, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    last = r.stderr.strip().splitlines()[-1][:90] if r.stderr.strip() else "-"
    record_property("held", "measure throughput --reverse --duration 1s")
    record_property("injected", "8 MiB of random bytes in answer to the netkit header")
    record_property("result", f"exit {r.exit_code} in {took:.1f}s: {last}")
    assert took < 15
