"""``netkit measure http``: one request's phases (:class:`HttpSample`), a URL's statistics
(:class:`HttpUrlResult`) and the checks.

The phases are curl's ``-w`` timings taken apart into durations (as httpstat draws them):
``dns`` (name lookup), ``connect`` (TCP handshake), ``tls`` (TLS handshake), ``send`` (the request
written to the socket), ``ttfb`` (request written to the first response byte: the server's time),
``transfer`` (first byte to the last) and ``total``. A request on a reused connection pays no dns,
connect or tls (0). Pure: times come in as integer nanoseconds.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from netkit.core.http_config import HttpChecks
from netkit.core.stats import percentile

PHASES = ("dns", "connect", "tls", "send", "ttfb", "transfer", "total")
#: curl -w's cumulative names for the end of each phase (the waterfall's markers).
CUMULATIVE = ("namelookup", "connect", "appconnect", "pretransfer", "starttransfer", "total")
ERROR_KINDS = ("dns", "refused", "timeout", "tls", "reset", "closed", "protocol", "other")
NS = 1_000_000_000


@dataclass(frozen=True)
class HttpSample:
    """One request (its redirects included, their phases summed)."""

    seq: int
    url: str
    start_ns: int  # from the run's start
    error_kind: str | None = None
    error: str | None = None
    status: int = 0
    bytes: int = 0
    http_version: str = ""
    tls_version: str | None = None
    cipher: str | None = None
    cert_days_left: float | None = None
    new_connection: bool = False
    redirects: int = 0
    body_match: bool | None = None
    phases_ns: tuple[int, ...] = (0, 0, 0, 0, 0, 0, 0)

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "seq": self.seq, "url": self.url, "ok": self.ok, "status": self.status or None,
            "bytes": self.bytes, "http_version": self.http_version or None,
            "tls_version": self.tls_version, "cipher": self.cipher,
            "cert_days_left": None if self.cert_days_left is None else round(self.cert_days_left, 3),
            "new_connection": self.new_connection, "redirects": self.redirects,
        }
        if self.body_match is not None:
            doc["body_match"] = self.body_match
        doc["ms"] = {p: round(v / 1e6, 4) for p, v in zip(PHASES, self.phases_ns, strict=True)} if self.ok else None
        if not self.ok:
            doc["error_kind"] = self.error_kind
            doc["error"] = self.error
        return doc


#: Requests whose phases are kept for the percentiles, at most. Past it every other kept request is
#: dropped and one in twice as many is kept from then on: a systematic sample over the whole run in
#: bounded memory (7 phases x 8 bytes x 2 x this = 22 MiB at most), the maxima still exact.
MAX_KEPT = 200_000


@dataclass
class HttpUrlResult:
    """What the requests to one URL measured. Phases are kept as integer arrays (8 bytes a phase a
    request) for exact percentiles, every request up to :data:`MAX_KEPT` of them, then a systematic
    sample (``sampled_every``); counts and maxima cover every request."""

    url: str
    elapsed_ns: int = 0
    count: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    last_error: str | None = None
    statuses: dict[int, int] = field(default_factory=dict)
    phases: list[array[int]] = field(default_factory=lambda: [array("q") for _ in PHASES])
    bytes_min: int | None = None
    bytes_max: int | None = None
    bytes_total: int = 0
    new_connections: int = 0
    http_version: str | None = None
    tls_version: str | None = None
    cipher: str | None = None
    cert_days_left: float | None = None
    body_mismatches: int = 0
    status_mismatches: int = 0
    over_total: int = 0
    ok: int = 0
    phase_max: list[int] = field(default_factory=lambda: [0] * len(PHASES))
    sampled_every: int = 1  # 1: every request's phases are kept

    def add(self, s: HttpSample) -> None:
        self.count += 1
        if not s.ok:
            kind = s.error_kind if s.error_kind in self.errors else "other"
            self.errors[kind] += 1
            self.last_error = s.error
            return
        self.statuses[s.status] = self.statuses.get(s.status, 0) + 1
        self.ok += 1
        self.phase_max = [max(m, v) for m, v in zip(self.phase_max, s.phases_ns, strict=True)]
        if (self.ok - 1) % self.sampled_every == 0:
            for arr, v in zip(self.phases, s.phases_ns, strict=True):
                arr.append(v)
            if len(self.phases[0]) > MAX_KEPT:
                for arr in self.phases:
                    del arr[1::2]
                self.sampled_every *= 2
        self.bytes_min = s.bytes if self.bytes_min is None else min(self.bytes_min, s.bytes)
        self.bytes_max = s.bytes if self.bytes_max is None else max(self.bytes_max, s.bytes)
        self.bytes_total += s.bytes
        self.new_connections += s.new_connection
        self.http_version = s.http_version or self.http_version
        if s.tls_version:
            self.tls_version, self.cipher = s.tls_version, s.cipher
        if s.cert_days_left is not None:
            self.cert_days_left = s.cert_days_left if self.cert_days_left is None \
                else min(self.cert_days_left, s.cert_days_left)
        if s.body_match is False:
            self.body_mismatches += 1

    @property
    def ok_count(self) -> int:
        return self.ok

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def stats_ms(self, phase: str) -> dict[str, float | None]:
        i = PHASES.index(phase)
        vals = sorted(self.phases[i])
        out: dict[str, float | None] = {}
        for name, p in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0)):
            v = percentile(vals, p)
            out[name] = None if v is None else v / 1e6
        out["max"] = self.phase_max[i] / 1e6 if self.ok else None
        return out

    def median_request_ns(self) -> tuple[int, ...] | None:
        """The phases of the request whose total is the median (lower middle): httpstat's waterfall."""
        n = len(self.phases[0])
        if not n:
            return None
        totals = self.phases[PHASES.index("total")]
        i = sorted(range(n), key=lambda k: totals[k])[(n - 1) // 2]
        return tuple(arr[i] for arr in self.phases)

    @property
    def requests_per_s(self) -> float | None:
        return None if self.elapsed_ns <= 0 else self.count * NS / self.elapsed_ns

    def to_json(self) -> dict[str, Any]:
        med = self.median_request_ns()
        return {
            "url": self.url, "count": self.count, "ok": self.ok_count,
            "errors": {**self.errors, "total": self.errors_total}, "last_error": self.last_error,
            "elapsed_s": round(self.elapsed_ns / NS, 6),
            "requests_per_s": None if self.requests_per_s is None else round(self.requests_per_s, 3),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "bytes": {"min": self.bytes_min, "max": self.bytes_max, "total": self.bytes_total},
            "new_connections": self.new_connections, "http_version": self.http_version,
            "tls_version": self.tls_version, "cipher": self.cipher,
            "cert_days_left": None if self.cert_days_left is None else round(self.cert_days_left, 3),
            "ms": {p: {k: None if v is None else round(v, 4) for k, v in self.stats_ms(p).items()}
                   for p in PHASES},
            "sampled_every": self.sampled_every,
            "median_request_ms": None if med is None else
            {p: round(v / 1e6, 4) for p, v in zip(PHASES, med, strict=True)},
        }


def check_sample(s: HttpSample, checks: HttpChecks) -> list[str]:
    """The checks one response fails (the monitor's probe uses this on its single request)."""
    failed: list[str] = []
    if not s.ok:
        return [f"request failed: {s.error}"]
    if checks.expect_status is not None and not checks.expect_status.matches(s.status):
        failed.append(f"expect-status: got {s.status}, expected {checks.expect_status.text}")
    if checks.expect_body is not None and s.body_match is False:
        failed.append(f"expect-body: the body does not match {checks.expect_body!r}")
    if checks.max_total_ms is not None and s.phases_ns[-1] / 1e6 > checks.max_total_ms:
        failed.append(f"max-total: {s.phases_ns[-1] / 1e6:.1f} ms is over {checks.max_total_ms:g} ms")
    if checks.min_cert_days is not None and s.cert_days_left is not None and s.cert_days_left < checks.min_cert_days:
        failed.append(f"min-cert-days: the certificate has {s.cert_days_left:.1f} days left, "
                      f"under {checks.min_cert_days:g}")
    return failed


def check_result(r: HttpUrlResult, checks: HttpChecks) -> list[str]:
    """The checks a URL's run fails, each named; errors fail the run too (as curl's exit status)."""
    failed: list[str] = []
    if r.count == 0:
        failed.append(f"{r.url}: no request completed")
    if r.errors_total:
        failed.append(f"{r.url}: {r.errors_total} of {r.count} requests failed ({r.last_error})")
    if checks.expect_status is not None:
        bad = {k: v for k, v in r.statuses.items() if not checks.expect_status.matches(k)}
        if bad:
            got = ", ".join(f"{k} x{v}" for k, v in sorted(bad.items()))
            failed.append(f"{r.url}: expect-status {checks.expect_status.text}: got {got}")
    if checks.expect_body is not None and r.body_mismatches:
        failed.append(f"{r.url}: expect-body {checks.expect_body!r}: {r.body_mismatches} of {r.ok_count} "
                      "bodies do not match")
    if checks.max_total_ms is not None and r.ok_count:
        worst = r.phase_max[-1] / 1e6
        if worst > checks.max_total_ms:
            failed.append(f"{r.url}: max-total: the slowest request took {worst:.1f} ms, over "
                          f"{checks.max_total_ms:g} ms")
    if checks.min_cert_days is not None and r.cert_days_left is not None and r.cert_days_left < checks.min_cert_days:
        failed.append(f"{r.url}: min-cert-days: the certificate has {r.cert_days_left:.1f} days left, "
                      f"under {checks.min_cert_days:g}")
    return failed


@dataclass
class HttpResult:
    """A whole run: one result per URL, the checks failed, and whether Ctrl-C ended it."""

    urls: list[HttpUrlResult]
    failed: list[str] = field(default_factory=list)
    checks_given: bool = False
    interrupted: bool = False
    by_sigint: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"urls": [u.to_json() for u in self.urls], "interrupted": self.interrupted,
                "checks": {"given": self.checks_given, "passed": not self.failed, "failed": list(self.failed)}}


__all__ = ["CUMULATIVE", "ERROR_KINDS", "PHASES", "HttpResult", "HttpSample", "HttpUrlResult",
           "check_result", "check_sample"]
