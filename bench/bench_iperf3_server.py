"""iperf3's own client against two servers, in one run: ``iperf3 -s`` and ``netkit serve iperf3``.

Cases (TCP on loopback, iperf3's default 128 KiB blocks, the client sends, the server receives):

- 1 stream and ``-P 4``: one ``iperf3 -c`` against one ``iperf3 -s``, then against one
  ``netkit serve iperf3``. Figures: the rate the client's ``-J`` reports received (Gbit/s;
  target netkit >= 1.0x) and the *server's* CPU time per GB received (user + system ticks from
  ``/proc/<pid>/stat`` of the server and any process it started, sampled just before and after
  the clients run; target netkit <= 1.2x).
- 8 clients at once: against one netkit server (what ``iperf3 -s`` cannot do: it answers the
  second client "busy"), and against 8 separate ``iperf3 -s`` processes on 8 ports, iperf3's
  own way to serve 8 clients. Figures: the aggregate rate (the sum of the 8 clients' received
  rates over the same seconds) and the servers' CPU per GB.

Each pair runs ``REPEAT`` times, interleaved, and the best rate of each side is kept with that
run's CPU figure: the 2 cores are shared, so one unlucky run says more about the neighbours than
about either server. Only ratios measured side by side compare (the machine varies 2x by day).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from benchlib import Row, netkit_argv, start_server, stop

DURATION = "5"
REPEAT = 3
CLIENTS = 8
_TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    """A port free for TCP and UDP (iperf3 cannot bind port 0)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def _listening(port: int) -> bool:
    hexport = f":{port:04X} "
    with open("/proc/net/tcp") as f:
        return any(hexport in line and line.split()[3] == "0A" for line in f)


def _tree(pid: int) -> list[int]:
    """``pid`` and every process under it (a server may run workers in processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _cpu_s(pids: list[int]) -> float:
    """User + system seconds of these servers and their processes so far (every thread counted)."""
    total = 0
    for root in pids:
        for p in _tree(root):
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / _TICK


@contextmanager
def _iperf3_servers(n: int) -> Iterator[tuple[list[int], list[int]]]:
    """``n`` separate ``iperf3 -s`` on ``n`` ports: (ports, pids)."""
    procs, ports = [], []
    try:
        for _ in range(n):
            port = _free_port()
            procs.append(subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          stdin=subprocess.DEVNULL))
            ports.append(port)
        # iperf3 buffers its "listening" line when stdout is not a terminal: watch the kernel's table
        deadline = time.monotonic() + 10
        while not all(_listening(p) for p in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("iperf3 -s did not start listening")
            time.sleep(0.01)
        yield ports, [p.pid for p in procs]
    finally:
        for p in procs:
            stop(p)


@contextmanager
def _netkit_server(clients: int) -> Iterator[tuple[list[int], list[int]]]:
    """One ``netkit serve iperf3``; its port ``clients`` times (every client comes to it)."""
    proc, line = start_server(netkit_argv("serve", "iperf3", "--port", "0"))
    try:
        port = int(line.rsplit(":", 1)[1].split()[0])
        yield [port] * clients, [proc.pid]
    finally:
        stop(proc)


def _netkit_available() -> bool:
    p = subprocess.run(netkit_argv("serve", "iperf3", "--help"), capture_output=True, stdin=subprocess.DEVNULL)
    return p.returncode == 0


def _clients(ports: list[int], pids: list[int], streams: int) -> tuple[float, float]:
    """One ``iperf3 -c`` per port, all at once: (aggregate received Gbit/s, server CPU s per GB)."""
    cpu0 = _cpu_s(pids)
    procs = [subprocess.Popen(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", DURATION, "-P", str(streams),
                               "-J"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for port in ports]
    outs = [p.communicate(timeout=120) for p in procs]
    cpu = _cpu_s(pids) - cpu0
    bps = total = 0.0
    for p, (out, err) in zip(procs, outs, strict=True):
        doc = json.loads(out) if out.strip() else {}
        if p.returncode != 0 or "error" in doc:
            raise RuntimeError(f"iperf3 -c failed: {doc.get('error') or err.decode(errors='replace')[-300:]}")
        s = doc["end"]["sum_received"]
        bps += s["bits_per_second"]
        total += s["bytes"]
    return bps / 1e9, cpu / (total / 1e9)


Servers = Callable[[int], AbstractContextManager[tuple[list[int], list[int]]]]


def _one(server: Servers, clients: int, streams: int) -> tuple[float, float]:
    with server(clients) as (ports, pids):
        return _clients(ports, pids, streams)


def _case(label: str, clients: int, streams: int) -> list[Row]:
    if shutil.which("iperf3") is None:
        return [Row(label, None, None, "Gbit/s", note="iperf3 not installed")]
    have_netkit = _netkit_available()
    nks, ips = [], []
    for _ in range(REPEAT):
        if have_netkit:
            nks.append(_one(_netkit_server, clients, streams))
        ips.append(_one(_iperf3_servers, clients, streams))
    nk = max(nks) if nks else None
    ip = max(ips)
    note = "" if nk else "this netkit has no serve iperf3"
    ref = f"{clients} iperf3 -s" if clients > 1 else "iperf3 -s"
    return [
        Row(f"{label} rate", nk[0] if nk else None, ip[0], "Gbit/s", note or f"vs {ref}; target >= 1.0"),
        Row(f"{label} server CPU", nk[1] if nk else None, ip[1], "s/GB",
            note or f"vs {ref}; lower is better, target <= 1.2"),
    ]


def tcp_one_stream() -> list[Row]:
    return _case("iperf3 -c -> server, 1 stream", 1, 1)


def tcp_four_streams() -> list[Row]:
    return _case("iperf3 -c -> server, -P 4", 1, 4)


def eight_clients() -> list[Row]:
    return _case(f"{CLIENTS} iperf3 -c at once -> one netkit", CLIENTS, 1)


CASES = [tcp_one_stream, tcp_four_streams, eight_clients]
