"""Ground truth for loss accounting: nftables drops ~10% of one direction, netkit must agree exactly.

Two network namespaces made here, joined by a veth pair: the reflector (`netkit serve udp --mode
echo`) in one, netkit's meter in the other. An nft rule `numgen random mod 10 0 counter drop`
in the reflector's namespace drops packets on ONE direction and counts exactly what it dropped.
The measured lost count for that direction must equal the counter, the other direction zero.

The drop rules match the probes' UDP length (8 + 64 bytes): the end-of-run count query is
header-only (8 + 56 bytes), so the rule leaves it alone and the counter counts probes only.
Needs root (CI runs as root); skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import support

pytestmark = pytest.mark.root

CLIENT_IP = "198.18.77.1"
REFL_IP = "198.18.77.2"
PROBE_UDP_LEN = 8 + 64


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


class Pair:
    def __init__(self) -> None:
        pid = os.getpid()
        self.client = f"nkc{pid}"
        self.refl = f"nkr{pid}"
        self.server: subprocess.Popen[bytes] | None = None
        self.port = 0

    def up(self) -> None:
        _sh("ip", "netns", "add", self.client)
        _sh("ip", "netns", "add", self.refl)
        va, vb = f"nkc{os.getpid()}"[:15], f"nkr{os.getpid()}"[:15]
        _sh("ip", "link", "add", va, "netns", self.client, "type", "veth", "peer", "name", vb, "netns", self.refl)
        for ns, dev, ip in ((self.client, va, CLIENT_IP), (self.refl, vb, REFL_IP)):
            _sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        cmd = ["ip", "netns", "exec", self.refl, sys.executable, "-m", "netkit", "serve", "udp", "--mode", "echo",
               "--host", REFL_IP, "--port", "0"]
        self.server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, env=support.clean_env())
        assert self.server.stderr is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = self.server.stderr.readline().decode(errors="replace")
            m = re.search(r"listening on \S+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                return
            if not line:
                break
        raise AssertionError("reflector did not start in the namespace")

    def down(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.communicate(timeout=10)
        for ns in (self.client, self.refl):
            _sh("ip", "netns", "del", ns, check=False)

    def nft(self, rule: str) -> None:
        """Replace the drop rules in the reflector's namespace with ``rule`` (chain: in or out)."""
        _sh("ip", "netns", "exec", self.refl, "nft", "delete", "table", "inet", "nkt", check=False)
        spec = ("table inet nkt {\n"
                " chain in { type filter hook input priority 0; policy accept; }\n"
                " chain out { type filter hook output priority 0; policy accept; }\n"
                "}\n" + rule + "\n")
        subprocess.run(["ip", "netns", "exec", self.refl, "nft", "-f", "-"], input=spec, text=True, check=True,
                       capture_output=True, timeout=30)

    def dropped(self) -> int:
        out = _sh("ip", "netns", "exec", self.refl, "nft", "-j", "list", "table", "inet", "nkt").stdout
        total = 0
        for item in json.loads(out)["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    total += expr["counter"]["packets"]
        return total

    def netkit(self, *args: str, sysctl_ping: bool = False) -> dict:
        return self.netkit_full(*args, sysctl_ping=sysctl_ping)[0]

    def netkit_full(self, *args: str, sysctl_ping: bool = False) -> tuple[dict, str]:
        if sysctl_ping:
            _sh("ip", "netns", "exec", self.client, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
        else:
            _sh("ip", "netns", "exec", self.client, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
        cmd = ["ip", "netns", "exec", self.client, sys.executable, "-m", "netkit", *args, "--format", "json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=support.clean_env())
        assert proc.returncode in (0, 1), proc.stderr
        return json.loads(proc.stdout), proc.stderr


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    support.require_root_netns()
    support.require_tool("nft")
    p = Pair()
    try:
        p.up()
        yield p
    finally:
        p.down()


def _rule(pair: Pair, direction: str) -> str:
    drop = f"udp length {PROBE_UDP_LEN} numgen random mod 10 0 counter drop"
    if direction == "forward":
        return f"add rule inet nkt in udp dport {pair.port} {drop}"
    return f"add rule inet nkt out udp sport {pair.port} {drop}"


@pytest.mark.parametrize("direction", ["forward", "return"])
def test_loss_matches_nft_counter(pair: Pair, direction: str) -> None:
    pair.nft(_rule(pair, direction))
    doc = pair.netkit("measure", "loss", f"{REFL_IP}:{pair.port}", "--rate", "2000", "--duration", "2s",
                      "--size", "64", "--timeout", "500ms")
    dropped = pair.dropped()
    t = doc["targets"][0]
    assert t["sent"] == 4000
    assert dropped > 200  # ~10% of 4000: the rule really dropped
    assert t["lost"] == dropped
    assert t["late"] == 0 and t["duplicates"] == 0
    if direction == "forward":
        assert (t["lost_forward"], t["lost_return"]) == (dropped, 0)
    else:
        assert (t["lost_forward"], t["lost_return"]) == (0, dropped)
    assert doc["achieved_pps"] > 1500


@pytest.mark.parametrize("direction", ["forward", "return"])
def test_latency_udp_matches_nft_counter(pair: Pair, direction: str) -> None:
    pair.nft(_rule(pair, direction))
    doc = pair.netkit("measure", "latency", "--method", "udp", f"{REFL_IP}:{pair.port}", "--count", "400",
                      "--interval", "2ms", "--timeout", "500ms", "--size", "64")
    dropped = pair.dropped()
    t = doc["targets"][0]
    assert t["sent"] == 400 and dropped > 10
    assert t["lost"] == dropped
    if direction == "forward":
        assert (t["lost_forward"], t["lost_return"]) == (dropped, 0)
    else:
        assert (t["lost_forward"], t["lost_return"]) == (0, dropped)


@pytest.mark.parametrize("socket_kind", ["raw", "datagram"])
@pytest.mark.parametrize("direction", ["forward", "return"])
def test_latency_icmp_matches_nft_counter(pair: Pair, socket_kind: str, direction: str) -> None:
    if direction == "forward":
        pair.nft("add rule inet nkt in icmp type echo-request numgen random mod 10 0 counter drop")
    else:
        pair.nft("add rule inet nkt out icmp type echo-reply numgen random mod 10 0 counter drop")
    doc, err = pair.netkit_full("measure", "latency", "--method", "icmp", REFL_IP, "--count", "400",
                                "--interval", "2ms", "--timeout", "500ms", "-v",
                                sysctl_ping=socket_kind == "datagram")
    assert f"icmp {socket_kind} socket, kernel transmit and receive timestamps" in err
    dropped = pair.dropped()
    t = doc["targets"][0]
    assert t["sent"] == 400 and dropped > 10
    assert t["lost"] == dropped
    assert t["late"] == 0 and t["duplicates"] == 0
    assert t["timestamps"] == "kernel-both"  # lost probes leave their transmit stamps unpaired, no harm
    # ICMP has no reflector count: no per-direction split.
    assert t["lost_forward"] is None and t["lost_return"] is None
