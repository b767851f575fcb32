"""A lab for ``netkit monitor --mesh``: N host namespaces on one bridge, plus one for Prometheus.

``mesh_lab(10)`` builds, yields a :class:`MeshLab` and tears everything down on exit, failure
included: every process it started is killed by its PID, anything else left inside a namespace
too, and every namespace is deleted (their veths and the bridge go with them).

Topology (the same every run; only the namespace names are unique per run)::

    bridge namespace:  br0, with one veth end per host ("p1".."pN", "pprom"); no address, no route
    host hK:           eth0 = 198.18.0.K/24     (K = 1..N, N <= 99)
    prometheus:        eth0 = 198.18.0.100/24

Nothing routes out: the namespaces have no default route and the bridge lives in a namespace of
its own, so the lab's traffic never meets the machine's own interfaces. The test process talks to
the lab through :meth:`MeshLab.http_get`, which opens its socket from a thread that joined the
Prometheus namespace (``setns``), or runs commands there (``ip netns exec``).

``peer_pair(99)`` is the cheap stand-in for a large mesh as one monitor sees it: the monitor's
namespace and one namespace holding every peer's address, answered by one reflector (bench/).

Importable without pytest (bench/ uses it): a missing prerequisite raises :class:`LabUnavailable`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from support import wait_until

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
PROM_ADDRESS = "198.18.0.100"
REFLECTOR_PORT = 8000
METRICS_PORT = 9464


class LabUnavailable(RuntimeError):
    pass


def lab_unavailable_reason() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def _sh(argv: Sequence[str], input: str | None = None, check: bool = True) -> str:
    r = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r.stdout


def _kill_inside(ns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _ports_up(bridge_ns: str, count: int) -> bool:
    links = json.loads(_sh(["ip", "-n", bridge_ns, "-j", "link", "show", "master", "br0"]))
    return len(links) == count and all(link.get("operstate") == "UP" for link in links)


def in_netns(ns: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
    """``fn()`` in a thread that joined network namespace ``ns`` (sockets it opens live there).

    A namespace is a property of the thread (the kernel's task), so the rest of this process stays
    where it was; the thread ends with ``fn``.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"in_netns({ns}) took over {timeout}s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


@dataclass
class MeshLab:
    tag: str
    bridge_ns: str
    host_ns: dict[str, str]  # host name (h1..hN) -> namespace
    prom_ns: str
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        return list(self.host_ns)

    @staticmethod
    def address(host: str) -> str:
        return f"198.18.0.{int(host[1:])}"

    def namespaces(self) -> list[str]:
        return [*self.host_ns.values(), self.prom_ns, self.bridge_ns]

    def run(self, ns: str, *argv: str, input: str | None = None, check: bool = True) -> str:
        return _sh(["ip", "netns", "exec", ns, *argv], input=input, check=check)

    def start(self, ns: str, argv: Sequence[str], log_name: str, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``ns``, both streams to ``workdir/log_name`` (a file never fills up as
        an unread pipe would); the lab kills it by its PID at the end."""
        with (self.workdir / log_name).open("wb") as log:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.procs.append(proc)
        return proc

    def log(self, log_name: str) -> str:
        path = self.workdir / log_name
        return path.read_text(errors="replace") if path.exists() else ""

    def http_get(self, url: str, ns: str | None = None, timeout: float = 5.0) -> bytes:
        """GET ``url`` from inside ``ns`` (default: the Prometheus namespace)."""
        def fetch() -> bytes:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.read()  # type: ignore[no-any-return]
        return in_netns(ns or self.prom_ns, fetch, timeout=timeout + 5)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def mesh_toml(hosts: Sequence[tuple[str, str]], *, key_file: str, interval: str = "1s", timeout: str = "500ms",
              packets: int = 5, packet_interval: str = "50ms", name: str = "lab") -> str:
    """One mesh file (netkit.core.mesh_config's format) for ``hosts``, (name, address) pairs."""
    lines = [f'name = "{name}"', f'interval = "{interval}"', f'timeout = "{timeout}"',
             f"metrics_port = {METRICS_PORT}", f"reflector_port = {REFLECTOR_PORT}", f'key_file = "{key_file}"', ""]
    for host, address in hosts:
        lines += ["[[hosts]]", f'name = "{host}"', f'address = "{address}"', ""]
    lines += ["[[probes]]", 'method = "udp"', f"packets = {packets}", f'packet_interval = "{packet_interval}"', ""]
    return "\n".join(lines)


@dataclass
class PeerPair:
    """One monitor's namespace (h1 at 198.18.0.1) and one namespace holding every peer's address
    (h2.. at 198.18.0.2..) on a veth pair: a large mesh as one monitor sees it.

    One reflector on the first peer's address (:attr:`reflector_address`) answers for all of them:
    the peers' namespace DNATs the reflector port of every peer address to it, and conntrack puts
    the peer's address back as the reply's source. (A reflector bound to 0.0.0.0 would answer from
    the namespace's primary address, which the monitor's connected socket does not accept.)
    """

    monitor_ns: str
    peers_ns: str
    hosts: list[tuple[str, str]]  # (name, address), h1 first

    @property
    def reflector_address(self) -> str:
        return self.hosts[1][1]

    def start(self, ns: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env)


@contextlib.contextmanager
def peer_pair(peers: int) -> Iterator[PeerPair]:
    """Build a :class:`PeerPair` with ``peers`` peer addresses (1..200); torn down on exit."""
    reason = lab_unavailable_reason()
    if reason:
        raise LabUnavailable(reason)
    if not 1 <= peers <= 200:
        raise ValueError("peers must be 1..200")
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    pair = PeerPair(f"nkm-mon-{tag}", f"nkm-peers-{tag}",
                    [(f"h{k}", f"198.18.0.{k}") for k in range(1, peers + 2)])
    created: list[str] = []
    try:
        for ns in (pair.monitor_ns, pair.peers_ns):
            _sh(["ip", "netns", "add", ns])
            created.append(ns)
        _sh(["ip", "link", "add", "eth0", "netns", pair.monitor_ns, "type", "veth", "peer", "name", "eth0",
             "netns", pair.peers_ns])
        _sh(["ip", "-n", pair.monitor_ns, "-batch", "-"],
            input="link set lo up\nlink set eth0 up\naddress add 198.18.0.1/24 dev eth0\n")
        _sh(["ip", "-n", pair.peers_ns, "-batch", "-"], input="link set lo up\nlink set eth0 up\n" + "".join(
            f"address add {address}/24 dev eth0\n" for _name, address in pair.hosts[1:]))
        _sh(["ip", "netns", "exec", pair.peers_ns, "nft", "-f", "-"], input=(
            "table ip nkmesh {\n chain pre { type nat hook prerouting priority dstnat; policy accept;\n"
            f"  udp dport {REFLECTOR_PORT} dnat to {pair.reflector_address}\n }}\n}}\n"))
        yield pair
    finally:
        for ns in created:
            _kill_inside(ns)
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@contextlib.contextmanager
def mesh_lab(hosts: int, workdir: Path) -> Iterator[MeshLab]:
    """Build ``hosts`` host namespaces and a Prometheus namespace on one bridge (see the module doc)."""
    reason = lab_unavailable_reason()
    if reason:
        raise LabUnavailable(reason)
    if not 2 <= hosts <= 99:
        raise ValueError("hosts must be 2..99 (198.18.0.100 is Prometheus')")
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    lab = MeshLab(tag=tag, bridge_ns=f"nkm-br-{tag}", host_ns={f"h{k}": f"nkm-h{k}-{tag}" for k in range(1, hosts + 1)},
                  prom_ns=f"nkm-prom-{tag}", workdir=workdir)
    created: list[str] = []
    try:
        for ns in lab.namespaces():
            _sh(["ip", "netns", "add", ns])
            created.append(ns)
        # No spanning tree and no forwarding delay: a port forwards as soon as its link is up.
        bridge = ["link set lo up", "link add br0 type bridge stp_state 0 forward_delay 0", "link set br0 up"]
        # Every host, and Prometheus as the "host" of address .100.
        ends = [(lab.host_ns[h], f"p{h[1:]}", lab.address(h)) for h in lab.hosts]
        ends.append((lab.prom_ns, "pprom", PROM_ADDRESS))
        for ns, port_dev, addr in ends:
            # Made straight inside the two namespaces: the names never exist on the host.
            _sh(["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port_dev,
                 "netns", lab.bridge_ns])
            bridge += [f"link set {port_dev} master br0", f"link set {port_dev} up"]
            _sh(["ip", "-n", ns, "-batch", "-"],
                input=f"link set lo up\nlink set eth0 up\naddress add {addr}/24 dev eth0\n")
        _sh(["ip", "-n", lab.bridge_ns, "-batch", "-"], input="\n".join(bridge) + "\n")
        wait_until(lambda: _ports_up(lab.bridge_ns, len(ends)), timeout=10, interval=0.05, what="bridge ports up")
        yield lab
    finally:
        lab.stop_all()
        for ns in created:
            _kill_inside(ns)
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
