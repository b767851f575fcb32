"""Memory: RSS of ``netkit serve tcp`` holding 5,000 idle connections (target: under 150 MB).

The bench process raises RLIMIT_NOFILE to its hard limit (the server inherits it), opens the
connections, sends one byte on each and reads its echo (so every connection is accepted and has
its protocol), then reads the server's VmRSS from /proc. The reference column is the RSS of the
same server before any connection, so the ratio shows the growth.
"""

from __future__ import annotations

import resource
import socket
import time

from benchlib import Row, netkit_argv, start_server, stop

CONNS = 5000
TARGET_MB = 150.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def idle_connections_rss() -> list[Row]:
    limit = raise_nofile(2 * CONNS + 100)
    if limit < CONNS + 100:
        return [Row(f"rss: serve tcp with {CONNS} idle conns", None, None, "MB",
                    f"skipped: RLIMIT_NOFILE {limit} too low")]
    proc, line = start_server(netkit_argv("serve", "tcp", "--port", "0", "--max-conns", "0",
                                          "--idle-timeout", "0"))
    socks: list[socket.socket] = []
    try:
        port = int(line.rsplit(":", 1)[1])
        time.sleep(0.3)
        base = rss_mb(proc.pid)
        for _ in range(CONNS):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"x")
            socks.append(s)
        for s in socks:
            if s.recv(1) != b"x":
                raise RuntimeError("no echo")
        time.sleep(0.5)
        held = rss_mb(proc.pid)
    finally:
        for s in socks:
            s.close()
        stop(proc)
    return [
        Row(f"rss: serve tcp with {CONNS} idle conns vs the idle server", held, base, "MB",
            f"target < {TARGET_MB:.0f} MB; {(held - base) * 1024 / CONNS:.1f} KiB per connection"),
    ]


CASES = [idle_connections_rss]

