"""What ``netkit probe`` finds out: states, per-target results, the summary. Pure data.

Field names are the JSON schema of issue 3 (``targets`` and ``summary``); the CLI renders these
dataclasses and never invents names of its own.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum


class ProbeState(str, Enum):
    """How a target ended; the values are the words the table and JSON show."""

    OPEN = "open"
    CLOSED = "closed"  # refused (RST), or an ICMP port unreachable for UDP
    TIMEOUT = "timeout"  # filtered or silent
    UNREACHABLE = "unreachable"  # network or host unreachable
    DNS_ERROR = "dns-error"
    TLS_ERROR = "tls-error"
    MISMATCH = "mismatch"  # the reply did not match --expect
    OPEN_FILTERED = "open|filtered"  # UDP: no reply and no ICMP error, as nmap reports it

    @property
    def ok(self) -> bool:
        """Counts as up: open, or (UDP) silent without an error."""
        return self in (ProbeState.OPEN, ProbeState.OPEN_FILTERED)

    def __str__(self) -> str:
        return self.value


# errno -> (state, words). Anything else is "unreachable" with the system's own words.
_ERRNO_STATES: dict[int, tuple[ProbeState, str]] = {
    _errno.ECONNREFUSED: (ProbeState.CLOSED, "connection refused"),
    _errno.ECONNRESET: (ProbeState.CLOSED, "connection reset by peer"),
    _errno.ECONNABORTED: (ProbeState.CLOSED, "connection aborted"),
    _errno.ETIMEDOUT: (ProbeState.TIMEOUT, "connection timed out"),
    _errno.ENETUNREACH: (ProbeState.UNREACHABLE, "network unreachable"),
    _errno.EHOSTUNREACH: (ProbeState.UNREACHABLE, "host unreachable"),
    _errno.EHOSTDOWN: (ProbeState.UNREACHABLE, "host down"),
    _errno.ENETDOWN: (ProbeState.UNREACHABLE, "network down"),
    _errno.EACCES: (ProbeState.UNREACHABLE, "prohibited (permission denied)"),
    _errno.EPERM: (ProbeState.UNREACHABLE, "prohibited by a firewall rule"),
    _errno.EADDRNOTAVAIL: (ProbeState.UNREACHABLE, "address not available (no local route or port)"),
}


def classify_errno(err: int, strerror: str | None = None) -> tuple[ProbeState, str]:
    """Map a connect/recv errno to a state and a few words for the error column."""
    if err in _ERRNO_STATES:
        return _ERRNO_STATES[err]
    words = strerror or _errno.errorcode.get(err, f"errno {err}")
    return ProbeState.UNREACHABLE, words.lower() if strerror else words


def same_endpoint(local: Sequence[object], peer: Sequence[object]) -> bool:
    """True when a TCP socket is connected to itself (source == destination address and port).

    Compares host and port only: IPv6 tuples carry flowinfo and scope, which may differ.
    """
    return tuple(local[:2]) == tuple(peer[:2])


def ns_to_ms(ns: int | None) -> float | None:
    """Milliseconds with microsecond precision (None stays None)."""
    return None if ns is None else round(ns / 1e6, 3)


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """The handshake's outcome: what a person checks before trusting an endpoint."""

    protocol: str | None
    cipher: str | None
    subject: str | None
    issuer: str | None
    not_after: str | None
    days_left: float | None
    verified: bool
    fingerprint_sha256: str | None = None  # as ``serve --tls`` and openssl print it, for pinning


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One target's outcome; the fields are the JSON object of ``targets[]``."""

    target: str
    host: str
    port: int
    address: str | None
    state: ProbeState
    attempts: int
    connect_ms: float | None  # of the successful attempt (or the last one that connected)
    resolve_ms: float | None
    elapsed_ms: float
    error: str | None
    tls: TlsInfo | None = None

    @property
    def ok(self) -> bool:
        return self.state.ok


@dataclass(frozen=True, slots=True)
class RepeatedResult:
    """``--repeat``: the last round's result plus the success count over every round."""

    last: ProbeResult
    rounds: int
    opens: int

    @property
    def success_rate(self) -> float | None:
        return None if self.rounds == 0 else self.opens / self.rounds

    def record(self) -> dict[str, object]:
        from dataclasses import asdict

        out: dict[str, object] = asdict(self.last)
        out["state"] = self.last.state.value
        out["rounds"] = self.rounds
        out["opens"] = self.opens
        out["success_rate"] = None if self.success_rate is None else round(self.success_rate, 6)
        return out

    def add(self, result: ProbeResult) -> RepeatedResult:
        return replace(self, last=result, rounds=self.rounds + 1, opens=self.opens + (1 if result.ok else 0))


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    """``summary``: counts over every target (``--only`` filters rows, never the summary).

    ``open`` counts state open; ``failed`` counts states that are not up (open|filtered, a
    silent UDP port, is up but not open); ``success_rate`` is the fraction of probes that came
    up: targets in a single run, target-rounds with ``--repeat``.
    """

    total: int
    open: int
    failed: int
    success_rate: float | None


class ProbeTotals:
    """The summary and the exit rule, counted as results go by: a streaming run keeps no list."""

    __slots__ = ("opened", "total", "up")

    def __init__(self) -> None:
        self.total = self.opened = self.up = 0

    def add(self, r: ProbeResult) -> None:
        self.total += 1
        if r.state is ProbeState.OPEN:
            self.opened += 1
            self.up += 1
        elif r.state is ProbeState.OPEN_FILTERED:
            self.up += 1

    def summary(self) -> ProbeSummary:
        rate = None if self.total == 0 else round(self.up / self.total, 6)
        return ProbeSummary(self.total, self.opened, self.total - self.up, rate)

    def passed(self, *, any_: bool) -> bool:
        """Exit 0 rule: every target up (or, with ``--any``, at least one); no targets never passes."""
        if self.total == 0:
            return False
        return self.up > 0 if any_ else self.up == self.total


def _totals(results: Iterable[ProbeResult]) -> ProbeTotals:
    totals = ProbeTotals()
    for r in results:
        totals.add(r)
    return totals


def summarize(results: Iterable[ProbeResult]) -> ProbeSummary:
    return _totals(results).summary()


def summarize_repeated(items: Sequence[RepeatedResult]) -> ProbeSummary:
    total = len(items)
    opened = sum(1 for r in items if r.last.state is ProbeState.OPEN)
    failed = sum(1 for r in items if not r.last.ok)
    rounds = sum(r.rounds for r in items)
    opens = sum(r.opens for r in items)
    return ProbeSummary(total, opened, failed, None if rounds == 0 else round(opens / rounds, 6))


def passed(results: Iterable[ProbeResult], *, any_: bool = False) -> bool:
    """Exit 0 rule: every target up (or, with ``--any``, at least one); no targets never passes."""
    return _totals(results).passed(any_=any_)


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """The whole run: ``{"targets": [...], "summary": {...}}``."""

    targets: list[ProbeResult] = field(default_factory=list)
    summary: ProbeSummary = field(default_factory=lambda: ProbeSummary(0, 0, 0, None))


RESULT_FIELDS = ("target", "host", "port", "address", "state", "attempts", "connect_ms", "resolve_ms",
                 "elapsed_ms", "error", "tls")
TLS_FIELDS = ("protocol", "cipher", "subject", "issuer", "not_after", "days_left", "verified", "fingerprint_sha256")
REPEAT_FIELDS = ("rounds", "opens", "success_rate")
