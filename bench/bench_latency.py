"""``measure latency`` and ``measure loss`` side by side with sockperf and ping (loopback only).

Units: sockperf prints HALF the round trip unless ``--full-rtt``; it is always run with it here,
so both columns are full RTTs in microseconds (medians). sockperf ping-pong runs back-to-back by
default; netkit sends at a fixed interval, so sockperf also runs at the same rate (``--mps``).

Run: ``python bench/run.py latency`` (about 40 s).
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import statistics
import subprocess
import time

from benchlib import Row, netkit_argv, start_server, stop

N = 2000
INTERVAL = "1ms"
RATE = 1000  # = 1 / INTERVAL, for sockperf --mps


def _port(line: str) -> int:
    m = re.search(r":(\d+)\s*$", line)
    assert m, line
    return int(m.group(1))


def _netkit_p50_us(*args: str) -> float | None:
    out = subprocess.run(netkit_argv("measure", "latency", *args, "--format", "json"), capture_output=True,
                         text=True, timeout=120)
    doc = json.loads(out.stdout)
    p50 = doc["targets"][0]["rtt_ms"]["p50"]
    return None if p50 is None else p50 * 1000.0


def _sockperf_p50_us(port: int, tcp: bool, mps: int | None) -> float | None:
    argv = ["sockperf", "ping-pong", "-i", "127.0.0.1", "-p", str(port), "-t", "3", "-m", "64", "--full-rtt"]
    if tcp:
        argv.append("--tcp")
    if mps:
        argv += ["--mps", str(mps)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"percentile 50\.000 =\s*([0-9.]+)", out)
    return float(m.group(1)) if m else None


def _sockperf_server(tcp: bool) -> tuple[subprocess.Popen, int]:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["sockperf", "server", "-i", "127.0.0.1", "-p", str(port)] + (["--tcp"] if tcp else [])
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # sockperf prints no ready line we can rely on
    return proc, port


def _rtt_case(name: str, tcp: bool) -> list[Row]:
    if shutil.which("sockperf") is None:
        return [Row(name, None, None, "us", note="sockperf not installed")]
    if tcp:
        server, line = start_server(netkit_argv("serve", "tcp", "--port", "0"))
        method = "tcp-echo"
    else:
        server, line = start_server(netkit_argv("serve", "udp", "--mode", "echo", "--port", "0"))
        method = "udp"
    sp, sp_port = _sockperf_server(tcp)
    try:
        nk = _netkit_p50_us("--method", method, f"127.0.0.1:{_port(line)}", "-c", str(N), "-i", INTERVAL)
        ref_paced = _sockperf_p50_us(sp_port, tcp, RATE)
        ref_flat = _sockperf_p50_us(sp_port, tcp, None)
        nk_paced_vs_sockperf_server = _netkit_p50_us("--method", method, f"127.0.0.1:{sp_port}", "-c", str(N),
                                                     "-i", INTERVAL) if not tcp else None
    finally:
        stop(server)
        stop(sp)
    rows = [
        Row(f"{name} p50 RTT, {RATE}/s", nk, ref_paced, "us",
            note=f"netkit client+netkit server vs sockperf both sides, --full-rtt --mps {RATE}"),
        Row(f"{name} p50 RTT, sockperf back-to-back", nk, ref_flat, "us",
            note="sockperf without --mps (hot loop, no idle wake-ups)"),
    ]
    if nk_paced_vs_sockperf_server is not None:
        rows.append(Row(f"{name} p50 RTT, both vs sockperf server", nk_paced_vs_sockperf_server, ref_paced, "us",
                        note="same C server on both sides: client difference only (plain-echo path)"))
    return rows


def udp_rtt_vs_sockperf() -> list[Row]:
    return _rtt_case("udp", tcp=False)


def tcp_echo_rtt_vs_sockperf() -> list[Row]:
    return _rtt_case("tcp-echo", tcp=True)


def icmp_rtt_vs_ping() -> list[Row]:
    if shutil.which("ping") is None:
        return [Row("icmp p50 RTT", None, None, "us", note="ping not installed")]
    nk = _netkit_p50_us("--method", "icmp", "127.0.0.1", "-c", str(N), "-i", "2ms")
    out = subprocess.run(["ping", "-c", str(N), "-i", "0.002", "127.0.0.1"], capture_output=True, text=True,
                         timeout=120).stdout
    times = [float(x) * 1000.0 for x in re.findall(r"time=([0-9.]+) ms", out)]
    ref = statistics.median(times) if times else None
    return [Row("icmp p50 RTT, 2 ms interval", nk, ref, "us", note="ping -i 0.002 (prints 3 decimals of ms)")]


def loss_100k_pps() -> list[Row]:
    import psutil

    server, line = start_server(netkit_argv("serve", "udp", "--mode", "echo", "--port", "0"))
    try:
        sp = psutil.Process(server.pid)
        before = sp.cpu_times()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(netkit_argv("measure", "loss", f"127.0.0.1:{_port(line)}", "--rate", "100k",
                                         "--duration", "5s", "--format", "json"),
                             capture_output=True, text=True, timeout=120)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        after = sp.cpu_times()
    finally:
        stop(server)
    doc = json.loads(out.stdout)
    t = doc["targets"][0]
    client_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    refl_cpu = (after.user - before.user) + (after.system - before.system)
    note = (f"sent {t['sent']}, lost {t['lost']} (fwd {t['lost_forward']}, ret {t['lost_return']}); "
            f"CPU client {client_cpu:.2f}s, reflector {refl_cpu:.2f}s over 5 s")
    return [
        Row("loss 100k pps: achieved rate", doc["achieved_pps"], 100_000, "pps", note=note),
        Row("loss 100k pps: self-inflicted loss", t["loss_pct"], 0.5, "%", note="target: under 0.5%",
            ratio_of="netkit/target"),
    ]


CASES = [udp_rtt_vs_sockperf, tcp_echo_rtt_vs_sockperf, icmp_rtt_vs_ping, loss_100k_pps]
