"""Configuration and result models for ``netkit measure latency`` and ``measure loss`` (pure).

The JSON field names are exactly those of issue 4 (see README, "netkit measure latency");
``to_json`` builds them explicitly so that extra in-memory facts (which reflector answered,
whether kernel timestamps were used, an error text) never leak into the schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from netkit.core.accounting import AccountingSummary
from netkit.core.stats import Summary, summarize

METHODS = ("tcp-connect", "tcp-echo", "udp", "icmp")
NS_PER_MS = 1_000_000

#: What answered a UDP probe stream.
REFLECTOR_NETKIT = "netkit"
REFLECTOR_PLAIN = "plain-echo"


@dataclass(frozen=True)
class LatencyConfig:
    method: str = "tcp-connect"
    count: int | None = 10
    duration_s: float | None = None
    interval_s: float = 1.0
    timeout_s: float = 1.0
    size: int = 64
    family: int = 0  # socket.AF_UNSPEC
    kernel_timestamps: bool = True
    key: Any = None  # issue 10 (--key, method udp): a netkit.core.keyed.Key; probes are then signed

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}")


@dataclass(frozen=True)
class LossConfig:
    rate_pps: float = 1000.0
    duration_s: float = 10.0
    size: int = 64
    timeout_s: float = 1.0
    family: int = 0
    key: Any = None  # issue 10 (--key): a netkit.core.keyed.Key; probes are then signed


@dataclass(frozen=True)
class Thresholds:
    """Script thresholds and their verdict. ``failed`` names each breach in a short sentence."""

    max_loss_pct: float | None = None
    max_rtt_ms: float | None = None
    passed: bool = True
    failed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"max_loss_pct": self.max_loss_pct, "max_rtt_ms": self.max_rtt_ms,
                "passed": self.passed, "failed": list(self.failed)}


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v / NS_PER_MS, 6)


@dataclass(frozen=True)
class TargetResult:
    """One target's measurement."""

    target: str
    address: str | None
    acc: AccountingSummary
    reflector: str | None = None  # REFLECTOR_NETKIT, REFLECTOR_PLAIN or None (not UDP / no reply)
    kernel_timestamps: bool = False
    error: str | None = None
    elapsed_ns: int = 0
    #: How it was measured, for -v (e.g. "icmp datagram socket"); not part of the JSON schema.
    detail: str | None = None
    stats: Summary = field(default=None)  # type: ignore[assignment]
    #: How long the probes took to send (the span the achieved rate is over); 0: unknown.
    send_ns: int = 0

    def __post_init__(self) -> None:
        if self.stats is None:
            a = self.acc
            exact = a.samples_complete or a.streamed is None
            object.__setattr__(self, "stats", summarize(a.rtts_ns) if exact else a.streamed)

    @property
    def loss_pct(self) -> float | None:
        v = self.acc.loss_pct
        return None if v is None else round(v, 4)

    @property
    def samples_ms(self) -> list[float]:
        return [s / NS_PER_MS for s in self.acc.rtts_ns]

    @property
    def achieved_pps(self) -> float | None:
        """Probes sent per second of sending time (None when nothing was sent or no time passed)."""
        return achieved_rate(self.acc.sent, self.send_ns)

    def to_json(self, *, samples: bool = False) -> dict[str, Any]:
        s = self.stats
        a = self.acc
        return {
            "target": self.target,
            "address": self.address,
            "sent": a.sent,
            "received": a.received,
            "lost": a.lost,
            "loss_pct": self.loss_pct,
            "lost_forward": a.lost_forward,
            "lost_return": a.lost_return,
            "duplicates": a.duplicates,
            "reordered": a.reordered,
            "late": a.late,
            "rtt_ms": {
                "min": _ms(s.min), "avg": _ms(s.avg), "max": _ms(s.max), "mdev": _ms(s.mdev),
                "p50": _ms(s.p50), "p90": _ms(s.p90), "p95": _ms(s.p95), "p99": _ms(s.p99),
            },
            "jitter_ms": _ms(s.jitter),
            "ipdv_ms": _ms(s.ipdv),
            "samples_ms": [round(x, 6) for x in self.samples_ms] if samples else None,
            "local_drops": a.local_drops,
            "achieved_pps": None if self.achieved_pps is None else round(self.achieved_pps, 3),
        }


@dataclass(frozen=True)
class LatencyResult:
    method: str
    targets: list[TargetResult]
    thresholds: Thresholds
    interrupted: bool = False

    def to_json(self, *, samples: bool = False) -> dict[str, Any]:
        return {
            "method": self.method,
            "targets": [t.to_json(samples=samples) for t in self.targets],
            "thresholds": self.thresholds.to_json(),
            "interrupted": self.interrupted,
        }


@dataclass(frozen=True)
class LossResult:
    target: TargetResult
    thresholds: Thresholds
    rate_pps: float
    achieved_pps: float | None
    interrupted: bool = False

    def to_json(self, *, samples: bool = False) -> dict[str, Any]:
        return {
            "method": "udp",
            "targets": [self.target.to_json(samples=samples)],
            "thresholds": self.thresholds.to_json(),
            "rate_pps": self.rate_pps,
            "achieved_pps": None if self.achieved_pps is None else round(self.achieved_pps, 3),
            "interrupted": self.interrupted,
        }


#: How long a meter may go without reading before its replies overflow its receive buffer: a
#: busy 2-core machine leaves a process unscheduled for 0.1-0.2 s at times; a second is ample.
RCVBUF_HOLD_S = 1.0
#: What the kernel charges a small datagram beyond its payload (skb and its bookkeeping).
DATAGRAM_OVERHEAD = 768
#: The kernel's usual default receive buffer (net.core.rmem_default): never ask for less.
RCVBUF_FLOOR = 212_992


def achieved_rate(sent: int, send_ns: int) -> float | None:
    """Packets per second over the sending time; None when nothing was sent or no time passed."""
    if sent <= 0 or send_ns <= 0:
        return None
    return sent * 1e9 / send_ns


def shortfall_note(target: str, requested_pps: float, achieved_pps: float) -> str:
    """The one stderr line that says the sender could not keep up (a rate shortfall is not loss)."""
    return (f"{target}: the sender could not keep up: {achieved_pps:,.0f} packets/s achieved of "
            f"{requested_pps:,.0f} asked (a rate shortfall, not loss)")


def receive_buffer_bytes(rate_pps: float | None, size: int, cap_bytes: int) -> int:
    """The receive buffer a UDP meter asks for: ``RCVBUF_HOLD_S`` worth of replies at the rate.

    ``rate_pps`` None (as fast as possible) asks for ``cap_bytes``. Never below the kernel's usual
    default, never above ``cap_bytes``.
    """
    if rate_pps is None or rate_pps <= 0:
        return cap_bytes
    need = math.ceil(rate_pps * RCVBUF_HOLD_S) * (size + DATAGRAM_OVERHEAD)
    return max(RCVBUF_FLOOR, min(cap_bytes, need))


def local_drops_note(target: str, drops: int) -> str:
    """The line under the table when this host's socket buffer dropped replies."""
    return (f"{target}: {drops:,} replies dropped by this host's socket buffer, not counted as loss "
            "(raise net.core.rmem_max or lower the rate)")


def stall_probes(interval_s: float) -> int:
    """How many unanswered probes in a row at the end of a run mean the peer went away.

    At least 3, and at least one second's worth: random loss (even 10%) does not produce that,
    an interface going down or a peer dying mid-run does.
    """
    return max(3, math.ceil(1.0 / interval_s)) if interval_s > 0 else 3


def check_thresholds(targets: list[TargetResult], max_loss_pct: float | None,
                     max_rtt_ms: float | None, *, stall_after: int | None = None) -> Thresholds:
    """Apply ``--max-loss`` (percent, overall) and ``--max-rtt`` (against p95) to every target.

    A target with no reply at all fails too (as ping and fping exit 1), threshold or not; so does
    one that stopped answering mid-run (``stall_after`` unanswered probes in a row at the end).
    """
    failed: list[str] = []
    for t in targets:
        name = t.target
        if t.acc.received == 0:
            failed.append(f"{name}: {t.error}" if t.error else f"{name}: no reply")
            continue
        if stall_after is not None and t.acc.trailing_lost >= stall_after:
            failed.append(f"{name}: stopped answering (no reply to the last {t.acc.trailing_lost} probes)")
        loss = t.acc.loss_pct or 0.0
        if max_loss_pct is not None and loss > max_loss_pct:
            failed.append(f"{name}: loss {loss:.2f}% > max-loss {max_loss_pct:g}%")
        p95 = t.stats.p95
        if max_rtt_ms is not None and p95 is not None and p95 / NS_PER_MS > max_rtt_ms:
            failed.append(f"{name}: rtt p95 {p95 / NS_PER_MS:.3f} ms > max-rtt {max_rtt_ms:g} ms")
    return Thresholds(max_loss_pct, max_rtt_ms, not failed, tuple(failed))
