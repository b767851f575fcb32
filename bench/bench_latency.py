"""``measure latency`` and ``measure loss`` side by side with sockperf and ping (loopback only).

Units: sockperf prints HALF the round trip unless ``--full-rtt``; it is always run with it here,
so both columns are full RTTs in microseconds (medians). sockperf ping-pong runs back-to-back by
default; netkit sends at a fixed interval, so sockperf also runs at the same rate (``--mps``).

The machine is shared: each pair is measured ROUNDS times, alternating netkit and the
reference, and the row shows the median of the per-round medians (all rounds in the note).

Run: ``python bench/run.py latency`` (about 3 minutes); the ICMP case alone:
``python bench/run.py icmp_rtt_vs_ping`` (about 40 s).
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
ROUNDS = 3
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
    target = f"127.0.0.1:{_port(line)}"
    runs: dict[str, list[float]] = {"nk": [], "nk_user": [], "paced": [], "flat": []}
    try:
        for _ in range(ROUNDS):
            for key, fn in (
                ("nk", lambda: _netkit_p50_us("--method", method, target, "-c", str(N), "-i", INTERVAL)),
                ("paced", lambda: _sockperf_p50_us(sp_port, tcp, RATE)),
                ("nk_user", lambda: _netkit_p50_us("--method", method, target, "-c", str(N), "-i", INTERVAL,
                                                   "--no-kernel-timestamps")),
                ("flat", lambda: _sockperf_p50_us(sp_port, tcp, None)),
            ):
                v = fn()
                if v is not None:
                    runs[key].append(v)
    finally:
        stop(server)
        stop(sp)

    def med(key: str) -> float | None:
        return statistics.median(runs[key]) if runs[key] else None

    def seen(*keys: str) -> str:
        return "; ".join(f"{k} rounds " + "/".join(f"{v:.1f}" for v in runs[k]) for k in keys)

    return [
        Row(f"{name} p50 RTT, {RATE}/s", med("nk"), med("paced"), "us",
            note=f"netkit client+server vs sockperf both sides, --full-rtt --mps {RATE}; {seen('nk', 'paced')}"),
        Row(f"{name} p50 RTT, sockperf back-to-back", med("nk"), med("flat"), "us",
            note=f"sockperf without --mps (hot loop, no idle wake-ups); {seen('flat')}"),
        Row(f"{name} p50 RTT, netkit --no-kernel-timestamps", med("nk_user"), med("paced"), "us",
            note=f"netkit timed at Python's read instead of the kernel's receive; {seen('nk_user')}"),
    ]


def udp_rtt_vs_sockperf() -> list[Row]:
    return _rtt_case("udp", tcp=False)


def tcp_echo_rtt_vs_sockperf() -> list[Row]:
    return _rtt_case("tcp-echo", tcp=True)


ICMP_N = 1000
ICMP_ROUNDS = 5
PING_ARGV = ["ping", "-c", str(ICMP_N), "-i", "0.002", "127.0.0.1"]


def _netkit_icmp() -> tuple[float, float, str] | None:
    """netkit's (p50 us, mean us, timestamps) for ICMP_N echoes to 127.0.0.1 every 2 ms."""
    out = subprocess.run(netkit_argv("measure", "latency", "--method", "icmp", "-i", "2ms", "-c", str(ICMP_N),
                                     "127.0.0.1", "--format", "json"), capture_output=True, text=True, timeout=120)
    t = json.loads(out.stdout)["targets"][0]
    if t["rtt_ms"]["p50"] is None:
        return None
    return t["rtt_ms"]["p50"] * 1000.0, t["rtt_ms"]["avg"] * 1000.0, str(t.get("timestamps"))


def _ping_figures(out: str) -> tuple[float, float] | None:
    """ping's (p50 us, mean us) from its reply lines."""
    times = [float(x) * 1000.0 for x in re.findall(r"time=([0-9.]+) ms", out)]
    return (statistics.median(times), statistics.fmean(times)) if times else None


def _ping_icmp() -> tuple[float, float] | None:
    return _ping_figures(subprocess.run(PING_ARGV, capture_output=True, text=True, timeout=120).stdout)


def _icmp_round(concurrent: bool, ping_first: bool) -> tuple[float, float, float, float, str] | None:
    """One round: (netkit p50, ping p50, netkit mean, ping mean, netkit's timestamps)."""
    nk: tuple[float, float, str] | None
    ref: tuple[float, float] | None
    if concurrent:  # both at once: the same machine state for both (each sleeps 2 ms between echoes)
        proc = subprocess.Popen(PING_ARGV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            nk = _netkit_icmp()
        finally:
            out, _ = proc.communicate(timeout=120)
        ref = _ping_figures(out)
    elif ping_first:
        ref, nk = _ping_icmp(), _netkit_icmp()
    else:
        nk, ref = _netkit_icmp(), _ping_icmp()
    if nk is None or ref is None:
        return None
    return nk[0], ref[0], nk[1], ref[1], nk[2]


def icmp_rtt_vs_ping() -> list[Row]:
    """netkit's ICMP p50 against ping's on loopback, ICMP_ROUNDS rounds each way.

    "at once": ping runs while netkit runs (the same moments of the machine); "in turn": one after
    the other, the order alternating. netkit times kernel to kernel (transmit stamp from the error
    queue, receive stamp with the reply: ``timestamps`` "kernel-both" in its JSON); ping from
    gettimeofday() before its send to the kernel's receive stamp. ping prints whole microseconds below
    1 ms (``time=0.005 ms``), so its p50 is a whole number of us, and one us moves the ratio by about
    0.2 at 5 us: the means (finer) are in the last row.
    """
    if shutil.which("ping") is None:
        return [Row("icmp p50 RTT", None, None, "us", note="ping not installed")]
    rows: list[Row] = []
    for label, concurrent in (("at once", True), ("in turn", False)):
        rounds = [r for i in range(ICMP_ROUNDS) if (r := _icmp_round(concurrent, i % 2 == 1)) is not None]
        if not rounds:
            rows.append(Row(f"icmp p50 RTT, 2 ms interval, {label}", None, None, "us", note="no round gave both"))
            continue
        ratios = [r[0] / r[1] for r in rounds if r[1]]
        kinds = "/".join(sorted({r[4] for r in rounds}))
        per_round = "; ".join(f"{r[0]:.1f}/{r[1]:.0f}" for r in rounds)
        rows.append(Row(
            f"icmp p50 RTT, 2 ms interval, {label}", statistics.median(r[0] for r in rounds),
            statistics.median(r[1] for r in rounds), "us",
            note=(f"ping -i 0.002 -c {ICMP_N}; {len(rounds)} rounds netkit/ping p50 {per_round}; ratio range "
                  f"{min(ratios):.2f}-{max(ratios):.2f} (target <= 1.2); netkit timestamps {kinds}")))
        if concurrent:
            mean_ratios = [r[2] / r[3] for r in rounds if r[3]]
            rows.append(Row(
                f"icmp mean RTT, 2 ms interval, {label}", statistics.median(r[2] for r in rounds),
                statistics.median(r[3] for r in rounds), "us",
                note=(f"means (ping's whole-us samples average finer); ratio range {min(mean_ratios):.2f}-"
                      f"{max(mean_ratios):.2f}; " + "; ".join(f"{r[2]:.1f}/{r[3]:.1f}" for r in rounds))))
    return rows


def loss_100k_pps() -> list[Row]:
    import psutil

    server, line = start_server(netkit_argv("serve", "udp", "--mode", "echo", "--port", "0"))
    rounds: list[tuple[float, float, float, float, dict]] = []
    try:
        sp = psutil.Process(server.pid)
        for _ in range(ROUNDS):
            before = sp.cpu_times()
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(netkit_argv("measure", "loss", f"127.0.0.1:{_port(line)}", "--rate", "100k",
                                             "--duration", "5s", "--format", "json"),
                                 capture_output=True, text=True, timeout=120)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            after = sp.cpu_times()
            doc = json.loads(out.stdout)
            t = doc["targets"][0]
            client_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            refl_cpu = (after.user - before.user) + (after.system - before.system)
            rounds.append((t["loss_pct"], doc["achieved_pps"], client_cpu, refl_cpu, t))
    finally:
        stop(server)
    loss = statistics.median(r[0] for r in rounds)
    rate = statistics.median(r[1] for r in rounds)
    note = "; ".join(f"loss {r[0]:.3f}% (fwd {r[4]['lost_forward']}, ret {r[4]['lost_return']}) "
                     f"at {r[1]:,.0f} pps, CPU client {r[2]:.2f}s reflector {r[3]:.2f}s per 5 s" for r in rounds)
    return [
        Row("loss 100k pps: achieved rate", rate, 100_000, "pps", note=f"median of {ROUNDS} rounds of 5 s"),
        Row("loss 100k pps: self-inflicted loss", loss, 0.5, "%", note=f"target under 0.5%; {note}",
            ratio_of="netkit/target"),
    ]


CASES = [udp_rtt_vs_sockperf, tcp_echo_rtt_vs_sockperf, icmp_rtt_vs_ping, loss_100k_pps]
