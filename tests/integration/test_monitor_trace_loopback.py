"""``netkit monitor --method trace`` as a real process on loopback: one hop, scraped over HTTP.

The monitor runs on uvloop where installed, and its trace rounds in threads of their own, on the
trace engine's selector loop (uvloop stops watching a socket once poll reports the error queue's
POLLERR); several rounds with every hop answered prove the answers keep arriving round after round.
"""

from __future__ import annotations

import json
import signal
import urllib.request

import support
from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(address: str) -> dict[Sample, float]:
    """``{(sample name, sorted labels): value}`` from /metrics, via the official parser."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(values: dict[Sample, float], name: str, **labels: str) -> float | None:
    return values.get((name, tuple(sorted({"target": "127.0.0.1", "method": "trace", **labels}.items()))))


def test_loopback_trace_shows_one_hop() -> None:
    mon = support.start_netkit_server("monitor", "--method", "trace", "127.0.0.1", "--interval", "0.2s",
                                      "--listen", "127.0.0.1:0")
    try:
        where = f"{mon.host}:{mon.port}"

        def rounds_done() -> dict[Sample, float] | None:
            v = scrape(where)
            return v if (value(v, "netkit_monitor_rounds_total") or 0) >= 3 else None

        values = support.wait_until(rounds_done, timeout=10, interval=0.05)
    finally:
        code, _out, err = mon.stop(signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err
    n = value(values, "netkit_monitor_rounds_total")
    assert n is not None and n >= 3
    assert value(values, "netkit_trace_hops") == 1.0
    assert value(values, "netkit_probe_success") == 1.0
    assert value(values, "netkit_trace_hop_sent_total", ttl="1") == n
    assert value(values, "netkit_trace_hop_lost_total", ttl="1") == 0
    assert value(values, "netkit_trace_hop_loss_ratio", ttl="1") == 0.0
    assert value(values, "netkit_trace_hop_rate_limited", ttl="1") == 0.0
    assert value(values, "netkit_trace_hop_responses_total", ttl="1", address="127.0.0.1") == n
    assert value(values, "netkit_trace_hop_rtt_seconds_count", ttl="1") == n
    assert 0 < (value(values, "netkit_trace_hop_rtt_seconds_sum", ttl="1") or 0) < n * 0.05
    # Loopback is one hop: no series for a TTL beyond the destination.
    assert not [k for k in values if ("ttl", "2") in k[1]]


def test_trace_rounds_as_jsonl() -> None:
    res = support.run_netkit(["--format", "jsonl", "monitor", "--method", "trace", "127.0.0.1", "--interval",
                              "0.1s", "--rounds", "3", "--listen", "127.0.0.1:0"], timeout=30)
    assert res.exit_code == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    rounds = [line["targets"][0] for line in lines if line["event"] == "round"]
    assert len(rounds) == 3
    for r in rounds:
        assert r["success"] and r["hop_count"] == 1 and r["method"] == "trace"
        assert [h["ttl"] for h in r["hops"]] == [1] and r["hops"][0]["address"] == "127.0.0.1"
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["targets"][0]["hop_count"] == 1



def test_a_cancelled_round_closes_its_sockets_at_once() -> None:
    """A round cut short (a stop, an overrun) from the monitor's loop (uvloop where installed): its
    thread sees the cancel within the engine's longest wait and closes its sockets."""
    import asyncio
    import socket
    import time

    from netkit.core.monitor_config import CliSettings, build_config
    from netkit.io.aio import run
    from netkit.io.measure.monitor_trace import TraceThreads

    # A port that takes the probes and never answers: the destination stays silent, so the round
    # would wait for its 5 s timeout, then probe further.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        t = build_config(None, CliSettings((f"127.0.0.1:{port}",), {"method": "trace", "interval": 10.0,
                                                                    "timeout": 5.0})).targets[0]

        async def main() -> float:
            await asyncio.to_thread(lambda: None)  # the loop's executor and its wakeup descriptors, first
            before = support.open_fds()
            threads = TraceThreads()
            task = asyncio.ensure_future(threads.round(t))
            try:
                await asyncio.to_thread(support.wait_until, lambda: support.open_fds() - before, 2.0)  # probing
                await asyncio.sleep(0.1)
                task.cancel()
                start = time.monotonic()
                await asyncio.gather(task, return_exceptions=True)
                await asyncio.to_thread(support.wait_until, lambda: not support.open_fds() - before, 2.0)
                return time.monotonic() - start
            finally:
                threads.close()

        took = run(main())
    assert took < 0.5
