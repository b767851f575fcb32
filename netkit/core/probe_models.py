"""What ``netkit probe`` asks and finds out: options, states, per-target results, the summary. Pure.

The field names of :class:`ProbeResult` and :class:`ProbeSummary` are the published JSON schema
(``targets`` and ``summary``); the renderer shows these dataclasses and never invents names of its own.
Also here: the run's configuration (:class:`ProbeRunConfig`), what a run returns
(:class:`ProbeRunResult`), the result of a target a run cut short, the pacing of ``--repeat``
rounds, and the :class:`ProbeListener` protocol through which the I/O layer reports as it goes.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from netkit.core.backoff import Backoff
from netkit.core.escape import safe_text
from netkit.core.targets import Target

if TYPE_CHECKING:  # pragma: no cover
    import re

NS = 1_000_000_000


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


#: A TCP connect that landed on its own source port (same address and port): nobody listens there.
SELF_CONNECT_ERROR = "self-connect: the socket connected to itself (nothing listening)"


def classify_errno(err: int, strerror: str | None = None) -> tuple[ProbeState, str]:
    """Map a connect/recv errno to a state and a few words for the error column."""
    if err in _ERRNO_STATES:
        return _ERRNO_STATES[err]
    words = strerror or _errno.errorcode.get(err, f"errno {err}")
    return ProbeState.UNREACHABLE, words.lower() if strerror else words


def mismatch_words(pattern: re.Pattern[str], reply: bytes, why: str | None) -> str:
    """The error of a reply that did not match ``--expect``: ``expected /^SSH-/, got "HTTP/1.1 400"``,
    the peer's bytes shown inert (escaped, at most 60 characters)."""
    got = safe_text(reply, limit=60) if reply else "nothing"
    return f"expected /{pattern.pattern}/, got \"{got}\"" + (f" ({why})" if why else "")


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
class ProbeAttempt:
    """One attempt's outcome: the state, the address tried, the connect time, the words."""

    state: ProbeState
    address: str | None
    connect_ns: int | None
    error: str | None
    tls: TlsInfo | None = None


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

    def record(self) -> dict[str, object]:
        """The JSON object of ``targets[]``, built directly (a full scan makes 65535 of them)."""
        t = self.tls
        return {
            "target": self.target, "host": self.host, "port": self.port, "address": self.address,
            "state": self.state.value, "attempts": self.attempts, "connect_ms": self.connect_ms,
            "resolve_ms": self.resolve_ms, "elapsed_ms": self.elapsed_ms, "error": self.error,
            "tls": None if t is None else {
                "protocol": t.protocol, "cipher": t.cipher, "subject": t.subject, "issuer": t.issuer,
                "not_after": t.not_after, "days_left": t.days_left, "verified": t.verified,
                "fingerprint_sha256": t.fingerprint_sha256,
            },
        }


def cut_short_result(target: Target, so_far_ms: float, why: str,
                     last: tuple[int, ProbeAttempt] | None = None) -> ProbeResult:
    """The result of a target whose run was cut short (Ctrl-C, or ``--wait --any`` once another is up).

    ``why`` says what cut it (``interrupted``); ``last`` is ``(attempts, the latest attempt)`` when
    one was made, so its state and words are kept: ``interrupted; last attempt: connection refused``.
    """
    if last is None:
        return ProbeResult(str(target), target.host, target.port, None, ProbeState.TIMEOUT, 0, None, None,
                           so_far_ms, f"{why} before an answer")
    attempts, att = last
    return ProbeResult(str(target), target.host, target.port, att.address, att.state, attempts,
                       ns_to_ms(att.connect_ns), None, so_far_ms,
                       f"{why}; last attempt: {att.error}" if att.error else why)


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

    @property
    def open_filtered(self) -> int:
        """Targets that ended open|filtered (UDP, no reply): up for the exit status, but not open."""
        return self.total - self.open - self.failed


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


def passed_repeated(items: Sequence[RepeatedResult], *, any_: bool = False) -> bool:
    """``--repeat``'s exit 0 rule: every target up in every round (``--any``: one up in the last round)."""
    if any_:
        return passed([a.last for a in items], any_=True)
    return bool(items) and all(a.opens == a.rounds for a in items)


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """The whole run: ``{"targets": [...], "summary": {...}}``."""

    targets: list[ProbeResult] = field(default_factory=list)
    summary: ProbeSummary = field(default_factory=lambda: ProbeSummary(0, 0, 0, None))


RESULT_FIELDS = ("target", "host", "port", "address", "state", "attempts", "connect_ms", "resolve_ms",
                 "elapsed_ms", "error", "tls")
TLS_FIELDS = ("protocol", "cipher", "subject", "issuer", "not_after", "days_left", "verified", "fingerprint_sha256")
REPEAT_FIELDS = ("rounds", "opens", "success_rate")


# ----- what a run is asked to do --------------------------------------------------------------------
#: At or above this many plain-connect targets the fast scan loop replaces asyncio.
SCAN_THRESHOLD = 64
#: Targets probed per batch by a streaming run: results of a batch are written, then dropped.
#: Many times the concurrency, so the wait for a batch's slowest target is a small share.
STREAM_BATCH = 8192
#: ``--wait`` polls for a service coming up: a long backoff would only delay noticing it.
WAIT_MAX_BACKOFF_S = 2.0
DEFAULT_MAX_BACKOFF_S = 10.0


class ProbeEngine(str, Enum):
    """Which prober runs: chosen by the run (``auto``), or forced for tests and benchmarks."""

    AUTO = "auto"
    ASYNC = "async"  # one asyncio coroutine per target: every option
    SCAN = "scan"  # the fast connect loop: plain TCP connects only


class ShowOnly(str, Enum):
    """``--only``: the rows shown (the summary counts every target)."""

    OPEN = "open"
    FAILED = "failed"


@dataclass(frozen=True)
class ProbeOptions:
    """Everything one target's probe needs to know (shared by ``probe`` and ``monitor``)."""

    timeout_s: float = 2.0
    retries: int | None = 0  # None: until the deadline (--wait)
    backoff: Backoff = field(default_factory=lambda: Backoff(500_000_000, 2.0, 10 * NS))
    deadline_s: float = 30.0
    concurrency: int = 256
    family: int = 0  # socket.AF_UNSPEC; AF_INET or AF_INET6 for -4/-6
    send: bytes | None = None
    expect: re.Pattern[str] | None = None
    tls: bool = False
    tls_insecure: bool = False  # --insecure: handshake without verifying the certificate
    tls_cafile: str | None = None  # trust the CAs in this PEM file instead of the system's
    min_cert_days: float | None = None
    udp: bool = False
    retry_dns: bool = False
    resolve_timeout_s: float = 5.0

    @property
    def plain_connect(self) -> bool:
        """A bare TCP connect: what the fast scan loop can do instead."""
        return not (self.tls or self.udp or self.send is not None or self.expect is not None)

    def retryable(self, state: ProbeState) -> bool:
        """Whether an attempt that ended in ``state`` is worth another: never once up; a failed
        lookup only when waiting (a container's name often appears in DNS only when it starts)."""
        if state.ok:
            return False
        return self.retry_dns if state is ProbeState.DNS_ERROR else True


@dataclass(frozen=True)
class ProbeRunConfig:
    """One ``netkit probe`` invocation: the per-target options and how the targets are run."""

    options: ProbeOptions
    wait: bool = False  # retry every target until all are up or the deadline passes
    repeat: int | None = None  # rounds; None: one pass
    interval_s: float = 1.0  # between the starts of rounds
    any_: bool = False  # exit 0 when one target is up (and --wait stops there)
    only: ShowOnly | None = None
    engine: ProbeEngine = ProbeEngine.AUTO
    scan_threads: int = 0  # 0: the scan loop's default
    #: keep the shown rows in the result (a table needs them all; json/csv/jsonl stream and drop them)
    keep_rows: bool = True

    @property
    def streaming(self) -> bool:
        """One pass over targets that may be millions, in batches (not --wait, not --repeat)."""
        return self.repeat is None and not self.wait

    def shows(self, ok: bool) -> bool:
        """Whether ``--only`` lets a row with this outcome through."""
        return self.only is None or (self.only is ShowOnly.OPEN) == ok

    def uses_scan(self, count: int) -> bool:
        """The fast scan loop for ``count`` targets: forced, or ``auto`` with many plain connects."""
        if self.engine is ProbeEngine.SCAN:
            return True
        if self.engine is ProbeEngine.ASYNC or self.wait:
            return False
        return self.options.plain_connect and count >= SCAN_THRESHOLD

    @property
    def batch_size(self) -> int:
        return max(STREAM_BATCH, 4 * self.options.concurrency)


def round_pause_ns(interval_ns: int, round_start_ns: int, now_ns: int) -> int:
    """``--repeat``'s pause before the next round: rounds start ``interval`` apart (0 when late)."""
    return max(0, interval_ns - (now_ns - round_start_ns))


# ----- what a run returns -----------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeRunResult:
    """The outcome of one ``netkit probe``: the summary, the exit rule's verdict, the rows to show.

    ``rows`` are the rows ``--only`` lets through, in input order (empty when the run streamed them
    to the listener and dropped them); with ``--repeat``, ``repeated`` is aligned with ``rows``.
    """

    summary: ProbeSummary
    passed: bool
    interrupted: bool = False
    rows: list[ProbeResult] = field(default_factory=list)
    repeated: list[RepeatedResult] | None = None
    rounds_done: int | None = None  # --repeat: rounds that ran (whole or cut short)
    rounds: int | None = None  # --repeat: rounds asked for


class ProbeListener(Protocol):
    """What a run reports as it goes (the renderer implements it: progress, streamed records).

    ``result`` may be called from the scan loop's worker thread (never two at a time).
    """

    def started(self, total: int | None) -> None:
        """A pass begins over ``total`` targets (None: not known yet, a streaming run)."""

    def attempted(self, target: Target, attempts: int, attempt: ProbeAttempt) -> None:
        """An attempt ended (asyncio prober only)."""

    def result(self, index: int, result: ProbeResult, round_no: int | None,
               repeated: RepeatedResult | None) -> None:
        """A target finished (``round_no`` and the running tally with ``--repeat``)."""

    def batch(self, results: Sequence[ProbeResult]) -> None:
        """A streaming run finished a batch: its results in input order, to write and drop."""

    def round_ended(self, round_no: int, up: int, total: int) -> None:
        """``--repeat``: round ``round_no`` ended with ``up`` of ``total`` targets up."""
