"""Configuration and result models for ``netkit trace`` (pure).

A trace sends rounds of probes with growing TTL (hop limit) toward each target; routers on the
way answer with ICMP Time Exceeded, the destination with Port Unreachable (udp), an Echo Reply
(icmp) or a SYN-ACK/RST (tcp). Per hop the results keep who answered, how often and how fast.

The JSON field names are the published schema; ``to_json`` builds them explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from netkit.core.stats import RttSummary

NS_PER_MS = 1_000_000

#: Where a reply came from, as the matcher classifies it.
DEFAULT_UDP_PORT = 33434  # traceroute's base port: high, unassigned, one more per probe
DEFAULT_TCP_PORT = 80
#: Probes sent at once before any answer (traceroute's -N is 16; fewer overshoot a near destination less).
DEFAULT_WINDOW = 8
#: Responders kept per hop by address; more are counted in ``other_replies`` (bounded memory).
MAX_RESPONDERS = 16


class TraceMethod(str, Enum):
    """The probe kind; the values are the ``--method`` words and the JSON."""

    UDP = "udp"  # datagrams to high ports, errors from the socket's error queue (unprivileged)
    ICMP = "icmp"  # echo requests on an ICMP datagram socket (unprivileged where ping_group_range allows)
    TCP = "tcp"  # SYN to a port; routers' errors need a raw ICMP socket

    def __str__(self) -> str:
        return self.value


class Answer(str, Enum):
    """What a matched reply says about its probe."""

    TIME_EXCEEDED = "time-exceeded"  # a router on the way: the hop
    DESTINATION = "destination"  # the target itself answered (port unreachable, echo reply, SYN-ACK/RST)
    UNREACHABLE = "unreachable"  # a router said the target cannot be reached (!H, !N, !X)
    FRAG_NEEDED = "frag-needed"  # a router's next link is too small for the probe (path MTU)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TraceConfig:
    method: TraceMethod = TraceMethod.UDP
    count: int | None = 10  # rounds; None: until duration
    duration_s: float | None = None
    interval_s: float = 1.0  # time between rounds
    timeout_s: float = 1.0  # how long one probe is waited for
    max_hops: int = 30
    first_hop: int = 1
    port: int | None = None  # udp: the first destination port (one more per probe) unless fixed_port
    size: int | None = None  # the whole IP packet, bytes; None: the method's default
    family: int = 0  # 0 any, else socket.AF_INET / AF_INET6
    resolve_names: bool = True
    pmtu: bool = False
    window: int = DEFAULT_WINDOW
    kernel_timestamps: bool = True

    @property
    def dest_port(self) -> int:
        if self.port is not None:
            return self.port
        return DEFAULT_TCP_PORT if self.method is TraceMethod.TCP else DEFAULT_UDP_PORT

    @property
    def fixed_port(self) -> bool:
        """udp with --port: every probe to that port (a firewall lets one through), matched by payload."""
        return self.method is TraceMethod.UDP and self.port is not None


@dataclass(frozen=True)
class ProbeSpec:
    """One probe to send: its sequence number (the matcher's key), TTL and round."""

    seq: int
    ttl: int
    round: int


@dataclass(frozen=True)
class HopEvent:
    """A probe's outcome: answered (``address`` and ``rtt_ns`` set) or timed out (both None)."""

    round: int
    ttl: int
    seq: int
    address: str | None
    rtt_ns: int | None
    answer: Answer | None
    mtu: int | None = None  # FRAG_NEEDED: the next-hop MTU the router reported

    @property
    def answered(self) -> bool:
        return self.address is not None


@dataclass(frozen=True)
class Responder:
    address: str
    name: str | None
    replies: int

    def share(self, received: int) -> float:
        return 0.0 if received <= 0 else self.replies / received


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v / NS_PER_MS, 6)


@dataclass(frozen=True)
class HopResult:
    """One TTL over all rounds."""

    ttl: int
    sent: int
    received: int
    responders: tuple[Responder, ...]
    rtt: RttSummary  # ns
    last_ns: float | None = None
    other_replies: int = 0  # replies from addresses beyond MAX_RESPONDERS
    destination: bool = False
    rate_limited: bool = False
    mtu: int | None = None  # --pmtu: the path MTU up to this hop (the smallest link from us to it)

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.received)

    @property
    def loss_pct(self) -> float | None:
        return None if self.sent == 0 else round(100.0 * self.lost / self.sent, 4)

    @property
    def silent(self) -> bool:
        """No reply at all: ``???``."""
        return self.received == 0

    @property
    def address(self) -> str | None:
        """The responder that answered most (None for a silent hop)."""
        return self.responders[0].address if self.responders else None

    def to_json(self) -> dict[str, Any]:
        s = self.rtt
        return {
            "ttl": self.ttl,
            "responders": [{"address": r.address, "name": r.name, "share": round(r.share(self.received), 4)}
                           for r in self.responders],
            "other_responders_share": round(self.other_replies / self.received, 4) if self.received else 0.0,
            "sent": self.sent,
            "received": self.received,
            "loss_pct": self.loss_pct,
            "rate_limited": self.rate_limited,
            "destination": self.destination,
            "rtt_ms": {"last": _ms(self.last_ns), "min": _ms(s.min), "avg": _ms(s.avg), "max": _ms(s.max),
                       "mdev": _ms(s.mdev), "p50": _ms(s.p50), "p95": _ms(s.p95), "jitter": _ms(s.jitter)},
            "mtu": self.mtu,
        }


@dataclass(frozen=True)
class MtuDrop:
    """Where the path MTU drops, numbered as tracepath numbers it: probes bigger than ``mtu`` reach
    hop ``ttl - 1`` (the router in front of the smaller link) but not hop ``ttl``. That router's
    "fragmentation needed" / "packet too big" answers a probe sent with TTL ``ttl`` (with TTL
    ``ttl - 1`` it answers Time Exceeded first), so tracepath prints it on that TTL's line:
    ``2:  198.18.0.2  pmtu 1400`` for the router at hop 1 (198.18.0.2) in front of a 1400-byte link."""

    ttl: int  # the first hop behind the smaller link: the first the smaller MTU applies to
    address: str | None  # the router that reported it, at hop ttl - 1 (None: no report came, found by search)
    mtu: int

    def to_json(self) -> dict[str, Any]:
        return {"ttl": self.ttl, "address": self.address, "mtu": self.mtu}


@dataclass(frozen=True)
class PmtuResult:
    """``--pmtu``: the path MTU to the destination and each drop on the way."""

    mtu: int | None  # None: not found (destination never reached)
    first_mtu: int | None  # the MTU of the first link (the local interface's)
    drops: tuple[MtuDrop, ...] = ()
    black_hole: bool = False  # some drop's report never came (big probes vanished): found by search

    def to_json(self) -> dict[str, Any]:
        return {"mtu": self.mtu, "first_mtu": self.first_mtu, "drops": [d.to_json() for d in self.drops],
                "black_hole": self.black_hole}


@dataclass(frozen=True)
class TargetTrace:
    """One target's trace."""

    target: str
    address: str | None
    method: TraceMethod
    reached: bool
    hops: tuple[HopResult, ...] = ()
    rounds: int = 0
    pmtu: PmtuResult | None = None
    error: str | None = None
    #: Which clocks timed most answers: "kernel-both" (kernel transmit and receive stamps),
    #: "kernel-rx" (wall clock before the send, kernel receive stamp) or "user"; None without answers.
    timestamps: str | None = None
    elapsed_ns: int = 0

    @property
    def destination(self) -> HopResult | None:
        return self.hops[-1] if self.reached and self.hops else None

    @property
    def destination_only_loss(self) -> bool:
        """The destination lost significantly more than the hop before it: loss that begins at the
        destination itself (real, or the destination limiting its ICMP answers)."""
        from netkit.core.trace_hops import loss_significantly_above  # trace_hops builds these models

        dest = self.destination
        if dest is None or not dest.lost:
            return False
        before = next((h for h in reversed(self.hops[:-1]) if h.received > 0), None)
        if before is None:
            return False
        return loss_significantly_above(dest.lost, dest.sent, before.lost, before.sent)

    @property
    def rate_limited_hops(self) -> tuple[int, ...]:
        return tuple(h.ttl for h in self.hops if h.rate_limited)

    def to_json(self) -> dict[str, Any]:
        dest = self.destination
        return {
            "target": self.target,
            "address": self.address,
            "method": str(self.method),
            "reached": self.reached,
            "hop_count": dest.ttl if dest is not None else None,
            "rounds": self.rounds,
            "loss_pct": dest.loss_pct if dest is not None else None,
            "hops": [h.to_json() for h in self.hops],
            "pmtu": None if self.pmtu is None else self.pmtu.to_json(),
            "rate_limited_hops": list(self.rate_limited_hops),
            "timestamps": self.timestamps,
            "error": self.error,
        }


@dataclass(frozen=True)
class TraceThresholds:
    max_loss_pct: float | None = None
    max_rtt_ms: float | None = None
    passed: bool = True
    failed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"max_loss_pct": self.max_loss_pct, "max_rtt_ms": self.max_rtt_ms, "passed": self.passed,
                "failed": list(self.failed)}


#: The note a table and the JSON carry when some hop's loss is the router's ICMP rate limit.
RATE_LIMIT_NOTE = ("loss at a hop that does not carry on to later hops is the router limiting its ICMP "
                   "replies, not packets lost in forwarding; --max-loss is judged on the destination")


#: The note when udp rounds come faster than a Linux destination answers port-unreachable.
UDP_DESTINATION_NOTE = ("loss that begins at the destination, with udp at more than one round a second, may be "
                        "the destination limiting its port-unreachable answers (Linux: about one a second), "
                        "not loss: --method icmp measures loss at that rate")


@dataclass(frozen=True)
class TraceResult:
    targets: tuple[TargetTrace, ...]
    config: TraceConfig
    thresholds: TraceThresholds = field(default_factory=TraceThresholds)
    interrupted: bool = False
    elapsed_ns: int = 0

    @property
    def notes(self) -> tuple[str, ...]:
        notes: list[str] = []
        if any(t.rate_limited_hops for t in self.targets):
            notes.append(RATE_LIMIT_NOTE)
        if self.config.method is TraceMethod.UDP and self.config.interval_s < 1.0 and any(
                t.destination_only_loss for t in self.targets):
            notes.append(UDP_DESTINATION_NOTE)
        return tuple(notes)

    def to_json(self) -> dict[str, Any]:
        return {
            "targets": [t.to_json() for t in self.targets],
            "method": str(self.config.method),
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_ns / 1e9, 6),
            "thresholds": self.thresholds.to_json(),
            "notes": list(self.notes),
        }


def check_trace_thresholds(targets: tuple[TargetTrace, ...], max_loss_pct: float | None,
                           max_rtt_ms: float | None) -> TraceThresholds:
    """A target passes when its destination answered, within ``--max-loss`` (judged on the destination
    only: loss at an intermediate hop may be ICMP rate limiting) and ``--max-rtt`` (destination p95)."""
    failed: list[str] = []
    for t in targets:
        dest = t.destination
        if dest is None:
            failed.append(f"{t.target}: {t.error}" if t.error else f"{t.target}: destination not reached")
            continue
        loss = dest.loss_pct or 0.0
        if max_loss_pct is not None and loss > max_loss_pct:
            failed.append(f"{t.target}: loss {loss:g}% > max-loss {max_loss_pct:g}%")
        p95 = dest.rtt.p95
        if max_rtt_ms is not None and p95 is not None and p95 / NS_PER_MS > max_rtt_ms:
            failed.append(f"{t.target}: rtt p95 {p95 / NS_PER_MS:.3f} ms > max-rtt {max_rtt_ms:g} ms")
    return TraceThresholds(max_loss_pct, max_rtt_ms, not failed, tuple(failed))
