"""Reliability at full size, side by side with the C epoll echo server (the machine's limit).

- ``stream_1gib_sha256``: 1 GiB through one echo connection, SHA-256 of what was sent and what came
  back compared; the figure is Gbit/s each way (the C server runs the same client).
- ``held_10k_connections``: 10,000 TCP connections held at once, each echoing a distinct 2 KiB
  payload checked by SHA-256; the figure is the server's RSS while holding them.

Both raise ``RLIMIT_NOFILE`` to the hard limit first (the servers inherit it). ``bench/reliability.py``
runs these and the whole reliability test suite at full size and writes ``docs/reliability.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import socket
import threading
import time
from collections.abc import Callable
from subprocess import Popen

from benchlib import Row, netkit_argv, start_server, stop

MiB = 1 << 20
STREAM_BYTES = 1 << 30
CONNS = 10_000


def raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def stream_through(port: int, nbytes: int) -> tuple[bool, int, float]:
    """Send ``nbytes`` through an echo server while reading them back; (digests equal, bytes, Gbit/s)."""
    block = os.urandom(4 * MiB)
    sent_h, recv_h = hashlib.sha256(), hashlib.sha256()
    counts = {"sent": 0, "recv": 0}
    s = socket.create_connection(("127.0.0.1", port), timeout=60)

    def writer() -> None:
        i = 0
        while counts["sent"] < nbytes:
            chunk = i.to_bytes(8, "big") + block[8 : min(len(block), nbytes - counts["sent"])]
            sent_h.update(chunk)
            s.sendall(chunk)
            counts["sent"] += len(chunk)
            i += 1
        s.shutdown(socket.SHUT_WR)

    t0 = time.perf_counter()
    th = threading.Thread(target=writer, daemon=True)
    th.start()
    buf = bytearray(MiB)
    view = memoryview(buf)
    while True:
        n = s.recv_into(buf)
        if not n:
            break
        recv_h.update(view[:n])
        counts["recv"] += n
    elapsed = time.perf_counter() - t0
    th.join(60)
    s.close()
    ok = counts["recv"] == counts["sent"] == nbytes and sent_h.digest() == recv_h.digest()
    return ok, counts["recv"], counts["recv"] * 8 / elapsed / 1e9


async def hold_and_echo(port: int, n: int, during: Callable[[], float]) -> tuple[int, int, float]:
    """Open n connections, keep them all open, echo a distinct payload on each; (ok, bad, during())."""
    sem = asyncio.Semaphore(256)
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def connect() -> None:
        async with sem:
            for attempt in range(5):
                try:
                    conns.append(await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10))
                    return
                except (OSError, asyncio.TimeoutError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.05 * (attempt + 1))

    await asyncio.gather(*(connect() for _ in range(n)))

    async def exchange(i: int, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        payload = hashlib.sha256(i.to_bytes(8, "big")).digest() * 32 + os.urandom(1024)
        w.write(payload)
        await w.drain()
        got = await asyncio.wait_for(r.readexactly(len(payload)), 60)
        return got == payload

    results = await asyncio.gather(*(exchange(i, r, w) for i, (r, w) in enumerate(conns)))
    figure = during()
    for _, w in conns:
        w.close()
    return sum(results), len(results) - sum(results), figure


def _servers() -> list[tuple[str, list[str]]]:
    from bench_echo import c_echo_server  # compiled once, cached

    servers = [("netkit", netkit_argv("serve", "tcp", "--port", "0", "--max-conns", "0", "--idle-timeout", "0"))]
    try:
        servers.append(("c-epoll", [str(c_echo_server()), "0"]))
    except Exception as exc:  # no compiler: netkit alone, the reference column stays empty
        print(f"# c echo server unavailable: {exc}")
    return servers


def _with_server(argv: list[str], fn: Callable[[Popen, int], object]) -> object:
    proc, line = start_server(argv)
    try:
        return fn(proc, int(line.rsplit(":", 1)[1]))
    finally:
        stop(proc)


def stream_1gib_sha256() -> list[Row]:
    figures: dict[str, float] = {}
    notes = []
    for name, argv in _servers():
        ok, n, gbit = _with_server(argv, lambda _p, port: stream_through(port, STREAM_BYTES))  # type: ignore[misc]
        figures[name] = gbit
        notes.append(f"{name}: {n:,} B, sha256 {'equal' if ok else 'DIFFERENT'}")
        if not ok:
            raise RuntimeError(f"{name}: echo corrupted or short")
    return [Row("reliability: 1 GiB echo, SHA-256 verified", figures.get("netkit"), figures.get("c-epoll"),
                "Gbit/s", "; ".join(notes))]


def held_10k_connections() -> list[Row]:
    limit = raise_nofile(2 * CONNS + 200)
    if limit < CONNS + 200:
        return [Row(f"reliability: {CONNS} held conns", None, None, "MB", f"skipped: RLIMIT_NOFILE {limit}")]
    figures: dict[str, float] = {}
    notes = []
    for name, argv in _servers():
        def run(proc: Popen, port: int) -> tuple[int, int, float]:
            return asyncio.run(hold_and_echo(port, CONNS, lambda: rss_mb(proc.pid)))

        ok, bad, rss = _with_server(argv, run)  # type: ignore[misc]
        figures[name] = rss
        notes.append(f"{name}: {ok:,} ok, {bad} corrupted")
        if bad or ok != CONNS:
            raise RuntimeError(f"{name}: {bad} corrupted, {ok} ok")
    return [Row(f"reliability: RSS holding {CONNS:,} echo conns", figures.get("netkit"), figures.get("c-epoll"),
                "MB", "; ".join(notes))]


CASES = [stream_1gib_sha256, held_10k_connections]
