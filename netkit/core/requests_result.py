"""What one ``netkit measure requests`` run measured (pure data): per-second intervals, the totals,
and the check of ``--min-rps`` / ``--max-p99`` against them. ``to_json`` gives the published schema."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from netkit.core.latency_histogram import LatencyMs
from netkit.core.request_framing import FramingKind
from netkit.core.units import format_ms, format_rate, three_digits

NS = 1_000_000_000

#: Error kinds, always all present in results (zero when none happened).
ERROR_KINDS = ("timeout", "connection-lost", "connect-failed", "unexpected-reply", "framing", "overload")

#: What the report says about how latency was measured.
NOTE_OPEN_LOOP = ("open loop: latency is measured from each request's scheduled time, so a stalled "
                  "server shows its stall (coordinated omission corrected)")
NOTE_CLOSED_LOOP = ("closed loop: latency is measured from each actual send; while the server stalls "
                    "no new requests are sent, so stalls are under-represented (coordinated omission); "
                    "use --rate for an open loop")


class LoadMode(str, enum.Enum):
    """How requests are paced; the value is what results publish as ``mode``."""

    CLOSED_LOOP = "closed-loop"  # the next request when the last reply arrived
    OPEN_LOOP = "open-loop"  # requests scheduled at --rate whatever the server does

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RequestsInterval:
    """One reporting interval (a second; the last may be shorter): ``event: "interval"`` in jsonl,
    ``intervals[]`` in json, with ``start_s``/``end_s`` as ``measure throughput`` has them."""

    start_s: float
    end_s: float
    requests: int
    requests_per_s: float
    bytes_per_s: dict[str, float]
    latency_ms: dict[str, float | None]
    errors: int
    reconnects: int
    open_connections: int

    def to_json(self) -> dict[str, Any]:
        return {"event": "interval", "start_s": self.start_s, "end_s": self.end_s, "requests": self.requests,
                "requests_per_s": self.requests_per_s, "bytes_per_s": self.bytes_per_s,
                "latency_ms": self.latency_ms, "errors": self.errors, "reconnects": self.reconnects,
                "open_connections": self.open_connections}


@dataclass(frozen=True)
class RequestThresholds:
    """``--min-rps`` / ``--max-p99`` and how the run fared against them."""

    min_rps: float | None = None
    max_p99_ms: float | None = None
    passed: bool = True
    failed: tuple[str, ...] = ()

    @property
    def given(self) -> bool:
        """True when the user asked for a threshold."""
        return self.min_rps is not None or self.max_p99_ms is not None

    def to_json(self) -> dict[str, Any]:
        return {"min_rps": self.min_rps, "max_p99_ms": self.max_p99_ms, "passed": self.passed,
                "failed": list(self.failed)}


@dataclass(frozen=True)
class RequestsResult:
    """The outcome of a load run. ``to_json`` gives the documented schema.

    ``mode`` and ``framing`` may be given as their string values; they are kept as enums.
    """

    target: str
    address: str | None
    tls: bool
    mode: LoadMode
    framing: FramingKind
    connections: int
    rate_rps: float | None
    elapsed_ns: int
    requests: int  # completed (a reply recognised)
    sent: int
    bytes_sent: int
    bytes_received: int
    latency: LatencyMs
    errors: dict[str, int]
    reconnects: int
    drops: int
    intervals: tuple[RequestsInterval, ...] = ()
    thresholds: RequestThresholds = field(default_factory=RequestThresholds)
    #: Stopped early by a signal (Ctrl-C, SIGTERM, SIGHUP).
    interrupted: bool = False
    error: str | None = None  # why the run could not start or ended early
    #: Open loop: scheduled requests this client never sent (it fell over --timeout behind its own
    #: schedule). The sender's shortfall: never counted as the server's errors.
    unsent: int = 0
    #: Stopped by Ctrl-C (SIGINT) in particular: the command then exits 130 after its summary.
    #: Not published (``interrupted`` is).
    by_sigint: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", LoadMode(self.mode))
        object.__setattr__(self, "framing", FramingKind(self.framing))

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_ns / NS

    @property
    def requests_per_s(self) -> float | None:
        return None if self.elapsed_ns <= 0 else self.requests / self.elapsed_s

    @property
    def open_loop(self) -> bool:
        return self.mode is LoadMode.OPEN_LOOP

    @property
    def note(self) -> str:
        return NOTE_OPEN_LOOP if self.open_loop else NOTE_CLOSED_LOOP

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def to_json(self, *, intervals: bool = False) -> dict[str, Any]:
        el = self.elapsed_s
        rps = self.requests_per_s
        doc: dict[str, Any] = {
            "target": self.target,
            "address": self.address,
            "tls": self.tls,
            "mode": self.mode.value,
            "framing": self.framing.value,
            "connections": self.connections,
            "rate_rps": self.rate_rps,
            "duration_s": round(el, 6),
            "requests": self.requests,
            "sent": self.sent,
            "unsent": self.unsent,
            "sent_per_s": round(self.sent / el, 3) if el > 0 else None,
            "requests_per_s": None if rps is None else round(rps, 3),
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "bytes_per_s": {
                "sent": round(self.bytes_sent / el, 3) if el > 0 else None,
                "received": round(self.bytes_received / el, 3) if el > 0 else None,
            },
            "latency_ms": self.latency.to_json(),
            "latency_from": "scheduled" if self.open_loop else "sent",
            "note": self.note,
            "errors": {"total": self.errors_total, **{k: self.errors.get(k, 0) for k in ERROR_KINDS}},
            "reconnects": self.reconnects,
            "drops": self.drops,
            "thresholds": self.thresholds.to_json(),
            "interrupted": self.interrupted,
            "error": self.error,
        }
        if intervals:
            doc["intervals"] = [row.to_json() for row in self.intervals]
        return doc


def check_requests_thresholds(result: RequestsResult, min_rps: float | None,
                              max_p99_ms: float | None) -> RequestThresholds:
    """``--min-rps`` against the run's requests/s, ``--max-p99`` against its p99 (ms).

    A run that completed no request at all fails whatever the thresholds (as ping exits 1 with no
    reply).
    """
    failed: list[str] = []
    if result.requests == 0:
        failed.append("no request completed" + (f" ({result.error})" if result.error else ""))
    rps = result.requests_per_s or 0.0
    if min_rps is not None and rps < min_rps:
        failed.append(f"{format_rate(rps, 'requests/s')} < min-rps {three_digits(min_rps)}")
    p99 = result.latency.p99
    if max_p99_ms is not None and p99 is not None and p99 > max_p99_ms:
        failed.append(f"latency p99 {format_ms(p99)} > max-p99 {format_ms(max_p99_ms)}")
    return RequestThresholds(min_rps, max_p99_ms, not failed, tuple(failed))
