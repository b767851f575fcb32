"""Ground truth for ``measure throughput --latency``: the queue a tbf bottleneck builds.

client - r1 - server (``netns_chain(routers=1)``), ``tbf rate 20mbit`` on r1 both ways
(:mod:`netns_bottleneck`). While the command's download phase runs, a thread samples the backlog of
r1's queue towards the client; backlog x 8 / rate is the delay a packet joining it waits. The added
latency the command reports (loaded p50 minus idle p50) must be that delay within 30 % or 5 ms,
whichever is larger, for a large queue (``limit 250000``, up to 100 ms) and a small one
(``limit 15000``, 6 ms), against ``netkit serve tcp`` (echo probes) and ``iperf3 -s`` (ICMP).

Both sides leave out the queue's fill-up: the command through ``-O 1s`` (its probes in the omit
period count in no phase), the truth by leaving out the first second after the queue began to fill.
Four streams (-P 4) fill the large queue within that second; one CUBIC flow would take many. The
truth is the median of the backlog samples, as the reported figure is the probes' median (the
mean was within 15 % of it in every round tried); probes every 50 ms give 40 in the 2 s window.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import support
from netns_bottleneck import Bottleneck, qdisc_backlog, within

RATE = 20_000_000
NETKIT_PORT = "49100"
IPERF3_PORT = "49101"
FILL_S = 1.0  # left out of both the command's loaded window (-O) and the truth


@dataclass
class TimedBacklog:
    """Backlog samples of one qdisc with their times (a thread, until ``stop``)."""

    ns: str
    dev: str
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> TimedBacklog:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), qdisc_backlog(self.ns, self.dev)))
            self._stop.wait(0.03)

    def loaded_delay_ms(self, stat=statistics.median) -> float:
        """Queueing delay (the median of the samples, as the probes' p50 is theirs) from ``FILL_S``
        after the queue began to fill until it emptied."""
        busy = [(t, b) for t, b in self.samples if b > 0]
        assert busy, "the queue never filled"
        begin, end = busy[0][0] + FILL_S, busy[-1][0]
        kept = [b for t, b in self.samples if begin <= t <= end]
        assert len(kept) >= 10, f"only {len(kept)} backlog samples in the loaded window"
        return float(stat(kept)) * 8 / RATE * 1000.0


@pytest.fixture(scope="module")
def bottleneck() -> Iterator[Bottleneck]:
    support.require_root_netns()
    from netns_chain import netns_chain

    with netns_chain(routers=1) as chain:
        bn = Bottleneck(chain, rate_bit=RATE)
        srv = chain.popen_netkit("serve", "tcp", "--host", chain.server_ip(), "--port", NETKIT_PORT, ns=chain.server)
        try:
            support.wait_until(lambda: f":{NETKIT_PORT} " in chain.run(chain.server, "ss", "-ltnH"), timeout=10)
            yield bn
        finally:
            srv.terminate()
            srv.wait(10)


def _run(bn: Bottleneck, limit: int, port: str, *extra: str, code: int = 0) -> tuple[dict, float]:
    """One download phase with --latency through a queue of ``limit`` bytes: (the JSON, truth ms)."""
    bn.limit_bytes = limit
    bn.install()
    bn.wait_idle()
    chain = bn.chain
    with TimedBacklog(bn.router, "to-client") as sampler:
        res, _took = chain.netkit("--format", "json", "measure", "throughput", f"{chain.server_ip()}:{port}",
                                  "--latency", "-R", "-P", "4", "-O", f"{FILL_S:g}s", "-t", "2s", "--idle", "0.6s",
                                  "--latency-interval", "50ms", *extra, timeout=30)
    assert res.exit_code == code, res.stderr
    return json.loads(res.stdout), sampler.loaded_delay_ms()


def _check(doc: dict, truth_ms: float, probe: str) -> None:
    lat = doc["latency"]
    assert lat["probe"] == probe
    idle, loaded = lat["phases"]
    assert (idle["phase"], loaded["phase"]) == ("idle", "download")
    assert idle["probes"] >= 10 and loaded["probes"] >= 30 and loaded["lost"] == 0
    added = loaded["added_ms"]["p50"]
    assert within(added, truth_ms), f"added {added:.1f} ms, the queue held {truth_ms:.1f} ms"
    # the probes stay under 1 % of what they measure
    # The load really ran (a 10-packet queue leaves the link idle at times: 4 CUBIC flows carried
    # 9-16 Mbit/s of the 20 through it here).
    assert loaded["bits_per_second"] > 0.3 * RATE
    assert lat["probe_share_percent"] < 1.0
    assert lat["probe_bits_per_second"] / loaded["bits_per_second"] * 100 == pytest.approx(
        lat["probe_share_percent"], rel=1e-6)
    # the throughput document is the one without --latency, its fields untouched
    assert doc["reverse"] is True and doc["streams"] == 4 and "summary" in doc


@pytest.mark.parametrize("limit", [250_000, 15_000])
def test_added_latency_matches_the_queue_netkit_server(bottleneck: Bottleneck, limit: int) -> None:
    # --max-added-latency 15ms: the large queue fails the check (exit 1), the small one passes
    large = limit == 250_000
    doc, truth = _run(bottleneck, limit, NETKIT_PORT, "--max-added-latency", "15ms", code=1 if large else 0)
    _check(doc, truth, "echo")
    th = doc["latency"]["thresholds"]
    assert th["max_added_latency_ms"] == 15.0 and th["passed"] is not large
    if large:
        assert truth > 20.0  # the large queue did fill: the comparison means something
        assert th["failed"] and "download" in th["failed"][0]


def test_added_latency_matches_the_queue_iperf3_server(bottleneck: Bottleneck) -> None:
    if shutil.which("iperf3") is None:
        pytest.skip("iperf3 is not installed")
    chain = bottleneck.chain
    log = subprocess.Popen(["ip", "netns", "exec", chain.server, "iperf3", "-s", "-p", IPERF3_PORT,
                            "-B", chain.server_ip()],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        support.wait_until(lambda: f":{IPERF3_PORT} " in chain.run(chain.server, "ss", "-ltnH"), timeout=10)
        doc, truth = _run(bottleneck, 250_000, IPERF3_PORT)
    finally:
        log.terminate()
        out, _ = log.communicate(timeout=10)
    _check(doc, truth, "icmp")
    assert doc["server"] == "iperf3"
    assert "error" not in out.decode(errors="replace").lower()  # no extra connection upset it
