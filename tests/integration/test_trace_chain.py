"""``netkit trace`` on a real routed path: the issue's proof, through the command line and its JSON.

Every test runs the real CLI inside a namespace chain (``tests/netns_chain.py``: client, r1..r5,
server) and checks what it reports against what the chain is known to be: the hop addresses as
configured, nft's exact drop counters, a router whose Time Exceeded is dropped, routers that keep
the kernel's ICMP rate limit, a route moved mid-run, and traceroute/tracepath/mtr in the same
namespaces. Needs root (skipped otherwise). Three chains in all, each module-scoped and built in
about 0.1 s; the tests that change a chain (nft tables, the route) undo it in ``finally``.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import support
from netns_chain import Chain, mtr_hops, netns_chain, tracepath_run, traceroute_hops

pytestmark = pytest.mark.root

ROUTERS = 5
FAMILIES = (4, 6)
METHODS = ("udp", "icmp", "tcp")
#: Probe timeout: answers here take well under a millisecond, so this only bounds a lost probe's cost.
TIMEOUT = "0.5"
RATE_LIMIT_NOTE = "limiting its ICMP replies"


# ----- chains ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    """Rate limits off (exact counts), ping sockets open in the client."""
    support.require_root_netns()
    with netns_chain(ROUTERS) as c:
        yield c


@pytest.fixture(scope="module")
def limited() -> Iterator[Chain]:
    """Routers and server keep the kernel's ICMP rate limits (1 s per peer after a burst), and the
    client's ping sockets stay closed (``ping_group_range`` "1 0"): root's icmp takes a raw socket."""
    support.require_root_netns()
    with netns_chain(ROUTERS, icmp_ratelimit=True, ping_group=False) as c:
        yield c


@pytest.fixture(scope="module")
def alt_chain() -> Iterator[Chain]:
    """r2 has a parallel router r2alt; ``switch_route`` moves the path between them."""
    support.require_root_netns()
    with netns_chain(4, alt_router_at=2) as c:
        yield c


# ----- running netkit -------------------------------------------------------------------------------
def trace(chain: Chain, *args: str, user: str | None = None, expect: int = 0) -> dict[str, Any]:
    """``netkit trace -n ARGS --format json`` in the client; the document, after checking the exit status."""
    result, _ = chain.netkit("trace", "-n", "-W", TIMEOUT, *args, "--format", "json", user=user)
    assert result.exit_code == expect, (result.exit_code, result.stderr)
    assert result.stderr == "", result.stderr
    doc: dict[str, Any] = result.json()
    return doc


def both_families(chain: Chain) -> list[str]:
    """One target per family: netkit traces several targets at once, so each run checks both."""
    return [chain.server_ip(family) for family in FAMILIES]


def hop_lists(target: dict[str, Any]) -> list[list[str]]:
    """Every responder per hop, in the JSON's order (the most frequent first)."""
    return [[r["address"] for r in hop["responders"]] for hop in target["hops"]]


def main_addresses(target: dict[str, Any]) -> list[str | None]:
    """The address answering each TTL from 1 (None for a silent hop), as the reference tools' parsers give."""
    by_ttl = {hop["ttl"]: (hop["responders"][0]["address"] if hop["responders"] else None)
              for hop in target["hops"]}
    return [by_ttl.get(ttl) for ttl in range(1, max(by_ttl, default=0) + 1)]


def assert_configured_path(chain: Chain, target: dict[str, Any], family: int, rounds: int) -> None:
    """Reached in exactly the chain's hops, each answered every round by its configured address alone."""
    assert target["address"] == chain.server_ip(family)
    assert target["reached"] is True and target["error"] is None
    assert target["hop_count"] == ROUTERS + 1 == len(target["hops"])
    assert [h["ttl"] for h in target["hops"]] == list(range(1, ROUTERS + 2))
    assert hop_lists(target) == [[a] for a in chain.hop_addresses(family)]
    for hop in target["hops"]:
        assert (hop["sent"], hop["received"], hop["loss_pct"]) == (rounds, rounds, 0.0), hop
        assert hop["responders"][0]["share"] == 1.0 and hop["rate_limited"] is False
        assert hop["destination"] is (hop["ttl"] == ROUTERS + 1)
    assert target["rate_limited_hops"] == []


# ----- the hops, as configured -----------------------------------------------------------------------
@pytest.mark.parametrize("user", [None, "nobody"], ids=["root", "nobody"])
@pytest.mark.parametrize("method", METHODS)
def test_hops_and_addresses_exactly_as_configured(chain: Chain, method: str, user: str | None) -> None:
    if user is not None:
        support.require_tool("setpriv")  # no capability at all: udp, icmp (ping_group_range) and tcp
    doc = trace(chain, "--method", method, "-c", "2", "-i", "10ms", *both_families(chain), user=user)
    assert doc["method"] == method and doc["interrupted"] is False and doc["notes"] == []
    assert doc["thresholds"]["passed"] is True
    assert [t["target"] for t in doc["targets"]] == both_families(chain)
    for target, family in zip(doc["targets"], FAMILIES, strict=True):
        assert target["method"] == method and target["rounds"] == 2
        assert_configured_path(chain, target, family, rounds=2)


def test_100_rounds_at_10ms_lose_nothing(chain: Chain) -> None:
    # Rate limits off: every probe is answered, at every hop, in both families at once.
    doc = trace(chain, "-c", "100", "-i", "10ms", *both_families(chain), "--max-loss", "0")
    assert doc["notes"] == [] and doc["thresholds"]["passed"] is True
    for target, family in zip(doc["targets"], FAMILIES, strict=True):
        assert target["rounds"] == 100 and target["loss_pct"] == 0.0
        assert_configured_path(chain, target, family, rounds=100)


def test_without_ping_sockets_icmp_says_how_in_one_line_and_udp_tcp_need_nothing(limited: Chain) -> None:
    support.require_tool("setpriv")
    for family in FAMILIES:
        result, _ = limited.netkit("trace", "-n", "--method", "icmp", "-c", "1", limited.server_ip(family),
                                   user="nobody")
        assert result.exit_code == 3 and result.stdout == "", result
        assert result.stderr.count("\n") == 1 and "ping_group_range" in result.stderr, result.stderr
    for method in ("udp", "tcp"):
        doc = trace(limited, "--method", method, "-c", "1", *both_families(limited), user="nobody")
        for target, family in zip(doc["targets"], FAMILIES, strict=True):
            assert_configured_path(limited, target, family, rounds=1)


# ----- exact loss ------------------------------------------------------------------------------------
def _drop_ruleset(chain: Chain, k: int) -> str:
    """Drop 1 in 10 of the client's probes that router k forwards, counted per family.

    Only probes (from the client's address, to the probe ports), so the ICMP errors coming back
    through router k are never dropped; and only probes meant for a hop of the path: the forward
    hook sees the TTL already decremented, so a probe sent with TTL t has t - k here, and the
    destination's TTL (ROUTERS + 1) leaves ROUTERS + 1 - k. The first round's probes beyond the
    destination (sent before it is known) are not counted in any hop, so they must pass.
    """
    top = ROUTERS + 1 - k
    ports = "33434-34457"  # the udp method's ports: base + seq % 1024
    return (
        "table inet loss {\n chain through {\n  type filter hook forward priority 0;\n"
        f"  ip saddr {chain.client_ip(4)} ip ttl 1-{top} udp dport {ports} numgen random mod 10 0 "
        'counter drop comment "v4"\n'
        f"  ip6 saddr {chain.client_ip(6)} ip6 hoplimit 1-{top} udp dport {ports} numgen random mod 10 0 "
        'counter drop comment "v6"\n'
        " }\n}\n"
    )


def _dropped(chain: Chain, ns: str) -> dict[int, int]:
    out = chain.run(ns, "nft", "list", "table", "inet", "loss")
    return {int(f): int(n) for n, f in re.findall(r'counter packets (\d+) bytes \d+ drop comment "v(\d)"', out)}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_loss_after_router_k_equals_nfts_drop_counter(chain: Chain, k: int) -> None:
    support.require_tool("nft")
    router = chain.router(k)
    chain.nft(router, _drop_ruleset(chain, k))
    try:
        doc = trace(chain, "-c", "100", "-i", "10ms", *both_families(chain))
        dropped = _dropped(chain, router)
    finally:
        chain.run(router, "nft", "delete", "table", "inet", "loss")
    false_flags = []
    for target, family in zip(doc["targets"], FAMILIES, strict=True):
        assert target["reached"] is True and target["hop_count"] == ROUTERS + 1
        assert hop_lists(target) == [[a] for a in chain.hop_addresses(family)]
        lost = {h["ttl"]: h["sent"] - h["received"] for h in target["hops"]}
        assert all(h["sent"] == 100 for h in target["hops"])
        assert dropped[family] > 0, dropped  # about 10 per hop behind router k
        # Hops up to k never cross router k's forward hook; every probe it dropped is lost behind it.
        assert [lost[t] for t in range(1, k + 1)] == [0] * k, (family, lost)
        assert sum(lost[t] for t in range(k + 1, ROUTERS + 2)) == dropped[family], (family, lost, dropped)
        false_flags += [(family, h["ttl"]) for h in target["hops"] if h["rate_limited"]]
    # Forwarding loss carries on to every later hop: it is never the routers' rate limit.
    assert false_flags == [] and not any(RATE_LIMIT_NOTE in note for note in doc["notes"]), (false_flags, doc["notes"])


# ----- ICMP rate limiting --------------------------------------------------------------------------------
def test_rate_limiting_is_recognised_and_not_held_against_the_path(limited: Chain) -> None:
    # icmp (over a raw socket here, see the fixture): the server's echo replies are not rate limited,
    # the routers' Time Exceeded are (a burst, then one a second each), so intermediate hops lose
    # most probes while the destination loses none.
    doc = trace(limited, "--method", "icmp", "-c", "100", "-i", "10ms", "--max-loss", "1", *both_families(limited))
    assert doc["thresholds"]["passed"] is True  # --max-loss is judged on the destination
    assert len(doc["notes"]) == 1 and RATE_LIMIT_NOTE in doc["notes"][0]
    for target, family in zip(doc["targets"], FAMILIES, strict=True):
        assert target["reached"] is True and target["hop_count"] == ROUTERS + 1
        assert hop_lists(target) == [[a] for a in limited.hop_addresses(family)]
        *routers, dest = target["hops"]
        assert dest["loss_pct"] == 0.0 and dest["rate_limited"] is False and target["loss_pct"] == 0.0
        for hop in routers:
            assert hop["received"] > 0 and hop["loss_pct"] > 50.0, hop
            assert hop["rate_limited"] is True, (family, hop)
        assert target["rate_limited_hops"] == list(range(1, ROUTERS + 1))


# ----- a silent router -----------------------------------------------------------------------------------
SILENT_AT = 3


@pytest.fixture
def silent_router(chain: Chain) -> Iterator[int]:
    """Router SILENT_AT forwards but sends no Time Exceeded (v4 or v6)."""
    support.require_tool("nft")
    ns = chain.router(SILENT_AT)
    chain.nft(ns, "table inet quiet {\n chain out {\n  type filter hook output priority 0;\n"
                  "  icmp type time-exceeded counter drop\n  icmpv6 type time-exceeded counter drop\n }\n}\n")
    try:
        yield SILENT_AT
    finally:
        chain.run(ns, "nft", "delete", "table", "inet", "quiet")


def test_a_router_that_never_answers_is_a_silent_hop(chain: Chain, silent_router: int) -> None:
    k = silent_router
    doc = trace(chain, "-c", "3", "-i", "10ms", *both_families(chain))
    for target, family in zip(doc["targets"], FAMILIES, strict=True):
        assert target["reached"] is True and target["hop_count"] == ROUTERS + 1
        expected: list[list[str]] = [[a] for a in chain.hop_addresses(family)]
        expected[k - 1] = []
        assert hop_lists(target) == expected
        silent = target["hops"][k - 1]
        assert (silent["sent"], silent["received"], silent["loss_pct"]) == (3, 0, 100.0)
        assert silent["rate_limited"] is False and silent["rtt_ms"]["avg"] is None
        assert all(h["loss_pct"] == 0.0 for h in target["hops"] if h["ttl"] != k)
    assert doc["notes"] == [] and doc["thresholds"]["passed"] is True
    # The table marks it ???, and the path goes on behind it (icmp this time).
    result, _ = chain.netkit("trace", "-n", "-W", TIMEOUT, "--method", "icmp", "-c", "2", "-i", "10ms",
                             chain.server_ip(4))
    assert result.exit_code == 0, result.stderr
    rows = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\s*(\d+)\s+(\S+)", result.stdout, re.M)}
    assert rows == {**{i + 1: a for i, a in enumerate(chain.hop_addresses(4))}, k: "???"}, result.stdout


# ----- a route change mid-run ----------------------------------------------------------------------------
class JsonlFollower:
    """Reads a running netkit's jsonl stdout on a thread, so a test can wait on what it has said."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            if line.strip():
                self.events.append(json.loads(line))

    def rounds_from(self, ttl: int, address: str) -> set[int]:
        """The rounds in which ``address`` answered at ``ttl``."""
        return {e["round"] for e in list(self.events)
                if e.get("event") == "hop" and e["ttl"] == ttl and e["address"] == address}

    def finish(self, timeout: float = 10.0) -> None:
        self.proc.wait(timeout=timeout)
        self._thread.join(timeout=timeout)


def test_a_route_change_mid_run_shows_both_routers_on_that_hop(alt_chain: Chain) -> None:
    c = alt_chain
    k = c.alt_router_at
    assert k is not None
    before = c.hop_addresses(4)
    # A long run (about 100 s at most), stopped with Ctrl-C once both routers have answered.
    proc = c.popen_netkit("trace", "-n", "-W", TIMEOUT, "-c", "10000", "-i", "10ms", "--format", "jsonl",
                          c.server_ip(4))
    follower = JsonlFollower(proc)
    try:
        support.wait_until(lambda: len(follower.rounds_from(k, before[k - 1])) >= 10, timeout=10)
        c.switch_route(True)
        after = c.hop_addresses(4)
        assert after[k - 1] != before[k - 1]
        support.wait_until(lambda: len(follower.rounds_from(k, after[k - 1])) >= 10, timeout=10)
        proc.send_signal(signal.SIGINT)
        follower.finish()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        c.switch_route(False)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    # Ctrl-C prints the report so far and exits by the result: the destination was reached.
    assert proc.returncode == 0, (proc.returncode, stderr)
    summary = follower.events[-1]
    assert summary["event"] == "summary" and summary["interrupted"] is True, summary
    assert summary["reached"] is True and summary["hop_count"] == 5
    hops = summary["hops"]
    assert [h["ttl"] for h in hops] == [1, 2, 3, 4, 5]
    # Hop k: both routers, each with its share of the hop's replies; every other hop unchanged.
    shares = {r["address"]: r["share"] for r in hops[k - 1]["responders"]}
    assert set(shares) == {before[k - 1], after[k - 1]}, shares
    assert all(s > 0 for s in shares.values()) and sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    for i, hop in enumerate(hops):
        if i != k - 1:
            assert [r["address"] for r in hop["responders"]] == [before[i]], hop
    # The stream said every outcome the summary counts, as it happened.
    streamed = [e for e in follower.events if e["event"] == "hop"]
    assert [sum(1 for e in streamed if e["ttl"] == h["ttl"]) for h in hops] == [h["sent"] for h in hops]
    assert [sum(1 for e in streamed if e["ttl"] == h["ttl"] and e["address"]) for h in hops] == \
        [h["received"] for h in hops]


# ----- the reference tools, side by side -----------------------------------------------------------------
def test_the_same_hops_as_traceroute_tracepath_and_mtr(chain: Chain) -> None:
    for tool in ("traceroute", "tracepath", "mtr"):
        support.require_tool(tool)
    # mtr's report mode takes about 5 s whatever the path: both families run while the rest do.
    with ThreadPoolExecutor(2) as pool:
        mtr = [pool.submit(mtr_hops, chain, family) for family in FAMILIES]
        doc = trace(chain, "-c", "1", *both_families(chain))
        for target, family in zip(doc["targets"], FAMILIES, strict=True):
            ours = main_addresses(target)
            assert ours == chain.hop_addresses(family)
            assert traceroute_hops(chain, family) == ours, "traceroute -n"
            # The path MTU is --pmtu's and tested with it; here the hops.
            assert tracepath_run(chain, family).hops == ours, "tracepath -n"
            assert mtr[FAMILIES.index(family)].result(timeout=30) == ours, "mtr -n -r --json"
