"""Ground truth for ``measure responsiveness``: a 20 Mbit/s tbf bottleneck with a large queue and a
small one, nginx in the server namespace, each direction (an upload fills r1's queue towards the
server). The added latency netkit reports (its foreign probes under load minus idle) must match the
queueing delay the qdisc's backlog shows over the same window (30% or 5 ms), and RPM must be lower
with the large queue."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
import support
from netns_bottleneck import Bottleneck, qdisc_backlog, within
from netns_chain import Chain, netns_chain
from nginx_nq import NginxUnavailable, nginx_binary, nginx_nq

RATE = 20_000_000


@pytest.fixture(scope="module")
def chain_nginx() -> Iterator[tuple[Chain, str]]:
    support.require_root_netns()
    if nginx_binary() is None:
        pytest.skip("needs nginx (nginx-light)")
    with netns_chain(routers=1) as chain:
        try:
            with nginx_nq(chain.server_ip(), 48443, ns=chain.server) as srv:
                yield chain, srv.url
        except NginxUnavailable as exc:
            pytest.skip(str(exc))


class StampedSampler:
    """The download queue's backlog with the time of each sample."""

    def __init__(self, ns: str, dev: str) -> None:
        self.ns, self.dev = ns, dev
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), qdisc_backlog(self.ns, self.dev)))
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def delay_ms(self, t0: float, t1: float) -> float:
        kept = [b for t, b in self.samples if t0 <= t <= t1]
        assert kept, "no backlog sample in the window"
        return statistics.fmean(kept) * 8 / RATE * 1000


QUEUE_DEV = {"download": "to-client", "upload": "to-server"}  # r1's device whose queue the load fills


def run_once(chain: Chain, url: str, limit: int, direction: str = "download") -> tuple[dict, float]:
    bn = Bottleneck(chain, rate_bit=RATE, limit_bytes=limit)
    bn.install()
    bn.wait_idle()
    sampler = StampedSampler(bn.router, QUEUE_DEV[direction])
    proc = chain.popen_netkit("measure", "responsiveness", url, "-k", f"--{direction}-only", "--format", "jsonl",
                              "--max-duration", "6s", "--load-connections", "8")
    stamps: dict[int, float] = {}  # interval index -> when its event arrived
    summary = None
    assert proc.stdout is not None
    for raw in proc.stdout:
        event = json.loads(raw)
        if event["event"] == "interval":
            stamps[event["index"]] = time.monotonic()
        elif event["event"] == "summary":
            summary = event
    proc.wait(20)
    sampler.stop()
    assert summary is not None, proc.stderr.read().decode() if proc.stderr else ""
    d = summary["directions"][0]
    # The window the RPM came from: the last MAD intervals (their events arrive as each ends).
    n = d["intervals"]
    w0, w1 = d["window_s"]
    last = stamps[n - 1]
    truth = sampler.delay_ms(last - (w1 - w0), last)
    return summary, truth


@pytest.mark.parametrize("direction", ["download", "upload"])
def test_added_latency_matches_the_queue_and_rpm_falls(chain_nginx: tuple[Chain, str], direction: str) -> None:
    chain, url = chain_nginx
    big, truth_big = run_once(chain, url, 250_000, direction)
    small, truth_small = run_once(chain, url, 15_000, direction)
    db, ds = big["directions"][0], small["directions"][0]
    assert db["direction"] == ds["direction"] == direction
    report = (f"{direction}: "
              f"large queue: added {db['added_latency_ms']} ms vs backlog {truth_big:.1f} ms, RPM {db['rpm']}; "
              f"small: added {ds['added_latency_ms']} ms vs backlog {truth_small:.1f} ms, RPM {ds['rpm']}")
    print(report)
    assert db["goodput_bps"] > 0.7 * RATE and ds["goodput_bps"] > 0.5 * RATE, report
    assert truth_big > 40, f"the load did not fill the large queue: {report}"
    assert within(db["added_latency_ms"], truth_big), report
    assert within(ds["added_latency_ms"], truth_small), report
    assert db["rpm"] < ds["rpm"], report
