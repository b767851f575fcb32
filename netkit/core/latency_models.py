"""Configuration and result models for ``netkit measure latency`` and ``measure loss`` (pure).

The JSON field names are the published schema (see README, "netkit measure latency");
``to_json`` builds them explicitly so that extra in-memory facts (which reflector answered,
how the prober measured, an error text) never leak into the schema; which clocks timed the
replies is published, as ``timestamps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from netkit.core.accounting import Accounting, AccountingSummary, ProbeOutcome
from netkit.core.kernel_rtt import Timestamps
from netkit.core.stats import RttSummary, summarize_rtts

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.keyed import Key
    from netkit.core.targets import Target

NS_PER_MS = 1_000_000


class Method(str, Enum):
    """How ``measure latency`` takes a round trip; the values are the ``--method`` words and JSON."""

    TCP_CONNECT = "tcp-connect"  # handshake time
    TCP_ECHO = "tcp-echo"  # request/response on one connection to an echo server
    UDP = "udp"  # probe packets to a reflector
    ICMP = "icmp"  # echo request

    def __str__(self) -> str:
        return self.value

    @property
    def has_ports(self) -> bool:
        """False for ICMP: a target is a host alone."""
        return self is not Method.ICMP


METHODS = tuple(m.value for m in Method)


class ReflectorKind(str, Enum):
    """What answered a UDP probe stream."""

    NETKIT = "netkit"  # netkit's reflector: it counts what it received, so loss splits by direction
    PLAIN = "plain-echo"  # any other UDP echo: round trip only

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LatencyConfig:
    method: Method = Method.TCP_CONNECT
    count: int | None = 10
    duration_s: float | None = None
    interval_s: float = 1.0
    timeout_s: float = 1.0
    size: int = 64
    family: int = 0  # socket.AF_UNSPEC
    kernel_timestamps: bool = True
    #: A measurement key (``--key``, method udp only): probes are signed so a keyed reflector answers.
    key: Key | None = None

    def __post_init__(self) -> None:
        try:  # callers may pass the method's word ("udp"): hold the Enum member
            object.__setattr__(self, "method", Method(self.method))
        except ValueError:
            raise ValueError(f"unknown method {self.method!r}") from None


@dataclass(frozen=True)
class LossConfig:
    rate_pps: float = 1000.0
    duration_s: float = 10.0
    size: int = 64
    timeout_s: float = 1.0
    family: int = 0
    #: A measurement key (``--key``): probes are signed so a keyed reflector answers.
    key: Key | None = None


def target_label(target: Target, method: Method | str) -> str:
    """How a target is named in output: ``HOST:PORT``, or the host alone for ICMP (no ports)."""
    if Method(method) is Method.ICMP:
        return f"[{target.host}]" if ":" in target.host else target.host
    return str(target)


@dataclass(frozen=True)
class ProbeEvent:
    """One thing that happened to one probe, as it happens: a reply (any kind), a timeout or an error."""

    target: str
    address: str | None
    seq: int
    kind: ProbeOutcome  # OK, LATE, DUPLICATE, TIMEOUT or ERROR (e.g. connection refused)
    rtt_ns: int | None
    reordered: bool
    size: int
    error: str | None = None


@dataclass(frozen=True)
class LiveTarget:
    """One target while a run goes on: its label and its running accounting (read by a live view)."""

    label: str
    acc: Accounting


@dataclass(frozen=True)
class Thresholds:
    """Script thresholds and their verdict. ``failed`` names each breach in a short sentence."""

    max_loss_pct: float | None = None
    max_rtt_ms: float | None = None
    passed: bool = True
    failed: tuple[str, ...] = ()

    @property
    def given(self) -> bool:
        """True when the run was given a threshold (--max-loss or --max-rtt) to check."""
        return self.max_loss_pct is not None or self.max_rtt_ms is not None

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
    reflector: ReflectorKind | None = None  # None: not UDP, or no reply
    kernel_timestamps: bool = False
    error: str | None = None
    elapsed_ns: int = 0
    #: How it was measured, for -v (e.g. "icmp datagram socket"); not part of the JSON schema.
    detail: str | None = None
    stats: RttSummary = field(default=None)  # type: ignore[assignment]
    #: How long the probes took to send (the span the achieved rate is over); 0: unknown.
    send_ns: int = 0
    #: Which clocks timed most replies (kernel-both, kernel-rx, user); None without a reply.
    timestamps: Timestamps | None = None

    def __post_init__(self) -> None:
        if self.stats is None:
            a = self.acc
            exact = a.samples_complete or a.streamed is None
            object.__setattr__(self, "stats", summarize_rtts(a.rtts_ns) if exact else a.streamed)

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
            "timestamps": None if self.timestamps is None else self.timestamps.value,
        }


@dataclass(frozen=True)
class LatencyResult:
    method: Method
    targets: list[TargetResult]
    thresholds: Thresholds
    interrupted: bool = False

    def to_json(self, *, samples: bool = False) -> dict[str, Any]:
        return {
            "method": self.method.value,
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
            "method": Method.UDP.value,
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


#: Fewer probes than this say nothing about the rate: one late timer wake-up among three probes
#: 5 ms apart reads as "86 packets/s of 100 asked".
RATE_JUDGED_FROM = 20


def fell_short(result: TargetResult, asked_pps: float) -> bool:
    """True when the sender could not keep up with the asked rate (judged over enough probes)."""
    from netkit.core.pacing import fell_behind

    return result.acc.sent >= RATE_JUDGED_FROM and fell_behind(asked_pps, result.achieved_pps)


def _plain_number(x: float) -> str:
    """A limit the user gave, as written: ``0.5``, ``5``, ``0.000001`` (never ``1e-06``)."""
    return f"{x:.6f}".rstrip("0").rstrip(".") or "0"


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
            failed.append(f"{name}: loss {loss:.2f}% > max-loss {_plain_number(max_loss_pct)}%")
        p95 = t.stats.p95
        if max_rtt_ms is not None and p95 is not None and p95 / NS_PER_MS > max_rtt_ms:
            failed.append(f"{name}: rtt p95 {p95 / NS_PER_MS:.3f} ms > max-rtt {_plain_number(max_rtt_ms)} ms")
    return Thresholds(max_loss_pct, max_rtt_ms, not failed, tuple(failed))
