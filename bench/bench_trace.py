"""``netkit trace`` on a 5-router namespace chain, side by side with traceroute and mtr.

- first path: wall time from exec to the first complete path (``netkit trace -n -c 1``, start-up
  included) against ``traceroute -n -q1`` and ``mtr -n -r -c 1`` to the same server, interleaved so
  background load hits all alike; ``netkit --version`` (start-up alone) in the same run. Every
  command runs through ``ip netns exec`` in the client, so that cost is in every figure alike.
  Target: netkit's start-up plus 50 ms, and under 0.25 s here.
- 100 rounds at ``-i 10ms`` with ICMP rate limits off: the loss at every hop (target 0.0%), each
  method, against ``mtr -n -r -c 100 -i 0.01`` (as root) in the same chain; and the run's wall time.

Needs root (network namespaces); each case says so and returns rows without figures otherwise.
All traffic stays inside the chain's namespaces (198.18.0.0/15, 2001:db8::/32).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import REPO, Row, netkit_argv

sys.path.insert(0, str(REPO / "tests"))

from netns_chain import Chain, ChainUnavailable, chain_unavailable_reason, netns_chain

ROUTERS = 5
PAIRS = 9  # netkit, traceroute and --version each this many times, interleaved
MTR_RUNS = 3  # mtr's report mode takes about 5 s whatever the path
ROUNDS = 100


#: An installed netkit has its bytecode compiled; a shell with PYTHONDONTWRITEBYTECODE would make every
#: run compile netkit's modules from source again (about 50 ms here), so the warm-up run writes them.
BYTECODE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
#: CPU time (user + sys, ms) of the last ``_in_client`` command: less sensitive to other load than wall time.
last_cpu_ms = [0.0]


def _in_client(chain: Chain, argv: list[str]) -> tuple[float, str]:
    """Wall time (ms) of ``argv`` run in the client namespace, and its stdout; fails on a non-zero exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(["ip", "netns", "exec", chain.client, *argv], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, env=BYTECODE_ENV)
    took = (time.perf_counter() - t0) * 1e3
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    last_cpu_ms[0] = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1e3
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {p.returncode}: {p.stderr.strip()}")
    return took, p.stdout


def _table_hops(text: str) -> list[str]:
    """The address column of a netkit or traceroute table (one line per hop, ``-n``)."""
    hops = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            hops.append(parts[1])
    return hops


def _skip(name: str, unit: str) -> list[Row] | None:
    reason = chain_unavailable_reason()
    if reason:
        return [Row(name, None, None, unit, note=f"skipped: {reason}")]
    return None


def first_path() -> list[Row]:
    name = "trace: first complete path, 5-router chain"
    skipped = _skip(name, "ms")
    if skipped:
        return skipped
    try:
        with netns_chain(ROUTERS) as chain:
            return _first_path(chain, name)
    except ChainUnavailable as exc:
        return [Row(name, None, None, "ms", note=f"skipped: {exc}")]


def _first_path(chain: Chain, name: str) -> list[Row]:
    server = chain.server_ip(4)
    want = chain.hop_addresses(4)
    nk = netkit_argv("trace", "-n", "-c", "1", server)
    nk_json = netkit_argv("trace", "-n", "-c", "1", server, "--format", "json")
    version = netkit_argv("--version")
    # What the trace command must import before it probes: the floor of its own start-up.
    floor = [sys.executable, "-c", "import click, rich.console, rich.table"]  # what a terminal table adds
    tr = ["traceroute", "-n", "-q1", server] if shutil.which("traceroute") else None
    mtr = ["mtr", "-n", "-r", "-c", "1", server] if shutil.which("mtr") else None
    times: dict[str, list[float]] = {"nk": [], "json": [], "version": [], "floor": [], "tr": [], "mtr": [],
                                     "elapsed": [], "nk_cpu": [], "version_cpu": []}
    for argv in (nk, version, floor, *([tr] if tr else [])):  # warm the page cache once
        _in_client(chain, argv)
    for i in range(PAIRS):
        took, out = _in_client(chain, nk)
        if _table_hops(out) != want:
            raise RuntimeError(f"netkit trace -c 1 did not show the whole path:\n{out}")
        times["nk"].append(took)
        times["nk_cpu"].append(last_cpu_ms[0])
        times["version"].append(_in_client(chain, version)[0])
        times["version_cpu"].append(last_cpu_ms[0])
        took, out = _in_client(chain, nk_json)
        doc = json.loads(out)
        target = doc["targets"][0]
        if not target["reached"] or target["hop_count"] != len(want):
            raise RuntimeError(f"netkit trace -c 1 --format json: {target}")
        times["json"].append(took)
        times["elapsed"].append(doc["elapsed_s"] * 1e3)
        times["floor"].append(_in_client(chain, floor)[0])
        if tr:
            took, out = _in_client(chain, tr)
            if _table_hops(out) != want:
                raise RuntimeError(f"traceroute did not show the whole path:\n{out}")
            times["tr"].append(took)
        if mtr and i < MTR_RUNS:
            times["mtr"].append(_in_client(chain, mtr)[0])

    def span(key: str) -> str:
        return f"{min(times[key]):.1f}-{max(times[key]):.1f}"

    med = {k: statistics.median(v) if v else None for k, v in times.items()}
    nk_ms, version_ms = med["nk"], med["version"]
    assert nk_ms is not None and version_ms is not None
    # Each trace against the --version run right after it: load changes between pairs, not within one.
    over = statistics.median(a - b for a, b in zip(times["nk"], times["version"], strict=True))
    verdict = "meets" if over <= 50 and nk_ms < 250 else "misses"
    rows = [Row(f"{name}: netkit trace -n -c 1 vs traceroute -n -q1", nk_ms, med["tr"], "ms",
                f"median of {PAIRS} (range {span('nk')}); per pair trace - --version median {over:.1f} ms: "
                f"{verdict} the target (start-up + 50 ms, under 250 ms); the probing itself (json elapsed_s) "
                f"{med['elapsed']:.1f} ms (range {span('elapsed')})"
                + (f"; traceroute range {span('tr')}" if tr else "; traceroute not installed"))]
    rows.append(Row(f"{name}: netkit trace -n -c 1 vs mtr -n -r -c 1", nk_ms, med["mtr"], "ms",
                    f"mtr median of {MTR_RUNS} (range {span('mtr')})" if mtr else "mtr not installed"))
    rows.append(Row(f"{name}: netkit --version (start-up alone) vs trace -c 1", version_ms, nk_ms, "ms",
                    f"same run, same ip netns exec; --version range {span('version')}; CPU (user+sys) "
                    f"--version {med['version_cpu']:.1f} ms, trace {med['nk_cpu']:.1f} ms"))
    rows.append(Row(f"{name}: python -c 'import click, rich.console, rich.table' vs trace -c 1",
                    med["floor"], nk_ms, "ms",
                    f"a table on a terminal imports Rich too (piped, trace draws plain text without it); "
                    f"range {span('floor')}"))
    rows.append(Row(f"{name}: netkit trace --format json vs the table", med["json"], nk_ms, "ms",
                    f"json range {span('json')}"))
    return rows


def hundred_rounds() -> list[Row]:
    name = f"trace: {ROUNDS} rounds at -i 10ms, rate limits off"
    skipped = _skip(name, "% loss")
    if skipped:
        return skipped
    try:
        with netns_chain(ROUTERS) as chain:
            return _hundred_rounds(chain, name)
    except ChainUnavailable as exc:
        return [Row(name, None, None, "% loss", note=f"skipped: {exc}")]


def _mtr_loss(chain: Chain) -> list[float] | None:
    if not shutil.which("mtr"):
        return None
    _, out = _in_client(chain, ["mtr", "-n", "-r", "-c", str(ROUNDS), "-i", "0.01", "--json", chain.server_ip(4)])
    return [float(h["Loss%"]) for h in json.loads(out)["report"]["hubs"]]


def _hundred_rounds(chain: Chain, name: str) -> list[Row]:
    mtr = _mtr_loss(chain)
    rows = []
    for method in ("udp", "icmp", "tcp"):
        took, out = _in_client(chain, netkit_argv("trace", "-n", "--method", method, "-c", str(ROUNDS), "-i", "10ms",
                                                  chain.server_ip(4), chain.server_ip(6), "--format", "json"))
        doc = json.loads(out)
        per_target = []
        worst = 0.0
        for t in doc["targets"]:
            losses = [h["loss_pct"] for h in t["hops"]]
            worst = max([worst, *losses])
            per_target.append(f"{t['address']} {len(losses)} hops loss% {'/'.join(f'{x:g}' for x in losses)}")
        rows.append(Row(f"{name}: {method}, worst hop loss, v4+v6 vs mtr -i 0.01 (v4)", worst,
                        None if mtr is None else max(mtr), "%",
                        "; ".join(per_target) + f"; wall {took:.0f} ms (elapsed {doc['elapsed_s']:.3f} s)"
                        + ("" if mtr is None else f"; mtr loss% {'/'.join(f'{x:g}' for x in mtr)}")))
    return rows


CASES = [first_path, hundred_rounds]

if __name__ == "__main__":  # python bench/bench_trace.py: this module's cases alone
    from benchlib import print_rows

    print_rows([row for case in CASES for row in case()])
