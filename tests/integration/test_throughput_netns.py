"""Ground truth: a 50 Mbit/s token bucket (tc tbf) between two namespaces this test creates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import support

RATE = 50e6


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=10)


@pytest.fixture
def veth_pair():
    support.require_root_netns()
    a, b = f"nkta{os.getpid()}", f"nktb{os.getpid()}"
    va, vb = f"nkva{os.getpid() % 100000}", f"nkvb{os.getpid() % 100000}"
    try:
        sh("ip", "netns", "add", a)
        sh("ip", "netns", "add", b)
        sh("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        sh("ip", "link", "set", va, "netns", a)
        sh("ip", "link", "set", vb, "netns", b)
        sh("ip", "-n", a, "addr", "add", "198.18.231.1/24", "dev", va)
        sh("ip", "-n", b, "addr", "add", "198.18.231.2/24", "dev", vb)
        for ns, dev in ((a, va), (b, vb)):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # client -> server direction limited to 50 Mbit/s; burst covers one GSO super-packet
        sh("ip", "netns", "exec", a, "tc", "qdisc", "add", "dev", va, "root", "tbf", "rate", "50mbit",
           "burst", "64kb", "latency", "50ms")
    except subprocess.CalledProcessError as exc:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        pytest.skip(f"cannot build the namespaces: {exc.stderr.decode(errors='replace').strip()}")
    try:
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def test_tbf_50mbit_is_measured_within_10_percent(veth_pair):
    a, b = veth_pair
    env = support.clean_env()
    srv = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-m", "netkit", "serve", "tcp",
                            "--host", "198.18.231.2", "--port", "0"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        assert srv.stderr is not None
        deadline = time.monotonic() + 10
        port = None
        while port is None and time.monotonic() < deadline:
            m = support.READY.search(srv.stderr.readline().decode(errors="replace"))
            if m:
                port = int(m.group(2))
        assert port, "server did not start"
        r = subprocess.run(["ip", "netns", "exec", a, sys.executable, "-m", "netkit", "measure", "throughput",
                            f"198.18.231.2:{port}", "-t", "3s", "--format", "json"],
                           capture_output=True, timeout=30, env=env)
    finally:
        srv.terminate()
        srv.communicate(timeout=10)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    d = json.loads(r.stdout)
    assert d["counted_by"] == "receiver"
    got = d["summary"]["received_bits_per_second"]
    print(f"measured {got / 1e6:.2f} Mbit/s, sender {d['summary']['sent_bits_per_second'] / 1e6:.2f}")
    assert got == pytest.approx(RATE, rel=0.10), f"{got / 1e6:.1f} Mbit/s"


# ----- namespace pairs from support.netns_pair ---------------------------------------------------------

# A full-sized segment with TCP timestamps on a 1500-byte MTU: 1448 bytes of payload in 1514 bytes on
# the wire (Ethernet 14 + IP 20 + TCP 32 with the timestamp option), which is what tbf counts.
PAYLOAD, WIRE = 1448, 1514
TBF_BURST = 64 * 1024


def _ceiling_bps(parallel: int, seconds: float) -> float:
    """The most goodput a 50 Mbit/s token bucket lets through in ``seconds``: the rate in payload,
    plus what may pass at once (a full bucket, and each stream's first read at the server)."""
    at_once = TBF_BURST + parallel * 10 * PAYLOAD
    return RATE * PAYLOAD / WIRE + at_once * 8 / seconds


@pytest.mark.root
def test_parallel_4_never_reports_above_the_goodput_ceiling():
    with support.netns_pair() as pair:
        pair.run(pair.a, "tc", "qdisc", "add", "dev", pair.veth_a, "root", "tbf", "rate", "50mbit",
                 "burst", "64kb", "latency", "50ms")
        srv = pair.server("serve", "tcp", "--host", pair.ip_b, "--port", "0")
        try:
            r, took = pair.netkit("--format", "json", "measure", "throughput", srv.addr, "-P", "4", "-t", "5s")
        finally:
            srv.stop()
    assert r.exit_code == 0, r.stderr
    d = r.json()
    s = d["summary"]
    got = s["received_bits_per_second"]
    ceiling = _ceiling_bps(4, 5.0)
    print(f"-P 4: {got / 1e6:.3f} Mbit/s, ceiling {ceiling / 1e6:.3f}, took {took:.1f}s")
    assert got <= ceiling, f"{got / 1e6:.3f} Mbit/s > ceiling {ceiling / 1e6:.3f}"
    assert got >= 0.9 * RATE * PAYLOAD / WIRE  # and it did fill the link
    # the headline is the total over the common interval, not the sum of the per-stream rates
    longest = max(st["received_start_s"] + st["received_seconds"] for st in s["streams"])
    assert got == pytest.approx(s["received_bytes"] * 8 / longest, rel=1e-6)


DROP_DATA = """table inet nkstall {
  chain in { type filter hook input priority 0; meta l4proto tcp ip length > 1000 counter drop; }
  chain out { type filter hook output priority 0; meta l4proto tcp ip length > 1000 counter drop; }
}
"""


@pytest.mark.root
@pytest.mark.parametrize("direction", [[], ["--reverse"]], ids=["forward", "reverse"])
def test_a_path_that_drops_every_data_packet_fails_within_the_duration(direction):
    # The handshake, the 37-byte stream header and its ack pass; every full-sized data segment is
    # dropped in both directions (the server's namespace): the connection is up and nothing moves.
    with support.netns_pair() as pair:
        pair.nft(DROP_DATA)
        srv = pair.server("serve", "tcp", "--host", pair.ip_b, "--port", "0")
        try:
            r, took = pair.netkit("measure", "throughput", srv.addr, "-t", "3s", *direction, timeout=60)
        finally:
            srv.stop()
        dropped = pair.nft_dropped()
    print(f"exit {r.exit_code} after {took:.1f}s, nft dropped {dropped}: {r.stderr.strip()}")
    assert dropped > 0
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netkit: ") and "no data got through" in lines[0]
    assert "Traceback" not in r.stderr
    assert took < 3 + 6, f"took {took:.1f}s"  # -t bounds the run: the stall limit (5 s) plus start-up


@pytest.mark.root
def test_iperf3_over_a_path_that_drops_every_data_packet_fails_within_the_duration():
    support.require_tool("iperf3")
    with support.netns_pair() as pair:
        pair.nft(DROP_DATA)  # the control connection's small messages pass, the data does not
        with pair.iperf3():
            r, took = pair.netkit("measure", "throughput", f"{pair.ip_b}:5201", "--iperf3", "-t", "8s",
                                  "--connect-timeout", "1s", timeout=60)
    print(f"exit {r.exit_code} after {took:.1f}s: {r.stderr.strip()}")
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netkit: ")
    assert "no data got through" in lines[0] or "received nothing" in lines[0]
    assert took < 8 + 5, f"took {took:.1f}s"  # the stall ends it early; -t bounds it in any case


@pytest.mark.root
def test_iperf3_control_answers_honour_connect_timeout():
    # Everything after the handshake is dropped, the cookie included: iperf3 never answers, and
    # --connect-timeout is the per-answer limit the README gives (not a fixed 10 s).
    support.require_tool("iperf3")
    with support.netns_pair() as pair:
        pair.nft("""table inet nkmute {
  chain in { type filter hook input priority 0; meta l4proto tcp tcp flags & syn == 0 ip length > 52 counter drop; }
}
""")
        with pair.iperf3():
            r, took = pair.netkit("measure", "throughput", f"{pair.ip_b}:5201", "--iperf3", "-t", "5s",
                                  "--connect-timeout", "1s", timeout=60)
    assert r.exit_code == 1
    assert r.stderr.strip() == "netkit: iperf3 server did not answer within 1s"
    assert took < 4, f"took {took:.1f}s"


@pytest.mark.root
def test_bidir_with_one_direction_dropped_fails_for_that_direction():
    # each direction of --bidir is a path of its own: the dead one fails the test, named as such
    with support.netns_pair() as pair:
        pair.nft("""table inet nkhalf {
  chain in { type filter hook input priority 0; meta l4proto tcp ip length > 1000 counter drop; }
}
""")
        srv = pair.server("serve", "tcp", "--host", pair.ip_b, "--port", "0")
        try:
            r, took = pair.netkit("measure", "throughput", srv.addr, "-t", "3s", "--bidir", timeout=60)
        finally:
            srv.stop()
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines() == [
        "netkit: no data got through for 5s on the stream to the server: the path or the server stopped "
        "passing data after the connection was set up"]
    assert "[SUM recv]" in r.stdout  # the other direction was measured all along
    assert took < 3 + 6, f"took {took:.1f}s"
