"""The mesh proof: ten hosts each run a keyed reflector and ``netkit monitor --mesh``, one real
Prometheus scrapes all ten, and loss injected at one host shows on exactly its 18 pairs.

Ten network namespaces h1..h10 (198.18.0.1-10) and an eleventh for Prometheus (198.18.0.100) on one
bridge (tests/netns_mesh.py). One mesh file for all; every host runs the two commands a user runs:
``netkit serve udp --mode echo --key-file KEY`` and ``netkit monitor --mesh mesh.toml --self hN``.
Prometheus (Debian's binary, a throw-away TSDB) scrapes them with the scrape config that ``netkit
mesh prometheus`` prints.

An nft table in h3's namespace, on h3's link (netdev ingress and egress of its eth0), drops a random
20% of the udp packets to and from the reflector port: requests and replies, of the probes h3 sends
and of those it answers. The drops are invisible to the sockets (no send error), as on a lossy link.
Each probe meets the rule at most once (a dropped request has no reply), so every drop is one
lost probe: read back through Prometheus' HTTP API, loss shows on h3's 18 pairs (9 as source, 9 as
target) and on none of the other 72, and the lost probes over h3's pairs add up to the rule's
counter exactly.

The monitors probe every second (5 keyed packets a peer, 800 ms timeout: a loaded CI machine
does not turn a slow answer into loss); Prometheus scrapes every second. Every wait polls with a
deadline; everything started is killed by its PID and the namespaces deleted, failure included.

Needs root, nft and Debian's ``prometheus`` (``.ci/run`` installs it); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import support
from netns_mesh import PROM_ADDRESS, REFLECTOR_PORT, MeshLab, mesh_lab, mesh_toml
from support import netkit_cmd, wait_until

pytestmark = [pytest.mark.root, pytest.mark.timeout(150)]

HOSTS = 10
LOSSY = "h3"
DROP_PERCENT = 20
MESH = "lab"
PROM_PORT = 9090


class Prom:
    """Prometheus' HTTP API, reached from inside the lab."""

    def __init__(self, lab: MeshLab, proc: subprocess.Popen[bytes]) -> None:
        self.lab = lab
        self.proc = proc
        self.url = f"http://{PROM_ADDRESS}:{PROM_PORT}"

    def query(self, expr: str) -> list[dict]:
        if self.proc.poll() is not None:
            raise AssertionError("prometheus exited:\n" + self.lab.log("prometheus.log")[-2000:])
        try:
            body = self.lab.http_get(f"{self.url}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=3)
        except OSError:
            return []
        doc = json.loads(body)
        return doc["data"]["result"] if doc.get("status") == "success" else []

    def pairs(self, metric: str) -> dict[tuple[str, str], float]:
        """``metric`` of the mesh's udp probes by (source, target)."""
        rows = self.query(f'{metric}{{mesh="{MESH}",method="udp"}}')
        return {(r["metric"]["source"], r["metric"]["target"]): float(r["value"][1]) for r in rows}


def all_pairs(hosts: list[str]) -> set[tuple[str, str]]:
    return {(s, t) for s in hosts for t in hosts if s != t}


def drop_rules(dev: str = "eth0") -> str:
    """h3's lossy link: the reflector port's packets in and out, the drops counted in one named counter."""
    drop = f"numgen random mod 100 < {DROP_PERCENT} counter name \"dropped\" drop"
    return (
        "table netdev nkmesh {\n"
        " counter dropped { }\n"
        f' chain in {{ type filter hook ingress device "{dev}" priority 0; policy accept; }}\n'
        f' chain out {{ type filter hook egress device "{dev}" priority 0; policy accept; }}\n'
        "}\n"
        # in: the requests h3's reflector gets, the replies h3's monitor gets; out: the other way
        f"add rule netdev nkmesh in udp dport {REFLECTOR_PORT} {drop}\n"
        f"add rule netdev nkmesh in udp sport {REFLECTOR_PORT} {drop}\n"
        f"add rule netdev nkmesh out udp sport {REFLECTOR_PORT} {drop}\n"
        f"add rule netdev nkmesh out udp dport {REFLECTOR_PORT} {drop}\n"
    )


def dropped(lab: MeshLab) -> int:
    out = lab.run(lab.host_ns[LOSSY], "nft", "-j", "list", "counter", "netdev", "nkmesh", "dropped")
    return next(int(item["counter"]["packets"]) for item in json.loads(out)["nftables"] if "counter" in item)


def prometheus_files(mesh_file: Path, directory: Path) -> Path:
    """``netkit mesh prometheus --write``: the scrape config and alert rules, scraping every second."""
    res = support.run_netkit(["mesh", "prometheus", str(mesh_file), "--scrape-interval", "1s",
                              "--write", str(directory)], timeout=30)
    assert res.exit_code == 0, res.stderr
    return directory / "prometheus.yml"


def test_mesh_loss_at_one_host_shows_on_its_18_pairs_only(tmp_path: Path) -> None:
    support.require_root_netns()
    support.require_tool("nft")
    prometheus = support.require_tool("prometheus")
    started = time.monotonic()
    with mesh_lab(HOSTS, tmp_path) as lab:
        key = tmp_path / "mesh.key"
        key.write_text(secrets.token_hex(32) + "\n")
        os.chmod(key, 0o600)
        mesh_file = tmp_path / "mesh.toml"
        hosts = [(h, lab.address(h)) for h in lab.hosts]
        mesh_file.write_text(mesh_toml(hosts, key_file=str(key), name=MESH, interval="1s", timeout="800ms",
                                       packets=5, packet_interval="20ms"))
        env = support.clean_env()
        reflectors = {h: lab.start(lab.host_ns[h], netkit_cmd(
            "serve", "udp", "--mode", "echo", "--host", lab.address(h), "--port", str(REFLECTOR_PORT),
            "--key-file", str(key)), f"reflector-{h}.log", env=env) for h in lab.hosts}

        def reflectors_ready() -> bool:
            for h, proc in reflectors.items():
                assert proc.poll() is None, f"reflector {h} exited:\n{lab.log(f'reflector-{h}.log')}"
            return all("listening on" in lab.log(f"reflector-{h}.log") for h in lab.hosts)

        # Every reflector answers before any monitor probes: a probe to one still starting would be lost.
        wait_until(reflectors_ready, timeout=30, interval=0.2, what="reflectors listening")
        monitors = {h: lab.start(lab.host_ns[h], netkit_cmd("monitor", "--mesh", str(mesh_file), "--self", h),
                                 f"monitor-{h}.log", env=env) for h in lab.hosts}
        prom_config = prometheus_files(mesh_file, tmp_path / "prometheus")
        prom = Prom(lab, lab.start(lab.prom_ns, [
            prometheus, f"--config.file={prom_config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={PROM_ADDRESS}:{PROM_PORT}"], "prometheus.log"))
        pairs = all_pairs(lab.hosts)
        lossy = {p for p in pairs if LOSSY in p}
        assert len(lossy) == 18

        def monitors_alive() -> None:
            for h, proc in monitors.items():
                assert proc.poll() is None, f"monitor {h} exited:\n{lab.log(f'monitor-{h}.log')[-2000:]}"

        def rounds_at_least(floor: dict[tuple[str, str], float]) -> dict[tuple[str, str], float] | None:
            monitors_alive()
            rounds = prom.pairs("netkit_monitor_rounds_total")
            return rounds if set(rounds) == pairs and all(rounds[p] >= floor[p] for p in pairs) else None

        # Every pair measured twice and scraped, before any loss: the clean baseline.
        wait_until(lambda: rounds_at_least(dict.fromkeys(pairs, 2)), timeout=40, interval=0.2,
                   what="all 90 pairs scraped")
        assert prom.pairs("netkit_packets_lost_total") == dict.fromkeys(pairs, 0.0), "loss before any drop"

        lab.run(lab.host_ns[LOSSY], "nft", "-f", "-", input=drop_rules())
        # Long enough that each of h3's pairs lost something (36% per probe: both legs cross the rule).
        wait_until(lambda: (lambda lost: all(lost.get(p, 0) > 0 for p in lossy))(
            prom.pairs("netkit_packets_lost_total")), timeout=30, interval=0.2, what="loss on every pair of h3")
        lab.run(lab.host_ns[LOSSY], "nft", "flush", "chain", "netdev", "nkmesh", "in")
        lab.run(lab.host_ns[LOSSY], "nft", "flush", "chain", "netdev", "nkmesh", "out")
        drops = dropped(lab)
        # The rounds running when the rules went finish, and Prometheus scrapes their result: what it
        # shows lags a monitor by at most a scrape, so three more rounds than it shows now covers both.
        now = prom.pairs("netkit_monitor_rounds_total")
        wait_until(lambda: rounds_at_least({p: n + 3 for p, n in now.items()}), timeout=20, interval=0.2,
                   what="three more rounds scraped after the drops stopped")
        lost = prom.pairs("netkit_packets_lost_total")
        sent = prom.pairs("netkit_packets_sent_total")

        assert set(lost) == pairs and set(sent) == pairs
        assert all(sent[p] > 0 for p in pairs)
        assert {p for p in pairs if lost[p] > 0} == lossy, {p: lost[p] for p in pairs if lost[p] > 0}
        assert {p: lost[p] for p in pairs - lossy} == dict.fromkeys(pairs - lossy, 0.0)
        assert sum(lost[p] for p in lossy) == drops

        # The matrix as `netkit mesh matrix` shows it from the same Prometheus (increase() over its
        # window: Prometheus extrapolates, so the pairs with loss are compared, not the counts).
        res = subprocess.run(["ip", "netns", "exec", lab.prom_ns, *netkit_cmd(
            "--format", "json", "mesh", "matrix", "--prometheus", prom.url, "--window", "10m")],
            capture_output=True, text=True, timeout=60, env=support.clean_env())
        assert res.returncode == 0, res.stderr
        matrix = {(r["source"], r["target"]): r for r in json.loads(res.stdout)}
        assert set(matrix) == pairs
        assert {p for p, r in matrix.items() if r["lost"] > 0} == lossy
        assert all(r["sent"] > 0 and r["loss_pct"] == 0 for p, r in matrix.items() if p not in lossy)
        print(f"mesh proof: {sum(sent.values()):.0f} probes sent, {drops} dropped at {LOSSY}, "
              f"{sum(lost.values()):.0f} lost")
    print(f"mesh proof took {time.monotonic() - started:.1f} s")
