"""``netkit monitor --method trace`` as a real process on loopback: one hop, scraped over HTTP.

The monitor runs on uvloop where installed, and its trace rounds on a plain asyncio loop of their
own (uvloop stops watching a socket once poll reports the error queue's POLLERR); several rounds
with every hop answered prove the answers keep arriving round after round.
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


def test_trace_loop_runs_on_asyncio_and_cancels_there() -> None:
    """From a uvloop (where installed) loop: the coroutine runs on asyncio's selector loop in another
    thread; cancelling the caller cancels it there; close() ends the thread."""
    import asyncio
    import threading

    from netkit.io.aio import run
    from netkit.io.measure.monitor_trace import TraceLoop

    seen: dict[str, object] = {}
    cancelled = threading.Event()

    async def where() -> str:
        loop = asyncio.get_running_loop()
        seen["thread"] = threading.current_thread().name
        return type(loop).__module__

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> tuple[str, str]:
        trace_loop = TraceLoop()
        try:
            module = await trace_loop.call(where())
            task = asyncio.ensure_future(trace_loop.call(forever()))
            await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert await asyncio.to_thread(cancelled.wait, 5.0)
        finally:
            trace_loop.close()
        return module, type(asyncio.get_running_loop()).__module__

    module, outer = run(main())
    assert module.startswith("asyncio") and seen["thread"] == "netkit-monitor-trace"
    assert not [t for t in threading.enumerate() if t.name == "netkit-monitor-trace"]
    assert outer  # the caller's loop: uvloop where installed, asyncio otherwise
