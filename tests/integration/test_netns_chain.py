"""The namespace chain that ``netkit trace``'s tests stand on, proved with the reference tools.

traceroute (udp, icmp, tcp; udp as nobody too), tracepath and mtr must see exactly the hops the chain
says they will (``hop_addresses()``), for IPv4 and IPv6; tracepath must find the path MTU and the
routers where it drops; the route switch must change hop k and nothing else. Needs root (skipped
otherwise); one chain per module scope, each built in about 0.1 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest
import support
from netns_chain import (
    Chain,
    ChainUnavailable,
    chain_unavailable_reason,
    netns_chain,
    nobody_python,
    parse_tracepath,
    tracepath_run,
    traceroute_hops,
)

pytestmark = pytest.mark.root

FAMILIES = [pytest.param(4, id="v4"), pytest.param(6, id="v6")]
ICMP_ECHO = """
import os, socket
s = socket.socket(socket.{af}, socket.SOCK_DGRAM, socket.{proto})
s.settimeout(5)
s.sendto(bytes([{type}, 0, 0, 0, 0, 0, 0, 1]) + b"chain", ("{addr}", 0))
data, _ = s.recvfrom(100)
print(os.getuid(), "reply" if data.endswith(b"chain") else data)
"""
MTUS = {2: 1400, 4: 1280}  # behind r2 and r4: each must say "too big" for the next link


def _require(tool: str) -> None:
    support.require_root_netns()
    support.require_tool(tool)


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    support.require_root_netns()
    with netns_chain(5) as c:
        yield c


@pytest.fixture(scope="module")
def mtu_chain() -> Iterator[Chain]:
    support.require_root_netns()
    with netns_chain(5, mtus=MTUS) as c:
        yield c


@pytest.fixture(scope="module")
def alt_chain() -> Iterator[Chain]:
    support.require_root_netns()
    with netns_chain(4, alt_router_at=2) as c:
        yield c


def test_the_address_plan(chain: Chain) -> None:
    assert chain.hop_addresses(4) == ["198.18.0.2", "198.18.1.2", "198.18.2.2", "198.18.3.2", "198.18.4.2",
                                      "198.18.5.2"]
    assert chain.hop_addresses(6) == ["2001:db8:18::2", "2001:db8:18:1::2", "2001:db8:18:2::2", "2001:db8:18:3::2",
                                      "2001:db8:18:4::2", "2001:db8:18:5::2"]
    assert chain.server_ip(4) == "198.18.5.2" and chain.server_ip(6) == "2001:db8:18:5::2"
    assert len({chain.client, chain.server, *chain.routers}) == 7 and chain.router(1) == chain.routers[0]
    # Exact ICMP: rate limits off in routers and server; ping sockets open in the client.
    for ns in (chain.router(3), chain.server):
        assert chain.run(ns, "sysctl", "-n", "net.ipv4.icmp_ratelimit", "net.ipv6.icmp.ratelimit").split() == \
            ["0", "0"]
    assert chain.run(chain.client, "sysctl", "-n", "net.ipv4.ping_group_range").split() == ["0", "2147483647"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["udp", "icmp", "tcp"])
def test_traceroute_sees_the_configured_hops(chain: Chain, family: int, method: str) -> None:
    _require("traceroute")
    assert traceroute_hops(chain, family, method) == chain.hop_addresses(family)


@pytest.mark.parametrize("family", FAMILIES)
def test_traceroute_as_nobody_sees_the_configured_hops(chain: Chain, family: int) -> None:
    _require("traceroute")
    support.require_tool("setpriv")
    assert chain.run(chain.client, "id", "-u", user="nobody").strip() == "65534"
    assert traceroute_hops(chain, family, "udp", user="nobody") == chain.hop_addresses(family)


@pytest.mark.parametrize("family", FAMILIES)
def test_nobody_pings_and_runs_netkit_in_the_client(chain: Chain, family: int) -> None:
    support.require_root_netns()
    support.require_tool("setpriv")
    # No capability at all: an echo over an ICMP datagram socket works only through ping_group_range.
    echo = ICMP_ECHO.format(af="AF_INET6" if family == 6 else "AF_INET", proto="IPPROTO_ICMPV6" if family == 6
                            else "IPPROTO_ICMP", type=128 if family == 6 else 8, addr=chain.server_ip(family))
    assert chain.run(chain.client, nobody_python(), "-c", echo, user="nobody").strip() == "65534 reply"
    result, _ = chain.netkit("--version", user="nobody")
    assert result.exit_code == 0 and result.stdout.startswith("netkit "), result.stderr
    proc = chain.popen_netkit("--version", user="nobody")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.startswith(b"netkit "), err


@pytest.mark.parametrize("family", FAMILIES)
def test_tracepath_sees_the_configured_hops_and_mtu(chain: Chain, family: int) -> None:
    _require("tracepath")
    r = tracepath_run(chain, family, user="nobody")
    assert r.hops == chain.hop_addresses(family)
    assert r.pmtu == 1500 == chain.path_mtu() and r.drops == []


# mtr (about 5 s a run) is checked once, beside netkit trace, in test_trace_chain.py.


@pytest.mark.parametrize("family", FAMILIES)
def test_tracepath_finds_each_mtu_drop_behind_its_router(mtu_chain: Chain, family: int) -> None:
    _require("tracepath")
    assert mtu_chain.pmtu_drops(family) == [(2, mtu_chain.hop_addresses(family)[1], 1400),
                                            (4, mtu_chain.hop_addresses(family)[3], 1280)]
    r = tracepath_run(mtu_chain, family)
    assert r.hops == mtu_chain.hop_addresses(family)
    assert r.pmtu == 1280 == mtu_chain.path_mtu()
    # tracepath prints the "too big" answer on the TTL after the router's own hop.
    assert [(ttl - 1, addr, mtu) for ttl, addr, mtu in r.drops] == mtu_chain.pmtu_drops(family)
    # Both ends of a link carry its MTU.
    assert "mtu 1400" in mtu_chain.run(mtu_chain.router(2), "ip", "link", "show", "to-r3")
    assert "mtu 1400" in mtu_chain.run(mtu_chain.router(3), "ip", "link", "show", "to-r2")


@pytest.mark.parametrize("family", FAMILIES)
def test_switch_route_changes_hop_k_only(alt_chain: Chain, family: int) -> None:
    _require("traceroute")
    k = alt_chain.alt_router_at
    assert k == 2
    before = alt_chain.hop_addresses(family)
    try:
        assert traceroute_hops(alt_chain, family) == before
        alt_chain.switch_route(True)
        after = alt_chain.hop_addresses(family)
        assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [k - 1]
        assert after[k - 1] == ("198.19.1.2" if family == 4 else "2001:db8:19:1::2")
        assert traceroute_hops(alt_chain, family) == after
    finally:
        alt_chain.switch_route(False)
    assert traceroute_hops(alt_chain, family) == before


def test_nft_counter_counts_what_a_router_forwards(alt_chain: Chain) -> None:
    _require("traceroute")
    support.require_tool("nft")
    r3 = alt_chain.router(3)
    alt_chain.nft(r3, "table inet probes {\n chain through {\n type filter hook forward priority 0;\n"
                      " udp dport 33434-33534 counter\n }\n}\n")
    try:
        # One probe at a time (-N 1): r3 forwards those with TTL 4 (to r4) and 5 (to the server).
        out = alt_chain.run(alt_chain.client, "traceroute", "-n", "-q1", "-N1", alt_chain.server_ip(4))
        assert len(out.splitlines()) == 1 + 5
        assert alt_chain.nft_counter(r3) == 2
    finally:
        alt_chain.run(r3, "nft", "delete", "table", "inet", "probes")


def test_kept_rate_limits_and_teardown_even_on_failure() -> None:
    support.require_root_netns()
    names: list[str] = []
    proc: subprocess.Popen[bytes] | None = None
    with pytest.raises(RuntimeError, match="boom"), netns_chain(1, icmp_ratelimit=True, ping_group=False) as c:
        names = [c.client, c.router(1), c.server]
        assert c.run(c.router(1), "sysctl", "-n", "net.ipv4.icmp_ratelimit").strip() == "1000"
        assert c.run(c.client, "sysctl", "-n", "net.ipv4.ping_group_range").split() == ["1", "0"]
        proc = subprocess.Popen(["ip", "netns", "exec", c.server, "sleep", "60"])
        server = c.server
        support.wait_until(lambda: str(proc.pid) in subprocess.run(["ip", "netns", "pids", server],
                                                                   capture_output=True, text=True).stdout)
        raise RuntimeError("boom")
    assert proc is not None
    assert proc.wait(timeout=10) == -signal.SIGKILL
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)
    assert not any(os.path.exists(f"/run/netns/{name}") for name in names)


def test_parsers_on_recorded_output() -> None:
    # The drop lines as tracepath prints them (recorded on a chain with MTUS); runs without root.
    text = """\
 1?: [LOCALHOST]                      pmtu 1500
 1:  198.18.0.2                                            0.079ms
 1:  198.18.0.2                                            0.013ms
 2:  198.18.1.2                                            0.020ms
 3:  198.18.1.2                                            0.015ms pmtu 1400
 3:  198.18.2.2                                            0.021ms
 4:  no reply
 5:  198.18.3.2                                            0.017ms pmtu 1280
 5:  198.18.4.2                                            0.024ms
 6:  198.18.5.2                                            0.028ms reached
     Resume: pmtu 1280 hops 6 back 6
"""
    r = parse_tracepath(text)
    assert r.hops == ["198.18.0.2", "198.18.1.2", "198.18.2.2", None, "198.18.4.2", "198.18.5.2"]
    assert r.pmtu == 1280 and r.drops == [(3, "198.18.1.2", 1400), (5, "198.18.3.2", 1280)]


def test_without_root_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert chain_unavailable_reason() == "needs root for network namespaces"
    with pytest.raises(ChainUnavailable, match="needs root"), netns_chain(2):
        pass
