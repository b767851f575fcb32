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
