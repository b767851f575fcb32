"""New TCP connections per second: ``netkit measure connections`` vs the C connect loop.

Both open connections to the same C accept-and-close server (``bench/conn_accept.c``) on loopback
at the same concurrency, closing each with a reset (``--close rst``: no TIME_WAIT piles up, so a
run cannot exhaust the ephemeral ports and the next run starts from the same state). On a shared
2-core machine the generators run alternately, ROUNDS times each, and the best runs are compared
(other processes only ever slow a run down; the note gives every run and the pairwise ratios).
Target: netkit >= 0.8x the C connect loop.

Because other processes steal CPU unevenly, another row compares CPU time per connection (user +
system, from ``getrusage``), which noise disturbs much less; netkit's is measured in-process around
the library call so interpreter start-up is not charged to it.

netkit re-asks ``connect()`` at once (on loopback the handshake has completed by then) and waits
in epoll only for attempts still under way; the plain C loop waits in epoll for every connect, as
C connect loops are written. A like-for-like row runs the C loop with the same re-ask.

A last row is the other engine this was measured against: a bare uvloop connect loop
(``loop.sock_connect`` on CONCURRENCY tasks, nothing timed), to show why the meter runs a plain
epoll loop rather than an event loop.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import textwrap

from bench_echo import Spawned, compile_c
from benchlib import Row, netkit_argv

SECONDS = float(os.environ.get("NETKIT_BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("NETKIT_BENCH_ROUNDS", "3"))
CONCURRENCIES = (1, 8)


def _cpu(who: int) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def c_loop_cpu(port: int, conc: int) -> float:
    """CPU seconds per connection of the C connect loop."""
    cpu0 = _cpu(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([str(compile_c("conn_loop")), "127.0.0.1", str(port), str(conc), str(SECONDS), "0",
                           "rst"], capture_output=True, text=True, timeout=SECONDS + 60)
    cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu0
    m = re.search(r"connections=(\d+)", proc.stdout)
    if m is None:
        raise RuntimeError(f"conn_loop failed: {proc.stdout.strip()} {proc.stderr.strip()}")
    return cpu / max(1, int(m.group(1)))


def netkit_cpu(port: int, conc: int) -> float:
    """CPU seconds per connection of the meter itself (the library, in this process)."""
    from netkit.core.connections_config import ConnectionsConfig
    from netkit.io.measure.connection_rate import run_connections

    cpu0 = _cpu(resource.RUSAGE_SELF)
    r = run_connections(ConnectionsConfig("127.0.0.1", port, concurrency=conc, duration_s=SECONDS, close="rst"))
    return (_cpu(resource.RUSAGE_SELF) - cpu0) / max(1, r.connections)


def c_loop(port: int, conc: int, *extra: str) -> float:
    proc = subprocess.run([str(compile_c("conn_loop")), "127.0.0.1", str(port), str(conc), str(SECONDS), "0",
                           "rst", *extra], capture_output=True, text=True, timeout=SECONDS + 60)
    m = re.search(r"conn_per_s=([0-9.]+)", proc.stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"conn_loop failed: {proc.stdout.strip()} {proc.stderr.strip()}")
    return float(m.group(1))


def netkit_cli(port: int, conc: int) -> dict:
    argv = netkit_argv("measure", "connections", f"127.0.0.1:{port}", "-C", str(conc), "-d", f"{SECONDS}s",
                       "--close", "rst", "--format", "json")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=SECONDS + 60)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"netkit measure connections failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


UVLOOP_LOOP = textwrap.dedent("""
    import asyncio, socket, struct, sys, time
    import uvloop
    port, conc, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    LINGER = struct.pack("ii", 1, 0)
    async def worker(end, counter):
        loop = asyncio.get_running_loop()
        while time.monotonic() < end:
            s = socket.socket(); s.setblocking(False)
            await loop.sock_connect(s, ("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER); s.close()
            counter[0] += 1
    async def main():
        c = [0]; t0 = time.monotonic(); end = t0 + seconds
        await asyncio.gather(*(worker(end, c) for _ in range(conc)))
        print(c[0] / (time.monotonic() - t0))
    uvloop.run(main())
""")


def bare_uvloop(port: int, conc: int) -> float | None:
    proc = subprocess.run([sys.executable, "-c", UVLOOP_LOOP, str(port), str(conc), str(SECONDS)],
                          capture_output=True, text=True, timeout=SECONDS + 60)
    return float(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None


def connection_rate() -> list[Row]:
    rows: list[Row] = []
    server = Spawned([str(compile_c("conn_accept")), "127.0.0.1", "0"])
    try:
        for conc in CONCURRENCIES:
            c_rate: list[float] = []
            nk_rate: list[float] = []
            uv_rate: list[float] = []
            c2_rate: list[float] = []
            errors = 0
            for _ in range(ROUNDS):
                c_rate.append(c_loop(server.port, conc))
                c2_rate.append(c_loop(server.port, conc, "recheck"))
                doc = netkit_cli(server.port, conc)
                nk_rate.append(doc["connections_per_s"])
                errors += doc["errors"]["total"]
                uv = bare_uvloop(server.port, conc)
                if uv is not None:
                    uv_rate.append(uv)
            pairs = [round(n / c, 2) for n, c in zip(nk_rate, c_rate, strict=True) if c]
            rows.append(Row(
                f"connections/s at concurrency {conc}, --close rst, best of {ROUNDS}x{SECONDS:g}s alternating, "
                "vs C conn_loop", max(nk_rate), max(c_rate), "conn/s",
                f"target >= 0.8; runs netkit {[round(x) for x in nk_rate]} C {[round(x) for x in c_rate]}; "
                f"pairwise {pairs}; medians {statistics.median(nk_rate):.0f}/{statistics.median(c_rate):.0f}; "
                f"netkit errors {errors}"))
            rows.append(Row(f"like for like: the C loop re-asking connect() as netkit does, concurrency {conc}",
                            max(nk_rate), max(c2_rate), "conn/s",
                            f"runs C recheck {[round(x) for x in c2_rate]}; the plain C loop waits in epoll for "
                            "every connect, netkit and this one only for those still under way"))
            nk_cpu = [netkit_cpu(server.port, conc) for _ in range(ROUNDS)]
            c_cpu = [c_loop_cpu(server.port, conc) for _ in range(ROUNDS)]
            rows.append(Row(f"CPU per connection (user+sys) at concurrency {conc}, netkit vs C conn_loop",
                            statistics.median(nk_cpu) * 1e6, statistics.median(c_cpu) * 1e6, "us/conn",
                            "median; ratio netkit/C, lower is better"))
            if uv_rate:
                rows.append(Row(f"a bare uvloop connect loop (nothing timed) at concurrency {conc} vs C conn_loop",
                                max(uv_rate), max(c_rate), "conn/s",
                                f"runs {[round(x) for x in uv_rate]}: the event-loop engine not taken"))
    finally:
        server.stop()
    return rows


CASES = [connection_rate]

if __name__ == "__main__":
    from benchlib import print_rows

    print_rows(connection_rate())
