"""``netkit monitor``'s trace targets: one traced path per round, and its per-hop state. Pure.

A trace target's round is one trace round (``netkit.core.trace_plan`` and ``trace_hops`` through
``netkit.io.measure.trace``): every TTL up to the destination probed once. The round's hops come
here as :class:`TraceHop` records and :class:`TraceTotals` keeps, per TTL, what the Prometheus
collector exports:

- ``sent`` / ``lost`` counters: probes at that TTL whose outcome is known, and those unanswered;
- the loss ratio over the last ``window`` rounds (the dashboard's window), and whether that loss
  is the router limiting its ICMP replies (``netkit.core.trace_hops.rate_limited``: the later hops
  answered, so nothing was lost in forwarding);
- the answers per responding address (a route change or ECMP shows as a second address);
- an RTT histogram with the monitor's buckets, and the last RTT.

Memory is bounded whatever the path does: at most ``max_hops`` TTLs (the round never probes
further), at most :data:`MAX_HOP_ADDRESSES` addresses per TTL (later ones are counted together as
:data:`OTHER_ADDRESS`), and ``window`` rounds of loss per TTL. When the destination answers at a
lower TTL than before (a shorter path), the TTLs beyond it are dropped, as ``netkit trace`` drops them.

The destination's TTL is remembered across rounds (:attr:`TraceTotals.known_dest`), as
``netkit.core.trace_hops.HopTable`` keeps it over a run's rounds: it moves down when the destination
answers at a lower TTL, and is forgotten only when a router answers at or beyond it (the path got
longer). A round that hears no router there records no TTL beyond it: probes past the destination
meet the destination again, and when its answer at its own TTL was lost (its ICMP rate limit) and
a later probe's came through, counting them as hops would make the hop count and the hop series
flap with every lost answer. The io side also sends the next round's first window up to that TTL
only (``window_hint``), so a path that has not changed costs no probe past the destination.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netkit.core.stats import summarize_rtts
from netkit.core.trace_hops import flag_rate_limited
from netkit.core.trace_models import HopResult, TargetTrace

#: Responding addresses kept per TTL with their own label; more are counted as OTHER_ADDRESS.
MAX_HOP_ADDRESSES = 4
#: The ``address`` label of the answers from addresses beyond MAX_HOP_ADDRESSES.
OTHER_ADDRESS = "other"
DEFAULT_MAX_HOPS = 30


@dataclass(frozen=True)
class TraceHop:
    """One TTL in one round: probes sent and answered there, who answered, how fast."""

    ttl: int
    sent: int
    received: int
    address: str | None  # the responder (None: no answer, ``???``)
    rtt_ns: int | None
    destination: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"ttl": self.ttl, "address": self.address,
                "rtt_ms": None if self.rtt_ns is None else round(self.rtt_ns / 1e6, 6)}


def hops_of(trace: TargetTrace) -> tuple[TraceHop, ...]:
    """A one-round trace's hops as the monitor records them."""
    out = []
    for h in trace.hops:
        out.append(TraceHop(ttl=h.ttl, sent=h.sent, received=h.received, address=h.address,
                            rtt_ns=None if h.last_ns is None else int(h.last_ns), destination=h.destination))
    return tuple(out)


def hop_count(trace: TargetTrace) -> int | None:
    """The destination's TTL when the round reached it, else None."""
    dest = trace.destination
    return None if dest is None else dest.ttl


@dataclass
class HopTotals:
    """One TTL since the monitor started (counters, histogram) and over its last rounds (loss)."""

    buckets: tuple[float, ...]
    window: int
    sent_total: int = 0
    lost_total: int = 0
    replies: dict[str, int] = field(default_factory=dict)
    rtt_counts: list[int] = field(default_factory=list)  # per bucket (not cumulative) + one for +Inf
    rtt_sum_s: float = 0.0
    last_rtt_s: float | None = None
    recent: deque[tuple[int, int]] = field(default_factory=deque)  # (sent, received) per round

    def __post_init__(self) -> None:
        if not self.rtt_counts:
            self.rtt_counts = [0] * (len(self.buckets) + 1)

    def record(self, hop: TraceHop) -> None:
        self.sent_total += hop.sent
        self.lost_total += max(0, hop.sent - hop.received)
        self.recent.append((hop.sent, hop.received))
        while len(self.recent) > self.window:
            self.recent.popleft()
        if hop.address is not None:
            named = len(self.replies) - (OTHER_ADDRESS in self.replies)
            key = hop.address if hop.address in self.replies or named < MAX_HOP_ADDRESSES else OTHER_ADDRESS
            self.replies[key] = self.replies.get(key, 0) + hop.received
        if hop.rtt_ns is not None:
            s = hop.rtt_ns / 1e9
            self.rtt_counts[_bucket_index(self.buckets, s)] += 1
            self.rtt_sum_s += s
            self.last_rtt_s = s

    @property
    def window_sent(self) -> int:
        return sum(s for s, _ in self.recent)

    @property
    def window_received(self) -> int:
        return sum(r for _, r in self.recent)

    @property
    def loss_ratio(self) -> float | None:
        """Lost over sent across the window's rounds (None when nothing was sent)."""
        sent = self.window_sent
        return None if sent == 0 else (sent - self.window_received) / sent

    def cumulative(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*self.buckets, float("inf")), self.rtt_counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out


class TraceTotals:
    """Every TTL of one trace target, and the destination's hop count in the last round."""

    def __init__(self, buckets: tuple[float, ...], window: int) -> None:
        self.buckets = buckets
        self.window = window
        self.hops: dict[int, HopTotals] = {}
        self.hop_count: int | None = None  # the last round's destination TTL (None: not reached)
        self.known_dest: int | None = None  # the destination's TTL when it last answered (None: path changed)

    def resize(self, window: int) -> None:
        self.window = window
        for h in self.hops.values():
            h.window = window
            while len(h.recent) > window:
                h.recent.popleft()

    @property
    def window_hint(self) -> int | None:
        """How many TTLs the next round may probe at once: up to the known destination."""
        return self.known_dest

    def record(self, hops: Sequence[TraceHop], hop_count: int | None) -> None:
        """One round's hops and the TTL its destination answered at (None: not reached)."""
        known = self.known_dest
        router_beyond = known is not None and any(h.received and not h.destination for h in hops if h.ttl >= known)
        if known is None or router_beyond or (hop_count is not None and hop_count < known):
            self.known_dest = hop_count  # first seen, the path changed, or it got shorter
        else:
            # The destination is still at ``known``: whatever went further met it again.
            hops = [h for h in hops if h.ttl <= known]
            if hop_count is not None:
                hop_count = known
        self.hop_count = hop_count
        if self.known_dest is not None:
            for ttl in [t for t in self.hops if t > self.known_dest]:
                del self.hops[ttl]  # beyond the destination
        for hop in hops:
            h = self.hops.get(hop.ttl)
            if h is None:
                h = self.hops[hop.ttl] = HopTotals(self.buckets, self.window)
            h.record(hop)

    def rate_limited(self) -> dict[int, bool]:
        """Per TTL: is its loss the router's ICMP rate limit (later hops answered)? Judged on the totals
        since the start, not the window: a few rounds are too few to tell a rate limit from chance."""
        empty = summarize_rtts([])
        ttls = sorted(self.hops)
        results = tuple(HopResult(ttl=t, sent=self.hops[t].sent_total,
                                  received=self.hops[t].sent_total - self.hops[t].lost_total,
                                  responders=(), rtt=empty, destination=t == self.hop_count) for t in ttls)
        return {h.ttl: h.rate_limited for h in flag_rate_limited(results)}


def _bucket_index(bounds: Sequence[float], value: float) -> int:
    for i, b in enumerate(bounds):
        if value <= b:
            return i
    return len(bounds)
