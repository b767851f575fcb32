"""A line of network namespaces that makes a real routed path: client, r1..rN, server.

``netns_chain(routers=5)`` builds, yields a :class:`Chain` and tears everything down on exit, failure
included (every process left inside is killed, every namespace deleted; the veths go with them).

Topology and address plan (the same every run: addresses live inside the chain's own namespaces, so
parallel chains never clash; only the namespace names are unique per run)::

    node:      0=client   1=r1   2=r2  ...  N=rN   N+1=server
    link i (0..N) joins node i (left end) and node i+1 (right end)
    IPv4  link i: 198.18.i.0/24,         left end .1,  right end .2
    IPv6  link i: 2001:db8:18:i::/64,    left end ::1, right end ::2   (nodad: usable at once)

    alt_router_at=k adds rk' ("r<k>alt") in parallel with rk, with its own two links:
    IPv4  198.19.(k-1).0/24 (node k-1 .1, rk' .2) and 198.19.k.0/24 (rk' .1, node k+1 .2)
    IPv6  2001:db8:19:(k-1)::/64 and 2001:db8:19:k::/64, the same way round

Every node has an explicit route to every link it is not on (v4 and v6), through its left neighbour
for links to its left and its right neighbour for the rest; there are no default routes, so an address
outside the plan is "network unreachable" at once rather than looping. Routers forward (v4 and v6).
A traceroute from the client sees router k answer from its left end, 198.18.(k-1).2, then the
server from 198.18.N.2: :meth:`Chain.hop_addresses`. ``switch_route(to_alt)`` rewrites the routes of
nodes k-1 (towards the server) and k+1 (towards the client) in one ``ip -batch`` each, so both
directions move between rk and rk'.

``mtus={i: mtu}`` sets both ends of link i (and of the alt link parallel to it, so the path MTU does
not depend on which router carries the traffic). Put a smaller MTU on a link behind a router (i >= 1)
and that router must answer "fragmentation needed" / "packet too big".

``icmp_ratelimit=False`` (the default) turns the kernel's ICMP rate limits off in the routers and the
server (``net.ipv4.icmp_ratelimit=0``, ``net.ipv6.icmp.ratelimit=0``, and the per-namespace global
budget ``icmp_msgs_per_sec``/``icmp_msgs_burst`` raised to 1e6) so every probe gets its answer and
counts are exact; True keeps the kernel defaults (1000 ms per destination, 1000/s burst 50 global).
``ping_group=True`` opens ``net.ipv4.ping_group_range`` in the client (ICMP datagram sockets, v4 and
v6, for every group). rp_filter is off everywhere so a route change never drops a packet on the way.

Importable without pytest: a missing prerequisite raises :class:`ChainUnavailable` with the reason
(tests call ``support.require_root_netns()`` first and skip). From bench/::

    sys.path.insert(0, str(REPO / "tests"))
    from netns_chain import netns_chain, traceroute_hops
    with netns_chain(5) as chain:
        result, seconds = chain.netkit("trace", "--count", "1", chain.server_ip(4))

``user="nobody"`` (``run``, ``netkit``, ``popen_netkit``) runs through ``setpriv`` as uid/gid 65534
with no capabilities at all. This interpreter may live where nobody cannot enter (a pyenv under
/root); netkit then runs on the system's python3 of the same version with this checkout and this
environment's site-packages on ``PYTHONPATH`` (:func:`nobody_python`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# bench/ imports this file by path: its neighbour support.py must be importable too.
if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from support import CliResult, clean_env, netkit_cmd

NOBODY = 65534  # uid of nobody and gid of nogroup on Debian
LINK_V4 = "198.18.{i}.{host}"
LINK_V6 = "2001:db8:18:{i:x}::{host}"
ALT_V4 = "198.19.{i}.{host}"
ALT_V6 = "2001:db8:19:{i:x}::{host}"


class ChainUnavailable(RuntimeError):
    """The machine cannot build the chain (no root, no iproute2, ...); the message says why."""


def chain_unavailable_reason() -> str | None:
    """Why a chain cannot be built here, or None when it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", "sysctl"):
        if shutil.which(tool) is None:
            return f"needs {tool} (iproute2, procps)"
    return None


@dataclass(frozen=True)
class _Link:
    """One veth pair. ``index`` is its position: between nodes ``index`` and ``index + 1``."""

    index: int
    alt: bool
    left: str  # node labels: "client", "r1", "r3alt", "server"
    right: str

    def address(self, side: str, family: int) -> str:
        host = 1 if side == "left" else 2
        if family == 4:
            return (ALT_V4 if self.alt else LINK_V4).format(i=self.index, host=host)
        # Compressed, as the tools print it (2001:db8:18::2 for link 0).
        return str(ipaddress.ip_address((ALT_V6 if self.alt else LINK_V6).format(i=self.index, host=host)))

    def prefix(self, family: int) -> str:
        if family == 4:
            return (ALT_V4 if self.alt else LINK_V4).format(i=self.index, host=0) + "/24"
        return (ALT_V6 if self.alt else LINK_V6).format(i=self.index, host="") + "/64"

    def dev(self, side: str) -> str:
        # Named after the neighbour it leads to, so `ip addr` inside a namespace reads as the map.
        return "to-" + (self.right if side == "left" else self.left)


@dataclass
class Chain:
    """A built chain; see the module docstring for the plan. All names are namespace names."""

    client: str
    server: str
    routers: list[str]
    alt_router_at: int | None
    alt_router: str | None
    mtus: dict[int, int]
    tag: str
    _links: list[_Link] = field(repr=False)
    _ns: dict[str, str] = field(repr=False)  # node label -> namespace
    on_alt: bool = False

    # ----- names and addresses --------------------------------------------------------------------
    def router(self, k: int) -> str:
        """Namespace of router k (1-based, like the hop number)."""
        if not 1 <= k <= len(self.routers):
            raise IndexError(f"router {k} not in 1..{len(self.routers)}")
        return self.routers[k - 1]

    @property
    def namespaces(self) -> list[str]:
        return list(self._ns.values())

    def link_address(self, i: int, side: str, family: int = 4, *, alt: bool = False) -> str:
        """Address of the ``side`` ("left"/"right") end of link i (the alt link parallel to it with ``alt``)."""
        for link in self._links:
            if link.index == i and link.alt == alt:
                return link.address(side, family)
        raise IndexError(f"no {'alt ' if alt else ''}link {i}")

    def server_ip(self, family: int = 4) -> str:
        return self.link_address(len(self.routers), "right", family)

    def client_ip(self, family: int = 4) -> str:
        return self.link_address(0, "left", family)

    def hop_addresses(self, family: int = 4) -> list[str]:
        """What a traceroute from the client sees, hop by hop: router k's address on its link towards
        the client (rk' in its place after ``switch_route(True)``), then the server."""
        hops = []
        for k in range(1, len(self.routers) + 1):
            alt = self.on_alt and k == self.alt_router_at
            hops.append(self.link_address(k - 1, "right", family, alt=alt))
        hops.append(self.server_ip(family))
        return hops

    def path_mtu(self) -> int:
        """The path MTU client -> server: the smallest MTU on the main links (1500 where unset)."""
        return min(self.mtus.get(i, 1500) for i in range(len(self.routers) + 1))

    def pmtu_drops(self, family: int = 4) -> list[tuple[int, str, int]]:
        """Where the path MTU drops behind a router: (hop, the router's hop address, new MTU), in path
        order; the router at hop k answers "fragmentation needed"/"packet too big" for link k."""
        drops = []
        current = self.mtus.get(0, 1500)
        hops = self.hop_addresses(family)
        for i in range(1, len(self.routers) + 1):
            mtu = self.mtus.get(i, 1500)
            if mtu < current:
                drops.append((i, hops[i - 1], mtu))
                current = mtu
        return drops

    # ----- running things inside -----------------------------------------------------------------
    def run(self, ns: str, *argv: str, input: str | None = None, check: bool = True, user: str | None = None,
            timeout: float = 30) -> str:
        """Run ``argv`` in namespace ``ns`` (as ``user``, e.g. "nobody", when given); its stdout."""
        r = subprocess.run(["ip", "netns", "exec", ns, *_as_user(user), *argv], input=input, capture_output=True,
                           text=True, timeout=timeout, env=_user_env(user), cwd="/" if user else None)
        if check and r.returncode != 0:
            raise AssertionError(f"{argv} in {ns} exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def netkit(self, *args: str, user: str | None = None, timeout: float = 60) -> tuple[CliResult, float]:
        """Run netkit in the client namespace (as ``user`` when given); the result and its wall time (s)."""
        argv = ["ip", "netns", "exec", self.client, *_as_user(user), *_netkit_argv(user, args)]
        t0 = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, timeout=timeout, env=_netkit_env(user),
                           stdin=subprocess.DEVNULL, cwd="/" if user else None)
        took = time.perf_counter() - t0
        return CliResult(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")), took

    def popen_netkit(self, *args: str, user: str | None = None, ns: str | None = None) -> subprocess.Popen[bytes]:
        """Start netkit in ``ns`` (the client by default) with SIGINT at its default, stdout/stderr piped."""
        argv = ["ip", "netns", "exec", ns or self.client, *_as_user(user), *_netkit_argv(user, args)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=_netkit_env(user), cwd="/" if user else None,
                                preexec_fn=_default_sigint)

    def nft(self, ns: str, ruleset: str) -> None:
        """Load an nft ruleset (``nft -f -``) in namespace ``ns``."""
        self.run(ns, "nft", "-f", "-", input=ruleset)

    def nft_counter(self, ns: str) -> int:
        """Sum of the packet counts of every ``counter`` in namespace ``ns``'s ruleset."""
        out = self.run(ns, "nft", "list", "ruleset")
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", out))

    def flush_pmtu(self) -> None:
        """Forget the path MTUs the client learnt (so the next trace must discover them again)."""
        for family in ("-4", "-6"):
            self.run(self.client, "ip", family, "route", "flush", "cache", check=False)

    # ----- the route change ----------------------------------------------------------------------
    def switch_route(self, to_alt: bool) -> None:
        """Move the path, both directions, from rk to rk' (``to_alt``) or back."""
        if self.alt_router_at is None:
            raise ValueError("the chain was built without alt_router_at")
        k = self.alt_router_at
        before, after = _node_label(k - 1, len(self.routers)), _node_label(k + 1, len(self.routers))
        self.on_alt = to_alt
        for label in (before, after):
            _ip_batch(self._ns[label], [f"route replace {r}" for r in self._routes(label)])

    def _routes(self, label: str) -> list[str]:
        """``PREFIX via NEXTHOP`` for every link node ``label`` is not on, in the current state."""
        n = len(self.routers)
        k = self.alt_router_at
        pos = k if k is not None and label.endswith("alt") else _node_position(label, n)
        mine = [link for link in self._links if label in (link.left, link.right)]
        lines = []
        for family in (4, 6):
            left_hop = right_hop = None
            for link in mine:
                if link.right == label:
                    left_hop = link.address("left", family)
                if link.left == label:
                    right_hop = link.address("right", family)
            # A node next to rk and rk' has links to both: the route goes to the one in use.
            if k is not None and pos == k - 1 and not label.endswith("alt"):
                right_hop = self.link_address(k - 1, "right", family, alt=self.on_alt)
            if k is not None and pos == k + 1:
                left_hop = self.link_address(k, "left", family, alt=self.on_alt)
            # Node k+1 answers from its address on the main link whichever way its replies leave, so a
            # route change moves hop k alone (the kernel takes an ICMP error's source from the route).
            src = ""
            if k is not None and pos == k + 1:
                src = " src " + self.link_address(k, "right", family)
            for link in self._links:
                if link in mine:
                    continue
                if link.index <= pos - 1:
                    assert left_hop is not None, (label, link)
                    lines.append(f"{link.prefix(family)} via {left_hop}{src}")
                else:
                    assert right_hop is not None, (label, link)
                    lines.append(f"{link.prefix(family)} via {right_hop}")
        return lines


# ----- users --------------------------------------------------------------------------------------
def _as_user(user: str | None) -> list[str]:
    """The command prefix that runs the rest as ``user`` (only "nobody" is known) without capabilities."""
    if user is None:
        return []
    if user != "nobody":
        raise ValueError(f"unknown user {user!r} (only 'nobody')")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise ChainUnavailable("needs setpriv (util-linux) to run as nobody")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--"]


def _user_env(user: str | None) -> dict[str, str] | None:
    if user is None:
        return None
    return clean_env(HOME="/nonexistent", PYTHONDONTWRITEBYTECODE="1")


_nobody_python: list[str] = []


def nobody_python() -> str:
    """A Python of this version that nobody can execute, for netkit run as nobody.

    This interpreter may sit under a home nobody cannot enter (a pyenv in /root): then the system's
    python3 of the same version runs this checkout with this environment's site-packages on its path.
    Raises ChainUnavailable when there is none.
    """
    if _nobody_python:
        return _nobody_python[0]
    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/python{want}", "/usr/bin/python3"):
        probe = subprocess.run([*_as_user("nobody"), candidate, "-c", "import sys; print(sys.version[:4])"],
                               capture_output=True, text=True, env=_user_env("nobody"), cwd="/")
        if probe.returncode == 0 and probe.stdout.strip().rstrip(".") == want:
            _nobody_python.append(candidate)
            return candidate
    raise ChainUnavailable(f"no python{want} that user nobody can run")


def _netkit_argv(user: str | None, args: Sequence[str]) -> list[str]:
    if user is None:
        return netkit_cmd(*args)
    return [nobody_python(), "-m", "netkit", *args]


def _netkit_env(user: str | None) -> dict[str, str]:
    if user is None:
        return clean_env()
    import netkit  # where this environment's netkit and its dependencies live

    roots = [str(Path(netkit.__file__).resolve().parent.parent),
             *(p for p in sys.path if p.endswith("site-packages"))]
    env = _user_env(user)
    assert env is not None
    env["PYTHONPATH"] = os.pathsep.join(roots)
    return env


def _default_sigint() -> None:
    # Background jobs of a non-interactive shell ignore SIGINT, and children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# ----- building and tearing down ------------------------------------------------------------------
def _node_label(pos: int, n: int) -> str:
    return "client" if pos == 0 else "server" if pos == n + 1 else f"r{pos}"


def _node_position(label: str, n: int) -> int:
    return 0 if label == "client" else n + 1 if label == "server" else int(label[1:])


def _sh(argv: Sequence[str], input: str | None = None) -> str:
    r = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r.stdout


def _ip_batch(ns: str, commands: list[str]) -> None:
    if commands:
        _sh(["ip", "-n", ns, "-batch", "-"], input="\n".join(commands) + "\n")


def _sysctl(ns: str, settings: dict[str, str]) -> None:
    _sh(["ip", "netns", "exec", ns, "sysctl", "-qw", *(f"{k}={v}" for k, v in settings.items())])


def _kill_inside(ns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@contextlib.contextmanager
def netns_chain(routers: int = 5, *, mtus: dict[int, int] | None = None, icmp_ratelimit: bool = False,
                alt_router_at: int | None = None, ping_group: bool = True) -> Iterator[Chain]:
    """Build client, r1..r<routers>, server (and r<k>alt with ``alt_router_at=k``); see the module doc."""
    reason = chain_unavailable_reason()
    if reason:
        raise ChainUnavailable(reason)
    if not 1 <= routers <= 200:
        raise ValueError("routers must be 1..200")
    mtus = dict(mtus or {})
    if any(not 0 <= i <= routers for i in mtus):
        raise ValueError(f"mtus keys are link indexes 0..{routers}")
    if alt_router_at is not None and not 1 <= alt_router_at <= routers:
        raise ValueError(f"alt_router_at must be 1..{routers}")
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    labels = ["client", *(f"r{k}" for k in range(1, routers + 1)), "server"]
    links = [_Link(i, False, labels[i], labels[i + 1]) for i in range(routers + 1)]
    alt_label = None
    if alt_router_at is not None:
        k = alt_router_at
        alt_label = f"r{k}alt"
        labels.append(alt_label)
        links += [_Link(k - 1, True, labels[k - 1], alt_label), _Link(k, True, alt_label, labels[k + 1])]
    ns = {label: f"nk-{label}-{tag}" for label in labels}
    chain = Chain(client=ns["client"], server=ns["server"], routers=[ns[f"r{k}"] for k in range(1, routers + 1)],
                  alt_router_at=alt_router_at, alt_router=ns[alt_label] if alt_label else None, mtus=mtus, tag=tag,
                  _links=links, _ns=ns)
    created: list[str] = []
    try:
        for label in labels:
            _sh(["ip", "netns", "add", ns[label]])
            created.append(ns[label])
            settings = {
                # Before any veth exists, so every interface inherits them: no DAD delay, no
                # reverse-path drops while a route moves.
                "net.ipv6.conf.default.accept_dad": "0", "net.ipv6.conf.all.accept_dad": "0",
                "net.ipv4.conf.default.rp_filter": "0", "net.ipv4.conf.all.rp_filter": "0",
            }
            if label not in ("client", "server"):
                settings |= {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
            if label != "client" and not icmp_ratelimit:
                settings |= {"net.ipv4.icmp_ratelimit": "0", "net.ipv6.icmp.ratelimit": "0",
                             "net.ipv4.icmp_msgs_per_sec": "1000000", "net.ipv4.icmp_msgs_burst": "1000000"}
            if label == "client" and ping_group:
                settings["net.ipv4.ping_group_range"] = "0 2147483647"
            _sysctl(ns[label], settings)
        batches: dict[str, list[str]] = {label: ["link set lo up"] for label in labels}
        for link in links:
            # Made straight inside the two namespaces (the names never exist on the host).
            _sh(["ip", "link", "add", link.dev("left"), "netns", ns[link.left], "type", "veth",
                 "peer", "name", link.dev("right"), "netns", ns[link.right]])
            mtu = mtus.get(link.index)
            for side, label in (("left", link.left), ("right", link.right)):
                dev = link.dev(side)
                b = batches[label]
                if mtu is not None:
                    b.append(f"link set dev {dev} mtu {mtu}")
                b.append(f"link set dev {dev} up")
                b.append(f"address add {link.address(side, 4)}/24 dev {dev}")
                b.append(f"address add {link.address(side, 6)}/64 dev {dev} nodad")
        for label in labels:
            _ip_batch(ns[label], batches[label] + [f"route add {r}" for r in chain._routes(label)])
        yield chain
    finally:
        for name in created:
            _kill_inside(name)
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


# ----- the reference tools, parsed into hop address lists ------------------------------------------
# Each list has one entry per TTL from 1, None where that TTL got no answer.
TRACEROUTE_METHODS = {"udp": [], "icmp": ["-I"], "tcp": ["-T"]}


def parse_traceroute(text: str) -> list[str | None]:
    """``traceroute -n -q1`` output -> the address answering each TTL."""
    hops: list[str | None] = []
    for line in text.splitlines():
        m = re.match(r"\s*(\d+)\s+(\S+)", line)
        if m:
            hops.append(None if m.group(2) == "*" else m.group(2))
    return hops


def traceroute_hops(chain: Chain, family: int = 4, method: str = "udp", *, user: str | None = None) -> list[str | None]:
    """``traceroute -n -q1`` (udp; ``-I`` icmp; ``-T`` tcp) from the client to the server."""
    out = chain.run(chain.client, "traceroute", f"-{family}", "-n", "-q1", *TRACEROUTE_METHODS[method],
                    chain.server_ip(family), user=user)
    return parse_traceroute(out)


@dataclass(frozen=True)
class Tracepath:
    hops: list[str | None]
    pmtu: int | None
    drops: list[tuple[int, str, int]]  # (TTL of the probe, the address that said "too big", the MTU it gave)


def parse_tracepath(text: str) -> Tracepath:
    """``tracepath -n`` output. A TTL may print twice: first the router that said "too big" (with
    ``pmtu N``), then the answer to the smaller retry; the hop is the last address for its TTL."""
    by_ttl: dict[int, str | None] = {}
    drops = []
    pmtu = None
    for line in text.splitlines():
        resume = re.search(r"Resume: pmtu (\d+)", line)
        if resume:
            pmtu = int(resume.group(1))
            continue
        m = re.match(r"\s*(\d+)\??:\s+(\S+)(.*)", line)
        if not m or m.group(2) == "[LOCALHOST]":
            continue
        ttl, addr, rest = int(m.group(1)), m.group(2), m.group(3)
        if addr == "no":  # "no reply"
            by_ttl.setdefault(ttl, None)
            continue
        by_ttl[ttl] = addr
        drop = re.search(r"pmtu (\d+)", rest)
        if drop:
            drops.append((ttl, addr, int(drop.group(1))))
    last = max(by_ttl, default=0)
    return Tracepath([by_ttl.get(t) for t in range(1, last + 1)], pmtu, drops)


def tracepath_run(chain: Chain, family: int = 4, *, user: str | None = None, flush: bool = True) -> Tracepath:
    """``tracepath -n`` from the client to the server; ``flush`` first forgets learnt path MTUs so the
    drops are found again (and the client keeps what this run learns)."""
    if flush:
        chain.flush_pmtu()
    return parse_tracepath(chain.run(chain.client, "tracepath", f"-{family}", "-n", chain.server_ip(family),
                                     user=user))


def tracepath_result(chain: Chain, family: int = 4, *, user: str | None = None) -> tuple[list[str | None], int | None]:
    """(hops, path MTU) from ``tracepath -n``."""
    r = tracepath_run(chain, family, user=user)
    return r.hops, r.pmtu


def parse_mtr_json(text: str) -> list[str | None]:
    hubs = json.loads(text)["report"]["hubs"]
    hops: list[str | None] = [None] * max((h["count"] for h in hubs), default=0)
    for h in hubs:
        hops[h["count"] - 1] = None if h["host"] == "???" else h["host"]
    return hops


def mtr_hops(chain: Chain, family: int = 4) -> list[str | None]:
    """``mtr -n -r -c 1 --json`` from the client (about 5 s: mtr's report mode waits for its round)."""
    out = chain.run(chain.client, "mtr", f"-{family}", "-n", "-r", "-c", "1", "--json", chain.server_ip(family))
    return parse_mtr_json(out)
