"""Connect scans: ``netkit probe`` against ``nmap -sT`` in one run, inside a private namespace.

Each case re-runs this file inside ``unshare -n`` (loopback up, nothing else), where it opens a
few listeners of its own on fixed ports (the namespace is ours, so nobody else's service is
touched), then times both tools alternately, ROUNDS times each, and reports the medians:

- ``full_scan``: ``netkit probe 127.0.0.1:1-65535 --only open -q`` vs ``nmap -sT -p- -T5 127.0.0.1``;
  target: netkit within 1.5x of nmap, and the same set of open ports (checked from a JSON run
  and nmap's grepable output). The asyncio prober (``--engine async``) is timed too, for scale.
- ``hostnames``: 1,000 ``localhost:PORT`` targets from a file (each resolves ``localhost``,
  both families) vs ``nmap -sT -T5 -p 20001-21000 localhost``.

Needs root (for ``unshare -n``) and nmap; a missing piece gives a row with a note instead.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import Row, netkit_argv

ROUNDS = 3
LISTEN_PORTS = (22, 80, 443, 5432, 8080, 20010, 20500, 45000, 60001)


def _nmap_open(grepable: str) -> list[int]:
    ports: list[int] = []
    for line in grepable.splitlines():
        if "Ports:" not in line:
            continue
        for item in line.split("Ports:", 1)[1].split("\t", 1)[0].split(","):
            fields = item.strip().split("/")
            if len(fields) > 1 and fields[1] == "open":
                ports.append(int(fields[0]))
    return sorted(ports)


def _timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    return time.perf_counter() - start, proc


def _inner(case: str) -> dict[str, object]:
    """Runs inside the namespace: listeners up, both tools timed alternately."""
    listeners = []
    for port in LISTEN_PORTS:
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen(1024)  # never accepted: room for every run's connection
        listeners.append(s)
    out: dict[str, object] = {"rounds": ROUNDS}
    with tempfile.TemporaryDirectory() as tmp:
        if case == "full":
            nk = netkit_argv("probe", "127.0.0.1:1-65535", "--only", "open", "-q")
            nk_async = netkit_argv("probe", "127.0.0.1:1-65535", "--only", "open", "-q", "--engine", "async",
                                   "--concurrency", "1000")
            nm = ["nmap", "-sT", "-p-", "-T5", "127.0.0.1", "-oG", "-"]
            ports_argv = netkit_argv("probe", "127.0.0.1:1-65535", "--format", "json")
        else:
            tf = Path(tmp, "targets")
            tf.write_text("# 1,000 hostname targets\n" + "".join(f"localhost:{p}\n" for p in range(20001, 21001)))
            nk = netkit_argv("probe", "--targets-file", str(tf), "--only", "open", "-q")
            nk_async = netkit_argv("probe", "--targets-file", str(tf), "--only", "open", "-q", "--engine", "async")
            nm = ["nmap", "-sT", "-T5", "-p", "20001-21000", "localhost", "-oG", "-"]
            ports_argv = netkit_argv("probe", "--targets-file", str(tf), "--format", "json")
        times: dict[str, list[float]] = {"netkit": [], "nmap": [], "netkit_async": []}
        nmap_out = ""
        for _ in range(ROUNDS):
            t, _p = _timed(nk)
            times["netkit"].append(t)
            t, p = _timed(nm)
            times["nmap"].append(t)
            nmap_out = p.stdout
        t, _p = _timed(nk_async)
        times["netkit_async"].append(t)
        _t, p = _timed(ports_argv)
        doc = json.loads(p.stdout)
        out["netkit_open"] = sorted({t["port"] for t in doc["targets"] if t["state"] == "open"})
        out["self_connects"] = sum(1 for t in doc["targets"] if "self-connect" in (t["error"] or ""))
        out["netkit_total"] = doc["summary"]["total"]
        out["nmap_open"] = _nmap_open(nmap_out)
        out["times"] = times
    for s in listeners:
        s.close()
    return out


def _outer(case: str) -> dict[str, object] | str:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "needs root and unshare -n"
    if shutil.which("nmap") is None:
        return "nmap not installed"
    script = 'ip link set lo up && exec "$0" "$1" --inner "$2"'
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script, sys.executable, __file__, case],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return f"inner run failed: {proc.stderr.strip()[-200:]}"
    return json.loads(proc.stdout)


def _rows(case: str, label: str) -> list[Row]:
    got = _outer(case)
    if isinstance(got, str):
        return [Row(label, None, None, "s", note=got)]
    times: dict[str, list[float]] = got["times"]  # type: ignore[assignment]
    nk, nm = statistics.median(times["netkit"]), statistics.median(times["nmap"])
    same = got["netkit_open"] == got["nmap_open"]
    note = (f"median of {got['rounds']}; open ports {'identical' if same else 'DIFFER'}: "
            f"netkit {got['netkit_open']} nmap {got['nmap_open']}; netkit runs {[round(t, 2) for t in times['netkit']]}"
            f" nmap {[round(t, 2) for t in times['nmap']]}; self-connects caught: {got['self_connects']}")
    return [
        Row(label, nk, nm, "s", note=note),
        Row(f"{label} (asyncio engine, for scale)", times["netkit_async"][0], nm, "s", note="one run"),
    ]


def full_scan() -> list[Row]:
    return _rows("full", "connect scan 127.0.0.1:1-65535 vs nmap -sT -p- -T5")


def hostnames() -> list[Row]:
    return _rows("hosts", "1,000 localhost:PORT targets vs nmap -sT -T5 -p 20001-21000 localhost")


CASES = [full_scan, hostnames]


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--inner":
    print(json.dumps(_inner(sys.argv[2])))
