"""Per-hop statistics of a trace over its rounds, and the reading of its loss. Pure.

A probe counts for its TTL when its outcome is known (answered or timed out), so probes still in
flight are never reported as lost. Memory is bounded whatever the run's length or the path's
behaviour: at most ``MAX_RESPONDERS`` addresses per hop, each with its exact count since it was
kept (when a new address comes and the table is full, the address with the fewest replies, the
least recently seen among equals, gives up its place and its count goes to the hop's other
replies: a responder that keeps answering after a flood of one-off addresses still shows), and at
most ``MAX_EXACT_SAMPLES`` RTTs per hop kept for exact percentiles (beyond that the statistics
stream, with percentiles within one log bucket).

Loss at an intermediate hop that does not carry on to the hops after it cannot be packets lost in
forwarding (those would be missing further on too: forwarding loss only grows along the path): it
is the router limiting its ICMP replies. :func:`rate_limited` flags a hop whose loss is
significantly above the loss of some answering hop after it (a two-proportion z-test at
``RATE_LIMIT_SIGMAS``, which accounts for the noise of both hops' counts, so random forwarding loss
spread over later hops is not mistaken for it; every intermediate hop of a path whose routers all
limit their replies is flagged, as each is compared with the destination).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field, replace

from netkit.core.stats import StreamingStats, summarize_rtts
from netkit.core.trace_models import MAX_RESPONDERS, Answer, HopEvent, HopResult, Responder

MAX_EXACT_SAMPLES = 16384
#: Standard deviations above the downstream loss that a hop's loss must reach to be called rate limiting.
RATE_LIMIT_SIGMAS = 4.0


@dataclass
class _Hop:
    sent: int = 0
    received: int = 0
    replies: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)  # the received count at each kept address's last reply
    other: int = 0
    samples: array[int] = field(default_factory=lambda: array("q"))
    streaming: StreamingStats = field(default_factory=StreamingStats)
    last_ns: int | None = None
    mtu: int | None = None


def _count_reply(hop: _Hop, address: str) -> None:
    """One reply from ``address`` (``hop.received`` already counts it). Counts change in place, so
    a live view reading ``replies`` from another thread never misses a kept address."""
    replies = hop.replies
    hop.seen[address] = hop.received
    if address in replies:
        replies[address] += 1
        return
    if len(replies) >= MAX_RESPONDERS:
        evict = min(replies, key=lambda a: (replies[a], hop.seen[a]))  # fewest, then least recent
        hop.other += replies[evict]
        del replies[evict]
        del hop.seen[evict]
    replies[address] = 1


class HopTable:
    """Every TTL's counts, responders and RTTs for one target."""

    def __init__(self) -> None:
        self._hops: dict[int, _Hop] = {}
        self.dest_ttl: int | None = None
        self.dest_address: str | None = None
        self.unreachable_ttl: int | None = None

    def record(self, ev: HopEvent) -> bool:
        """Count one probe outcome; False when it is beyond the destination (not counted)."""
        if ev.answer is Answer.DESTINATION:
            if self.dest_ttl is None or ev.ttl < self.dest_ttl:
                self.dest_ttl = ev.ttl
                self.dest_address = ev.address
                for ttl in [t for t in self._hops if t > ev.ttl]:
                    del self._hops[ttl]  # a shorter path than first seen: those TTLs were the destination
        elif ev.answer is Answer.TIME_EXCEEDED and self.dest_ttl is not None and ev.ttl >= self.dest_ttl:
            self.dest_ttl = None  # a router where the destination was: the path got longer
        elif ev.answer is Answer.UNREACHABLE:
            self.unreachable_ttl = ev.ttl if self.unreachable_ttl is None else min(self.unreachable_ttl, ev.ttl)
        if self.dest_ttl is not None and ev.ttl > self.dest_ttl:
            return False
        hop = self._hops.setdefault(ev.ttl, _Hop())
        hop.sent += 1
        if ev.address is None or ev.rtt_ns is None:
            return True
        hop.received += 1
        _count_reply(hop, ev.address)
        rtt = max(0, ev.rtt_ns)
        hop.last_ns = rtt
        if len(hop.samples) < MAX_EXACT_SAMPLES:
            hop.samples.append(rtt)
        hop.streaming.add(rtt)
        return True

    def set_mtu(self, ttl: int, mtu: int) -> None:
        self._hops.setdefault(ttl, _Hop()).mtu = mtu

    @property
    def reached(self) -> bool:
        return self.dest_ttl is not None and self._hops.get(self.dest_ttl, _Hop()).received > 0

    def hops(self, names: dict[str, str | None] | None = None) -> tuple[HopResult, ...]:
        """Every TTL from the lowest probed to the destination (or the last one probed), in order."""
        if not self._hops:
            return ()
        top = self.dest_ttl if self.dest_ttl is not None else max(list(self._hops))
        if self.dest_ttl is None and self.unreachable_ttl is not None:
            top = min(top, self.unreachable_ttl)
        names = dict(names or {})
        results: list[HopResult] = []
        hops = dict(self._hops)  # one atomic copy: a live view may read while the loop records
        for ttl in range(min(hops), top + 1):
            h = hops.get(ttl)
            if h is None:
                continue
            replies = list(h.replies.items())
            responders = tuple(Responder(a, names.get(a), n)
                               for a, n in sorted(replies, key=lambda kv: (-kv[1], kv[0])))
            stats = summarize_rtts(h.samples) if h.received <= MAX_EXACT_SAMPLES else h.streaming.summary()
            results.append(HopResult(ttl=ttl, sent=h.sent, received=h.received, responders=responders,
                                     rtt=stats, last_ns=h.last_ns, other_replies=h.other,
                                     destination=ttl == self.dest_ttl, mtu=h.mtu))
        return flag_rate_limited(tuple(results))

    def addresses(self) -> set[str]:
        return {a for h in self._hops.values() for a in h.replies}


def loss_significantly_above(lost: int, sent: int, ref_lost: int, ref_sent: int) -> bool:
    """Is a loss of ``lost`` in ``sent`` significantly above ``ref_lost`` in ``ref_sent``? The
    two-proportion z-test with the pooled proportion, and half a probe of continuity correction."""
    if sent == 0 or ref_sent == 0 or lost == 0:
        return False
    p = (lost + ref_lost) / (sent + ref_sent)
    if p >= 1.0:
        return False
    sd = math.sqrt(p * (1.0 - p) * (1.0 / sent + 1.0 / ref_sent))
    return lost / sent - ref_lost / ref_sent > RATE_LIMIT_SIGMAS * sd + 0.5 / sent


def rate_limited(hops: tuple[HopResult, ...], index: int) -> bool:
    """Is hop ``index``'s loss the router's ICMP rate limit? Only when a hop after it answered with a
    loss significantly below it (forwarding loss at this hop would be missing there too)."""
    hop = hops[index]
    if hop.destination or hop.received == 0:
        return False  # a silent hop (``???``) sends no Time Exceeded at all: not a rate limit
    return any(loss_significantly_above(hop.lost, hop.sent, h.lost, h.sent)
               for h in hops[index + 1:] if h.received > 0)


def flag_rate_limited(hops: tuple[HopResult, ...]) -> tuple[HopResult, ...]:
    return tuple(replace(h, rate_limited=rate_limited(hops, i)) for i, h in enumerate(hops))
