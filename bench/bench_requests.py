"""Request/response load generators side by side: ``netkit measure requests`` vs the C load client.

Both drive the same C epoll echo server (``bench/echo_epoll.c``) with 100 connections and
64-byte requests for the same time, one after the other (the ratio is what matters on a shared
2-core machine). Target: netkit >= 0.9x the C load client's requests/s.

A second case runs netkit's open loop at a fixed rate against the same server and reports the
achieved rate and p99 (the generator's own scheduling overhead shows there).
"""

from __future__ import annotations

import json
import os
import subprocess

from bench_echo import Spawned, c_echo_server, run_load
from benchlib import Row, netkit_argv

CONNS = 100
SIZE = 64
SECONDS = float(os.environ.get("NETKIT_BENCH_SECONDS", "5"))


def netkit_load(port: int, *extra: str, seconds: float = SECONDS) -> dict:
    argv = netkit_argv("measure", "requests", f"127.0.0.1:{port}", "-c", str(CONNS), "--size", str(SIZE),
                       "-d", f"{seconds}s", "--format", "json", *extra)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"netkit measure requests failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def load_generators_100_conns() -> list[Row]:
    server = Spawned([str(c_echo_server()), "0"])
    try:
        c_rps = run_load(server.port, CONNS, SECONDS)
        doc = netkit_load(server.port)
    finally:
        server.stop()
    nk = doc["requests_per_s"]
    p99 = doc["latency_ms"]["p99"]
    return [Row(f"load generator, echo 64B x{CONNS} conns {SECONDS:g}s vs C echo_load (C epoll server)", nk, c_rps,
                "req/s", f"target ratio >= 0.9; netkit p99 {p99} ms, errors {doc['errors']['total']}")]


def open_loop_rate() -> list[Row]:
    rate = 20_000
    server = Spawned([str(c_echo_server()), "0"])
    try:
        doc = netkit_load(server.port, "--rate", str(rate))
    finally:
        server.stop()
    return [Row(f"open loop --rate {rate} x{CONNS} conns: achieved vs asked", doc["requests_per_s"], rate, "req/s",
                f"p50 {doc['latency_ms']['p50']} ms, p99 {doc['latency_ms']['p99']} ms (from scheduled time)")]


CASES = [load_generators_100_conns, open_loop_rate]
