"""``netkit monitor``: the cost of a scrape, a round's wall time, and its RTT against a plain connect().

- exposition: rendering /metrics for 1000 targets through netkit's custom collector, against the
  same series held in prometheus_client's own Gauge/Counter/Histogram objects (the reference).
- round: one monitor round over 200 loopback targets (100 listening, 100 closed), wall time;
  reference: the same 200 targets probed by ``netkit probe`` (reachability only) in one process.
- rtt: the median tcp-connect RTT the monitor exports, against a blocking ``connect()`` loop in
  Python to the same listener (ANCHORS: about 18 us here).
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import Row

from netkit.core.monitor_config import CliSettings, build_config
from netkit.core.monitor_models import combine_round
from netkit.io.measure.monitor import Monitor

N_EXPO = 1000


def _best_ms(fn, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def exposition() -> list[Row]:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    targets = tuple(f"127.0.0.1:{10000 + i}" for i in range(N_EXPO))
    cfg = build_config(None, CliSettings(targets, {"interval": 10.0}))
    mon = Monitor(cfg)
    rtts = (120_000, 150_000, 900_000)
    for t in cfg.targets:
        mon.state.record(combine_round(t, probe_state="open", attempts=1, probe_error=None, address="127.0.0.1",
                                       sent=3, received=3, lost=0, rtts_ns=rtts, latency_error=None,
                                       duration_ns=200_000_000))
    reg = CollectorRegistry()
    labels = ["target", "method"]
    g1 = Gauge("netkit_probe_success", "x", labels, registry=reg)
    g2 = Gauge("netkit_probe_duration_seconds", "x", labels, registry=reg)
    h = Histogram("netkit_rtt_seconds", "x", labels, registry=reg, buckets=cfg.buckets)
    c = [Counter(n, "x", labels, registry=reg) for n in ("netkit_packets_sent", "netkit_packets_lost",
                                                         "netkit_probe_attempts", "netkit_monitor_rounds")]
    for t in cfg.targets:
        g1.labels(t.name, t.method).set(1)
        g2.labels(t.name, t.method).set(0.2)
        for ns in rtts:
            h.labels(t.name, t.method).observe(ns / 1e9)
        for counter in c:
            counter.labels(t.name, t.method).inc(3)
    ours = _best_ms(lambda: generate_latest(mon.registry))
    ref = _best_ms(lambda: generate_latest(reg))
    size = len(generate_latest(mon.registry))
    return [Row(f"exposition {N_EXPO} targets", ours, ref, "ms/scrape",
                f"{size / 1024:.0f} KiB; reference: prometheus_client Gauge/Counter/Histogram objects")]


def _listener() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(4096)
    return s


def round_and_rtt() -> list[Row]:
    from netkit.core.targets import Target
    from netkit.io.measure.probe import ProbeOptions, probe_many

    listeners = [_listener() for _ in range(100)]
    closed = []
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        closed.append(s)
    try:
        texts = tuple(f"127.0.0.1:{s.getsockname()[1]}" for s in listeners + closed)
        cfg = build_config(None, CliSettings(texts, {"interval": 5.0, "timeout": 0.5, "packets": 1,
                                                     "listen": ("127.0.0.1", 0)}))
        mon = Monitor(cfg)
        t0 = time.perf_counter()
        asyncio.run(mon.run(asyncio.Event(), rounds=1))
        ours = time.perf_counter() - t0
        targets = [Target("127.0.0.1", s.getsockname()[1]) for s in listeners + closed]
        t0 = time.perf_counter()
        asyncio.run(probe_many(targets, ProbeOptions(timeout_s=0.5)))
        ref = time.perf_counter() - t0
        rows = [Row("round 200 targets (100 open, 100 closed)", ours * 1e3, ref * 1e3, "ms",
                    "reference: netkit probe core alone (no latency packet, no metrics)")]

        # RTT: the monitor's exported median against blocking connect() to the same port.
        one = texts[0]
        cfg = build_config(None, CliSettings((one,), {"interval": 2.0, "timeout": 0.2, "packets": 200,
                                                      "packet_interval": 0.005, "listen": ("127.0.0.1", 0)}))
        mon = Monitor(cfg)
        asyncio.run(mon.run(asyncio.Event(), rounds=1))
        win = mon.state.windows[(one, "tcp-connect")]
        ours_us = statistics.median(win.last.rtts_ns) / 1e3 if win.last and win.last.rtts_ns else None
        port = listeners[0].getsockname()[1]
        samples = []
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t = time.perf_counter_ns()
            s.connect(("127.0.0.1", port))
            samples.append(time.perf_counter_ns() - t)
            s.close()
            time.sleep(0.005)
        rows.append(Row("tcp-connect rtt p50", ours_us, statistics.median(samples) / 1e3, "us",
                        "reference: blocking connect() loop in Python, same listener"))
        return rows
    finally:
        for s in listeners + closed:
            s.close()


CASES = [exposition, round_and_rtt]
