"""``netkit monitor --method udp`` against netkit's reflector behind nft loss, in a namespace of our own.

The nft rule drops every 4th latency packet (``numgen inc mod 4``) on its way to the reflector and
counts what it dropped. It matches only the latency packets (UDP length 72: 64-byte probes), not
the reachability datagram nor the reflector's count query, so with 4 packets a round each round
loses exactly one: netkit_packets_lost_total must equal the rounds, and the nft counter.
Everything (reflector, monitor, scrape) runs inside the namespace, on its loopback.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import support
from prometheus_client.parser import text_string_to_metric_families

PROBE_UDP_LENGTH = 8 + 64  # UDP header + netkit's default 64-byte probe


def ns_run(ns: str, *cmd: str, timeout: float = 30, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout,
                          env=support.clean_env(), input=input, stdin=None if input is not None else subprocess.DEVNULL)


def start_in_ns(ns: str, *args: str, timeout: float = 10.0) -> support.Server:
    """``netkit <args>`` inside ``ns``; waits for its ``listening on HOST:PORT`` line."""
    return support.start_netkit_server(*args, timeout=timeout, prefix=("ip", "netns", "exec", ns))


def scrape_in_ns(ns: str, address: str) -> dict[tuple[str, str], float]:
    code = ("import sys, urllib.request; "
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
    res = ns_run(ns, sys.executable, "-c", code, f"http://{address}/metrics")
    assert res.returncode == 0, res.stderr
    return {(s.name, s.labels.get("target", "")): s.value
            for fam in text_string_to_metric_families(res.stdout) for s in fam.samples}


def dropped(ns: str) -> int:
    res = ns_run(ns, "nft", "list", "table", "inet", "nkmon")
    m = re.search(r"counter packets (\d+)", res.stdout)
    assert m, res.stdout + res.stderr
    return int(m.group(1))


@pytest.fixture
def netns() -> Iterator[str]:
    support.require_root_netns()
    support.require_tool("nft")
    name = f"nkmon{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=10)


def test_reflector_behind_nft_loss(netns: str, tmp_path: Path) -> None:
    reflector = start_in_ns(netns, "serve", "udp", "--mode", "echo", "--port", "0")
    monitor: support.Server | None = None
    try:
        port = reflector.port
        rules = (f"table inet nkmon {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n"
                 f"  udp dport {port} udp length {PROBE_UDP_LENGTH} numgen inc mod 4 0 counter drop\n }}\n}}\n")
        res = ns_run(netns, "nft", "-f", "-", input=rules)
        assert res.returncode == 0, res.stderr
        target, closed = f"127.0.0.1:{port}", "127.0.0.1:9"  # nothing listens on 9 in a fresh namespace
        common = ["--method", "udp", "--packets", "4", "--interval", "0.8s", "--timeout", "250ms"]

        monitor = start_in_ns(netns, "monitor", target, closed, *common, "--listen", "127.0.0.1:0")
        where = f"{monitor.host}:{monitor.port}"

        def three_rounds() -> dict[tuple[str, str], float] | None:
            v = scrape_in_ns(netns, where)
            return v if v.get(("netkit_monitor_rounds_total", target), 0) >= 3 else None

        values = support.wait_until(three_rounds, timeout=15, interval=0.2)
        n = values[("netkit_monitor_rounds_total", target)]
        assert values[("netkit_probe_success", target)] == 1.0
        assert values[("netkit_packets_sent_total", target)] == 4 * n
        assert values[("netkit_packets_lost_total", target)] == n  # one in four, every round
        assert values[("netkit_rtt_seconds_count", target)] == 3 * n
        assert dropped(netns) >= n  # nft saw at least what netkit counted (a round may be in flight)
        assert values[("netkit_probe_success", closed)] == 0.0  # ICMP port unreachable
        assert values[("netkit_packets_sent_total", closed)] == 0
        code, _out, err = monitor.stop(signal.SIGTERM)
        monitor = None
        assert code == 0, err

        # Exact: a run of 3 rounds; its lost count equals what nft dropped meanwhile.
        before = dropped(netns)
        prom = tmp_path / "ns.prom"
        res = ns_run(netns, *support.netkit_cmd("monitor", target, *common, "--rounds", "3", "--textfile", str(prom),
                                                "--format", "jsonl"))
        assert res.returncode == 0, res.stderr
        nft_dropped = dropped(netns) - before
        assert nft_dropped == 3
        summary = [line for line in res.stdout.splitlines() if '"summary"' in line]
        assert summary and '"lost": 3' in summary[0] and '"sent": 12' in summary[0]
        fams = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
        assert [s.value for s in fams["netkit_packets_lost"].samples] == [float(nft_dropped)]
    finally:
        if monitor is not None:
            monitor.stop(signal.SIGKILL)
        reflector.stop(signal.SIGTERM)
