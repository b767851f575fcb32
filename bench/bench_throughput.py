"""TCP throughput on loopback: netkit client -> netkit server vs iperf3 -c -> iperf3 -s.

Both at iperf3's default block size (128 KiB) and both at 1 MiB, single stream and 2 streams, in
one run; each pair runs twice, interleaved, and the best rate of each tool is kept with that
run's CPU figure (the 2 cores are shared: one unlucky run says more about the neighbours than
about either tool). Figures: the receiver-counted rate (Gbit/s) and the client's CPU time per GB
moved (user + system of the client process, from the kernel's child rusage).
"""

from __future__ import annotations

import json
import resource
import shutil
import socket
import subprocess
import time

from benchlib import Row, netkit_argv, start_server, stop

DURATION = "5"
REPEAT = 2


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    hexport = f":{port:04X} "
    with open("/proc/net/tcp") as f:
        return any(hexport in line and line.split()[3] == "0A" for line in f)


def _run_client(argv: list[str]) -> tuple[dict, float]:
    before = _child_cpu()
    p = subprocess.run(argv, capture_output=True, timeout=120)
    cpu = _child_cpu() - before
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {p.stderr.decode(errors='replace')[-300:]}")
    return json.loads(p.stdout), cpu


def _netkit(size: str, streams: int) -> tuple[float, float]:
    proc, line = start_server(netkit_argv("serve", "tcp", "--port", "0"))
    try:
        port = int(line.rsplit(":", 1)[1])
        d, cpu = _run_client(netkit_argv("measure", "throughput", f"127.0.0.1:{port}", "-t", DURATION, "-l", size,
                                         "-P", str(streams), "--format", "json"))
    finally:
        stop(proc)
    s = d["summary"]
    return s["received_bits_per_second"] / 1e9, cpu / (s["received_bytes"] / 1e9)


def _iperf3(size: str, streams: int) -> tuple[float, float] | None:
    if shutil.which("iperf3") is None:
        return None
    port = _free_port()
    proc = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        # iperf3 buffers its "listening" line when stdout is not a terminal: watch the kernel's table
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _listening(port):
            time.sleep(0.01)
        d, cpu = _run_client(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", DURATION, "-l", size,
                              "-P", str(streams), "-J"])
    finally:
        stop(proc)
    s = d["end"]["sum_received"]
    return s["bits_per_second"] / 1e9, cpu / (s["bytes"] / 1e9)


def _case(size: str, streams: int) -> list[Row]:
    # Interleaved repeats, best rate of each kept: the 2 cores are shared, so one unlucky run
    # says more about the neighbours than about either tool.
    nks, ips = [], []
    for _ in range(REPEAT):
        nks.append(_netkit(size, streams))
        got = _iperf3(size, streams)
        if got is not None:
            ips.append(got)
    nk = max(nks)
    ip = max(ips) if ips else None
    label = f"tcp {streams} stream{'s' if streams > 1 else ''} -l {size}"
    note = "" if ip is not None else "iperf3 not installed"
    return [
        Row(f"{label} rate", nk[0], ip[0] if ip else None, "Gbit/s", note),
        Row(f"{label} client CPU", nk[1], ip[1] if ip else None, "s/GB", note or "lower is better"),
    ]


def single_default() -> list[Row]:
    return _case("128K", 1)


def two_default() -> list[Row]:
    return _case("128K", 2)


def single_1m() -> list[Row]:
    return _case("1M", 1)


def two_1m() -> list[Row]:
    return _case("1M", 2)


CASES = [single_default, two_default, single_1m, two_1m]
