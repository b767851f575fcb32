"""A bottleneck router for latency-under-load tests: ``tc tbf`` on the router of a one-router chain.

``chain = netns_chain(routers=1)`` gives client - r1 - server (see :mod:`netns_chain`); this module puts
a token bucket on r1's egress towards the server (upload) and towards the client (download), and reads
the truth about the queue it builds: the qdisc's backlog in bytes, sampled while the load runs.
Backlog x 8 / rate is the queueing delay a packet joining the queue waits.

    with netns_chain(routers=1) as chain:
        bn = Bottleneck(chain, rate_bit=20_000_000, limit_bytes=250_000)
        bn.install()
        sampler = bn.sample("download")      # starts a thread sampling r1 -> client
        ... run the load ...
        truth_ms = sampler.stop()            # mean queueing delay over the samples, ms

The kernel here has tbf, htb, pfifo and bfifo, no netem/fq_codel/cake: a small ``limit`` stands in for
a managed queue. Offloads stay on: tbf segments GSO packets larger than its burst itself.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field

from netns_chain import Chain

# The router's devices are named after the neighbour they lead to (see netns_chain._Link.dev).
_DEV = {"upload": "to-server", "download": "to-client"}


@dataclass
class BacklogSampler:
    """Samples one qdisc's backlog every ``period_s`` in a thread until :meth:`stop`."""

    ns: str
    dev: str
    rate_bit: float
    period_s: float = 0.05
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> BacklogSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(qdisc_backlog(self.ns, self.dev))
            self._stop.wait(self.period_s)

    def stop(self) -> float:
        """Stop sampling; the mean queueing delay over the samples, ms."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.delay_ms()

    def delay_ms(self, skip_first: float = 0.0) -> float:
        """Mean backlog as delay (ms), leaving out the first ``skip_first`` fraction of samples
        (the queue filling up)."""
        kept = self.samples[int(len(self.samples) * skip_first):]
        if not kept:
            return 0.0
        return statistics.fmean(kept) * 8 / self.rate_bit * 1000.0


def qdisc_backlog(ns: str, dev: str) -> int:
    """Bytes queued in the root qdisc of ``dev`` in ``ns`` now."""
    out = subprocess.run(["ip", "netns", "exec", ns, "tc", "-s", "-j", "qdisc", "show", "dev", dev],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    for q in json.loads(out):
        if q.get("root") or q.get("parent") in (None, "root"):
            return int(q.get("backlog", 0))
    return 0


@dataclass
class Bottleneck:
    """A tbf of ``rate_bit`` with a queue of ``limit_bytes`` on r1, both directions."""

    chain: Chain
    rate_bit: int = 20_000_000
    limit_bytes: int = 250_000
    burst_bytes: int = 16_000

    @property
    def router(self) -> str:
        return self.chain.router(1)

    def install(self) -> None:
        for dev in _DEV.values():
            self.chain.run(self.router, "tc", "qdisc", "replace", "dev", dev, "root", "tbf",
                           "rate", f"{self.rate_bit}bit", "burst", str(self.burst_bytes),
                           "limit", str(self.limit_bytes))

    def queue_capacity_ms(self) -> float:
        """The longest queueing delay this queue can hold (a full queue), ms."""
        return self.limit_bytes * 8 / self.rate_bit * 1000.0

    def sample(self, direction: str, period_s: float = 0.05) -> BacklogSampler:
        """Start sampling the queue that ``direction`` ("download" or "upload") fills."""
        return BacklogSampler(self.router, _DEV[direction], self.rate_bit, period_s).start()

    def wait_idle(self, timeout_s: float = 5.0) -> None:
        """Wait until both queues are empty (a previous load has drained)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(qdisc_backlog(self.router, dev) == 0 for dev in _DEV.values()):
                return
            time.sleep(0.05)


def within(measured_ms: float, truth_ms: float, rel: float = 0.30, abs_ms: float = 5.0) -> bool:
    """The issue's tolerance: within 30% of the truth or 5 ms, whichever is larger."""
    return abs(measured_ms - truth_ms) <= max(rel * truth_ms, abs_ms)
