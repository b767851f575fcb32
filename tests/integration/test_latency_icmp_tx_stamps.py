"""``measure latency --method icmp`` timed kernel to kernel: transmit and receive stamps (root).

Both socket kinds, IPv4 and IPv6, over loopback and a veth pair: namespace A opens
``ping_group_range`` (ICMP datagram sockets), namespace B keeps the default (raw sockets, as root).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
import support

V6_A, V6_B = "2001:db8:17::1", "2001:db8:17::2"


@pytest.fixture(scope="module")
def pair() -> Iterator[support.NetnsPair]:
    with support.netns_pair(ping_group_a=True) as p:
        for ns, dev, ip in ((p.a, p.veth_a, V6_A), (p.b, p.veth_b, V6_B)):
            p.run(ns, "ip", "addr", "add", f"{ip}/64", "dev", dev, "nodad")
        yield p


def _measure(ns: str, *args: str) -> tuple[list[dict], str]:
    """netkit in namespace ``ns``: the JSON targets and stderr (-v: how each target was measured)."""
    argv = support.netkit_cmd("measure", "latency", "--method", "icmp", "-c", "50", "-i", "2ms",
                              "--samples", "-v", "--format", "json", *args)
    p = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=60,
                       env=support.clean_env(), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["targets"], p.stderr


def _assert_sane(t: dict) -> None:
    assert (t["sent"], t["received"], t["lost"]) == (50, 50, 0), t
    samples = t["samples_ms"]
    assert len(samples) == 50 and all(0 < s < 1000 for s in samples)
    assert 0 < t["rtt_ms"]["p50"] < 1.0  # loopback and veth: microseconds, far under a millisecond


@pytest.mark.parametrize(("ns_attr", "socket_kind"), [("a", "datagram"), ("b", "raw")])
def test_both_socket_kinds_use_kernel_transmit_stamps_v4_and_v6(pair: support.NetnsPair, ns_attr: str,
                                                                 socket_kind: str) -> None:
    ns = getattr(pair, ns_attr)
    peer4, peer6 = (pair.ip_b, V6_B) if ns_attr == "a" else (pair.ip_a, V6_A)
    targets, err = _measure(ns, "127.0.0.1", "::1", peer4, peer6)
    assert [t["target"] for t in targets] == ["127.0.0.1", "[::1]", peer4, f"[{peer6}]"]
    for t in targets:
        assert t["timestamps"] == "kernel-both", t
        _assert_sane(t)
    assert err.count(f"icmp {socket_kind} socket, kernel transmit and receive timestamps") == 4, err


def test_without_kernel_timestamps_the_json_says_user(pair: support.NetnsPair) -> None:
    targets, _err = _measure(pair.a, "--no-kernel-timestamps", "127.0.0.1")
    assert targets[0]["timestamps"] == "user"
    _assert_sane(targets[0])
