"""``netkit trace --pmtu`` on a namespace chain whose links shrink: 1400 bytes behind r2, 1280 behind r4.

Reported drops must be named at tracepath's hops (the line of TTL k + 1 for router k), exact to the
byte, for every method and both families, and agree with ``tracepath -n`` run beside it. With the
routers' "fragmentation needed" / "packet too big" dropped by nft (a PMTU black hole), the MTU must
still be found exactly, by search, and flagged. Needs root (skipped otherwise); one chain for the
module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import support
from netns_chain import Chain, netns_chain, tracepath_run

pytestmark = pytest.mark.root

MTUS = {2: 1400, 4: 1280}  # link 2 is behind r2, link 4 behind r4
FAMILIES = [pytest.param(4, id="v4"), pytest.param(6, id="v6")]
#: What a router in a PMTU black hole does: it drops the probe and its report never leaves.
FILTER_TOO_BIG = """
table inet pmtu_black_hole {
  chain out {
    type filter hook output priority 0;
    icmp type destination-unreachable icmp code frag-needed counter drop
    icmpv6 type packet-too-big counter drop
  }
}
"""


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    support.require_root_netns()
    support.require_tool("nft")
    with netns_chain(5, mtus=MTUS) as c:
        yield c


@pytest.fixture
def black_hole(chain: Chain) -> Iterator[Any]:
    """``black_hole(k)`` filters router k's "too big" answers until the test ends."""
    filtered: list[str] = []

    def at(k: int) -> None:
        chain.nft(chain.router(k), FILTER_TOO_BIG)
        filtered.append(chain.router(k))

    yield at
    for ns in filtered:
        chain.run(ns, "nft", "delete", "table", "inet", "pmtu_black_hole", check=False)


def pmtu_trace(chain: Chain, family: int, method: str = "udp") -> tuple[dict[str, Any], list[int | None]]:
    """``netkit --format json trace --pmtu -n -c 1`` from the client: the target's pmtu object and
    each hop's mtu."""
    result, took = chain.netkit("--format", "json", "trace", "--pmtu", "-n", "-c", "1", "--method", method,
                                chain.server_ip(family))
    assert result.exit_code == 0, result.stderr
    assert took < 10, f"--pmtu took {took:.1f} s"
    target = result.json()["targets"][0]
    assert target["reached"], target
    return target["pmtu"], [h["mtu"] for h in target["hops"]]


def reported(chain: Chain, family: int) -> list[dict[str, Any]]:
    """The drops as they must read when every router reports: tracepath's TTL (router hop + 1)."""
    return [{"ttl": hop + 1, "address": address, "mtu": mtu} for hop, address, mtu in chain.pmtu_drops(family)]


# The MTU up to each hop: links 0 and 1 carry 1500, link 2 (into hop 3) 1400, link 4 (into hop 5) 1280.
HOP_MTUS = [1500, 1500, 1400, 1400, 1280, 1280]


@pytest.mark.parametrize("method", ["udp", "icmp", "tcp"])
@pytest.mark.parametrize("family", FAMILIES)
def test_reported_drops_at_tracepaths_hops(chain: Chain, family: int, method: str) -> None:
    pmtu, hop_mtus = pmtu_trace(chain, family, method)
    assert pmtu == {"mtu": 1280, "first_mtu": 1500, "drops": reported(chain, family), "black_hole": False}
    assert hop_mtus == HOP_MTUS


@pytest.mark.parametrize("family", FAMILIES)
def test_agrees_with_tracepath(chain: Chain, family: int) -> None:
    support.require_tool("tracepath")
    tp = tracepath_run(chain, family)
    pmtu, _ = pmtu_trace(chain, family)
    assert pmtu["mtu"] == tp.pmtu == 1280
    assert [(d["ttl"], d["address"], d["mtu"]) for d in pmtu["drops"]] == tp.drops


@pytest.mark.parametrize("method", ["udp", "icmp"])
@pytest.mark.parametrize("family", FAMILIES)
def test_black_hole_in_front_of_the_small_link(chain: Chain, black_hole: Any, family: int, method: str) -> None:
    black_hole(4)
    pmtu, hop_mtus = pmtu_trace(chain, family, method)
    first, second = reported(chain, family)
    assert pmtu == {"mtu": 1280, "first_mtu": 1500, "black_hole": True,
                    "drops": [first, {"ttl": second["ttl"], "address": None, "mtu": 1280}]}
    assert hop_mtus == HOP_MTUS
    assert chain.nft_counter(chain.router(4)) > 0  # r4 did drop its reports: the hole was real


@pytest.mark.parametrize("family", FAMILIES)
def test_two_black_holes_each_exact(chain: Chain, black_hole: Any, family: int) -> None:
    # Nothing reports at all: both drops by search, 1400 searched between 1280 and 1500 in IPv6 too.
    black_hole(2)
    black_hole(4)
    pmtu, hop_mtus = pmtu_trace(chain, family)
    assert pmtu == {"mtu": 1280, "first_mtu": 1500, "black_hole": True,
                    "drops": [{"ttl": 3, "address": None, "mtu": 1400}, {"ttl": 5, "address": None, "mtu": 1280}]}
    assert hop_mtus == HOP_MTUS


@pytest.fixture(scope="module")
def limited_chain() -> Iterator[Chain]:
    """The same links with the kernel's default ICMP rate limits (1 answer a second per source after
    a burst of 6): a fast trace leaves the routers and the server with no replies to spare."""
    support.require_root_netns()
    with netns_chain(5, mtus=MTUS, icmp_ratelimit=True) as c:
        yield c


@pytest.mark.parametrize("method", ["udp", "icmp"])
def test_rate_limited_answers_are_waited_out_not_read_as_black_holes(limited_chain: Chain, method: str) -> None:
    # 10 rounds at 10 ms spend every router's Time Exceeded budget (and, for udp, the server's port
    # unreachables): the reports ("too big" is never rate-limited) still name their hops, and the
    # destination's answer to the last size is waited for.
    chain = limited_chain
    result, _ = chain.netkit("--format", "json", "trace", "--pmtu", "-n", "-c", "10", "-i", "10ms",
                             "--method", method, chain.server_ip(4))
    target = result.json()["targets"][0]
    assert target["pmtu"] == {"mtu": 1280, "first_mtu": 1500, "drops": reported(chain, 4), "black_hole": False}


@pytest.fixture
def raw_icmp(chain: Chain) -> Iterator[None]:
    """No ICMP datagram sockets for anyone in the client: root's --method icmp falls back to a raw socket."""
    before = chain.run(chain.client, "sysctl", "-n", "net.ipv4.ping_group_range").strip()
    chain.run(chain.client, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
    yield
    chain.run(chain.client, "sysctl", "-qw", f"net.ipv4.ping_group_range={before}")


@pytest.mark.parametrize("family", FAMILIES)
def test_raw_icmp_socket_reads_the_first_link_right(chain: Chain, raw_icmp: None, black_hole: Any,
                                                     family: int) -> None:
    # A raw socket's EMSGSIZE queues no MTU: the first link must not read as a black hole at hop 1.
    black_hole(4)
    pmtu, hop_mtus = pmtu_trace(chain, family, "icmp")
    first, second = reported(chain, family)
    assert pmtu == {"mtu": 1280, "first_mtu": 1500, "black_hole": True,
                    "drops": [first, {"ttl": second["ttl"], "address": None, "mtu": 1280}]}
    assert hop_mtus == HOP_MTUS


@pytest.mark.parametrize("method", ["udp", "icmp"])
def test_unprivileged(chain: Chain, method: str) -> None:
    result, _ = chain.netkit("--format", "json", "trace", "--pmtu", "-n", "-c", "1", "--method", method,
                             chain.server_ip(4), user="nobody")
    assert result.exit_code == 0, result.stderr
    assert result.json()["targets"][0]["pmtu"]["drops"] == reported(chain, 4)
