"""Request/response load generators side by side: ``netkit measure requests`` vs the C load client.

Both drive the same C epoll echo server (``bench/echo_epoll.c``) with 100 connections and
64-byte requests. On a shared 2-core machine the two generators are run alternately, ROUNDS
times each, and the best runs compared (other processes only ever slow a run down; the note
gives every run, the pairwise ratios and the medians). Target: netkit >= 0.9x the C client.
Because other processes steal CPU unevenly, a second row compares CPU time per request (user +
system, from ``getrusage``), which noise disturbs much less; netkit's is measured in-process
around the library call so interpreter start-up is not charged to it.

A third case runs netkit's open loop at a fixed rate and reports the achieved rate and p99.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess

from bench_echo import Spawned, c_echo_server, load_client
from benchlib import Row, netkit_argv

CONNS = 100
SIZE = 64
SECONDS = float(os.environ.get("NETKIT_BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("NETKIT_BENCH_ROUNDS", "3"))


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def c_load(port: int) -> tuple[float, float]:
    """(requests/s, CPU seconds per request) of the C load client."""
    import re

    cpu0 = _children_cpu()
    proc = subprocess.run([str(load_client()), "127.0.0.1", str(port), str(CONNS), str(SIZE), str(SECONDS)],
                          capture_output=True, text=True, timeout=SECONDS + 60)
    cpu = _children_cpu() - cpu0
    m = re.search(r"requests=(\d+) .*req_per_s=([0-9.]+)", proc.stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"load client failed: {proc.stdout.strip()} {proc.stderr.strip()}")
    return float(m.group(2)), cpu / max(1, int(m.group(1)))


def netkit_cli(port: int, *extra: str) -> dict:
    argv = netkit_argv("measure", "requests", f"127.0.0.1:{port}", "-c", str(CONNS), "--size", str(SIZE),
                       "-d", f"{SECONDS}s", "--format", "json", *extra)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=SECONDS + 60)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"netkit measure requests failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def netkit_cpu_per_request(port: int) -> float:
    """CPU seconds per request of the load generator itself (library, in this process)."""
    import time

    from netkit.core.requests_config import RequestsConfig
    from netkit.io.aio import run
    from netkit.io.measure.request_load import run_requests

    c0 = time.process_time()
    r = run(run_requests(RequestsConfig(host="127.0.0.1", port=port, connections=CONNS, size=SIZE,
                                        duration_s=SECONDS)))
    return (time.process_time() - c0) / max(1, r.requests)


BARE_UVLOOP = """
import asyncio, resource, sys, uvloop
port, conns, size, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
REQ = b"x" * size
N = [0]
class C(asyncio.Protocol):
    def connection_made(self, t):
        self.w = t.write
        self.got = 0
    def data_received(self, d):
        self.got += len(d)
        if self.got >= size:
            self.got = 0
            N[0] += 1
            self.w(REQ)
async def main():
    loop = asyncio.get_running_loop()
    cs = [(await loop.create_connection(C, "127.0.0.1", port))[1] for _ in range(conns)]
    for c in cs:
        c.w(REQ)
    await asyncio.sleep(0.2)
    N[0] = 0
    a = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(seconds)
    b = resource.getrusage(resource.RUSAGE_SELF)
    n = N[0]
    print(n / seconds, (b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime) / max(1, n))
uvloop.run(main())
"""


def bare_uvloop(port: int) -> tuple[float, float]:
    """(requests/s, CPU s/request) of the least a uvloop Protocol client can do: the floor."""
    import sys

    proc = subprocess.run([sys.executable, "-c", BARE_UVLOOP, str(port), str(CONNS), str(SIZE), str(SECONDS)],
                          capture_output=True, text=True, timeout=SECONDS + 60)
    rps, cpu = proc.stdout.split()
    return float(rps), float(cpu)


def load_generators_100_conns() -> list[Row]:
    server = Spawned([str(c_echo_server()), "0"])
    c_rps, c_cpu, nk_rps, nk_cpu, p99, bare_rps = [], [], [], [], [], []
    try:
        for _ in range(ROUNDS):
            rps, cpu = c_load(server.port)
            c_rps.append(rps)
            c_cpu.append(cpu)
            doc = netkit_cli(server.port)
            nk_rps.append(doc["requests_per_s"])
            p99.append(doc["latency_ms"]["p99"])
            bare_rps.append(bare_uvloop(server.port)[0])
        bare_cpu = []
        for _ in range(ROUNDS):
            nk_cpu.append(netkit_cpu_per_request(server.port))
            bare_cpu.append(bare_uvloop(server.port)[1])
    finally:
        server.stop()
    med = statistics.median
    pairs = [round(n / c, 2) for n, c in zip(nk_rps, c_rps, strict=True) if c]
    return [
        # Best of N, as timeit takes the best time: other processes only ever slow a run down.
        Row(f"load generator: echo 64B x{CONNS} conns, best of {ROUNDS}x{SECONDS:g}s alternating, vs C echo_load",
            max(nk_rps), max(c_rps), "req/s",
            f"target >= 0.9; runs netkit {[round(x) for x in nk_rps]} C {[round(x) for x in c_rps]}; "
            f"pairwise ratios {pairs}; medians {med(nk_rps):.0f}/{med(c_rps):.0f}; netkit p99 {med(p99)} ms"),
        Row("the floor's rate: a bare uvloop client (no timing, no histogram) vs C echo_load, best of "
            f"{ROUNDS}", max(bare_rps), max(c_rps), "req/s",
            f"runs {[round(x) for x in bare_rps]}: what any uvloop Protocol client reaches here"),
        Row("load generator CPU per request (user+sys), netkit vs C", med(nk_cpu) * 1e6, med(c_cpu) * 1e6,
            "us/req", "median; ratio netkit/C, lower is better"),
        Row("load generator CPU per request, netkit vs a bare uvloop Protocol client (the floor)",
            med(nk_cpu) * 1e6, med(bare_cpu) * 1e6, "us/req",
            "median; netkit times every request and keeps a histogram, the floor does neither"),
    ]


def open_loop_rate() -> list[Row]:
    rate = 20_000
    server = Spawned([str(c_echo_server()), "0"])
    try:
        doc = netkit_cli(server.port, "--rate", str(rate))
    finally:
        server.stop()
    return [Row(f"open loop --rate {rate} x{CONNS} conns: achieved vs asked", doc["requests_per_s"], rate, "req/s",
                f"p50 {doc['latency_ms']['p50']} ms, p99 {doc['latency_ms']['p99']} ms (from scheduled time)")]


CASES = [load_generators_100_conns, open_loop_rate]
