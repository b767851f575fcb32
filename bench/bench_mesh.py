"""``netkit monitor --mesh``: what one host's monitor (and its reflector) costs, 9 and 99 peers.

No reference tool: there is no other mesh monitor here to run side by side, so the rows carry
netkit's figures only (reference "-").

Setup (tests/netns_mesh.py ``peer_pair``): the monitor in one namespace (h1, 198.18.0.1) and every
peer's address (198.18.0.2..) in another, joined by a veth pair, with one keyed ``netkit serve udp
--mode echo`` answering for all of them (an nft DNAT sends every peer address's reflector port to it;
the kernel puts each peer's address back on the replies). The mesh file is the one a user writes:
interval 1s, one udp probe of 5 packets 50 ms apart, timeout 500ms. The reflector's load is the one
each host's own reflector carries in a real mesh of that size (N-1 monitors, each probing it once
per round), so its figures are given too.

Measured with psutil: after a warm-up, ``ROUNDS`` windows of ``WINDOW_S`` seconds each; CPU is the
process's user+system time over the window's wall time (% of one core), RSS is sampled every
0.5 s (steady: the median sample) and the peak is the kernel's high-water mark (VmHWM). Rows give
the median window and the range over the windows. Needs root (namespaces); run as
``python bench/run.py mesh``.
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from benchlib import Row  # noqa: E402
from netns_mesh import METRICS_PORT, REFLECTOR_PORT, in_netns, lab_unavailable_reason, mesh_toml, peer_pair  # noqa: E402

WARMUP_S = 5.0
WINDOW_S = 15.0
ROUNDS = 3


def _argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "netkit", *args]


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _wait_log(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: exited\n{log.read_text(errors='replace')[-1500:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{log.name}: no {text!r} within {timeout}s")


def _windows(pids: dict[str, int]) -> dict[str, list[tuple[float, float]]]:
    """Per process: (CPU % of one core, median RSS MiB) for each window."""
    import psutil

    procs = {name: psutil.Process(pid) for name, pid in pids.items()}
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
    for _ in range(ROUNDS):
        t0 = time.monotonic()
        cpu0 = {n: sum(p.cpu_times()[:2]) for n, p in procs.items()}
        rss: dict[str, list[float]] = {n: [] for n in procs}
        while time.monotonic() - t0 < WINDOW_S:
            for n, p in procs.items():
                rss[n].append(p.memory_info().rss / (1 << 20))
            time.sleep(0.5)
        wall = time.monotonic() - t0
        for n, p in procs.items():
            out[n].append((100 * (sum(p.cpu_times()[:2]) - cpu0[n]) / wall, statistics.median(rss[n])))
    return out


def _totals(ns: str, url: str) -> tuple[float, float]:
    """The monitor's own count of probes sent and lost (its /metrics), to show it really probed."""
    text = in_netns(ns, lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    totals = {"netkit_packets_sent_total": 0.0, "netkit_packets_lost_total": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals["netkit_packets_sent_total"], totals["netkit_packets_lost_total"]


def _monitor_args(mesh_file: Path, self_name: str, workdir: Path) -> list[str]:
    return ["monitor", "--mesh", str(mesh_file), "--self", self_name, "-q"]


def _mesh_case(peers: int) -> list[Row]:
    reason = lab_unavailable_reason()
    if reason:
        return [Row(f"mesh monitor, {peers} peers", None, None, "", note=f"skipped: {reason}")]
    work = Path(tempfile.mkdtemp(prefix="nk-bench-mesh-"))
    key = work / "mesh.key"
    key.write_text(secrets.token_hex(32) + "\n")
    os.chmod(key, 0o600)
    with peer_pair(peers) as pair:
        mesh_file = work / "mesh.toml"
        mesh_file.write_text(mesh_toml(pair.hosts, key_file=str(key), name="bench"))
        refl_log, mon_log = work / "reflector.log", work / "monitor.log"
        reflector = pair.start(pair.peers_ns, _argv("serve", "udp", "--mode", "echo", "--host", pair.reflector_address,
                                                    "--port", str(REFLECTOR_PORT), "--key-file", str(key)),
                               refl_log)
        monitor = None
        try:
            _wait_log(refl_log, "listening on", reflector)
            monitor = pair.start(pair.monitor_ns, _argv(*_monitor_args(mesh_file, "h1", work)), mon_log)
            deadline = time.monotonic() + WARMUP_S
            while time.monotonic() < deadline:
                if monitor.poll() is not None:
                    raise RuntimeError(f"monitor exited\n{mon_log.read_text(errors='replace')[-1500:]}")
                time.sleep(0.2)
            windows = _windows({"monitor": monitor.pid, "reflector": reflector.pid})
            peaks = {"monitor": _peak_rss_mib(monitor.pid), "reflector": _peak_rss_mib(reflector.pid)}
            sent, lost = _totals(pair.monitor_ns, f"http://{pair.hosts[0][1]}:{METRICS_PORT}/metrics")
            # At least a packet a peer a second, nearly all answered: the figures are of real work.
            if sent < ROUNDS * WINDOW_S * peers or lost > sent / 100:
                raise RuntimeError(f"the monitor sent {sent:.0f} probes and lost {lost:.0f}")
        finally:
            for proc in (monitor, reflector):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    rows = []
    checked = f"{sent:.0f} probes sent, {lost:.0f} lost"
    span = f"{ROUNDS} windows of {WINDOW_S:.0f} s"
    for name, what in (("monitor", f"monitor probing {peers} peers"),
                       ("reflector", f"reflector answering {peers} peers' probes")):
        cpu = [c for c, _ in windows[name]]
        rss = [r for _, r in windows[name]]
        rows.append(Row(f"mesh {what}: CPU", statistics.median(cpu), None, "% of one core",
                        f"range {min(cpu):.1f}-{max(cpu):.1f} over {span}; {checked}; no reference tool"))
        rows.append(Row(f"mesh {what}: RSS steady", statistics.median(rss), None, "MiB",
                        f"range {min(rss):.1f}-{max(rss):.1f}; peak {peaks[name]:.1f} MiB (VmHWM)"))
    return rows


def monitor_9_peers() -> list[Row]:
    return _mesh_case(9)


def monitor_99_peers() -> list[Row]:
    return _mesh_case(99)


CASES = [monitor_9_peers, monitor_99_peers]
