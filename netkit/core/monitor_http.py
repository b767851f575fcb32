"""``netkit monitor``'s http targets: one timed request per round, checked as blackbox_exporter's http
prober checks it, and exported under blackbox's metric names (so its dashboards and alerts carry over).

A target's entry names the URL and the checks::

    [[targets]]
    url = "https://example.com/health"   # the method is http (host and port come from the URL)
    expect_status = "2xx,301"            # default 2xx, as blackbox's valid_status_codes
    expect_body = "ok"                   # a regular expression in the body's first 64 KiB
    max_total = 500                      # ms
    min_cert_days = 14
    insecure = false                     # do not verify the certificate
    cafile = "/etc/ssl/my-ca.pem"

The round succeeds when the request completes and every check passes (blackbox's ``probe_success``).
Exported per target, from its last round: ``probe_http_duration_seconds{phase}`` (blackbox's phases:
resolve, connect, tls, processing, transfer), ``probe_http_status_code``, ``probe_http_content_length``,
``probe_http_version``, ``probe_http_redirects``, ``probe_http_ssl``, ``probe_ssl_earliest_cert_expiry``
(unix seconds), ``probe_failed_due_to_regex``, and netkit's own ``netkit_http_check_failed{check}``.
Pure: the I/O layer (``netkit.io.measure.monitor_http``) makes the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netkit.core.errors import InputError
from netkit.core.http_config import HttpChecks, compile_body_regex, parse_status_spec
from netkit.core.nq_config import HttpUrl, parse_url

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.http_result import HttpSample
    from netkit.core.monitor_metrics import MetricFamily
    from netkit.core.monitor_models import MonitorState, MonitorTarget, TargetRound

#: The keys an http target's entry may hold besides the common ones.
HTTP_KEYS = ("url", "expect_status", "expect_body", "max_total", "min_cert_days", "insecure", "cafile")
#: blackbox_exporter's phase names, from netkit's (processing is request sent + time to first byte).
BLACKBOX_PHASES = ("resolve", "connect", "tls", "processing", "transfer")
CHECK_NAMES = ("request", "expect_status", "expect_body", "max_total", "min_cert_days")


@dataclass(frozen=True)
class HttpProbeSpec:
    """What an http target requests and checks."""

    url: HttpUrl
    checks: HttpChecks
    insecure: bool = False
    cafile: str | None = None


@dataclass(frozen=True)
class HttpRoundInfo:
    """What an http round found, for the metrics and the jsonl round line."""

    phases_s: tuple[float, ...]  # BLACKBOX_PHASES order
    status: int
    content_length: int
    http_version: float  # 1.1, 2.0; 0 when no response
    redirects: int
    ssl: bool
    cert_expiry_epoch: float | None
    failed_checks: tuple[str, ...]  # CHECK_NAMES that failed
    body_regex_failed: bool

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status or None, "bytes": self.content_length,
                "http_version": self.http_version or None, "redirects": self.redirects, "ssl": self.ssl,
                "cert_expiry_epoch": self.cert_expiry_epoch,
                "phases_ms": {p: round(v * 1e3, 4) for p, v in zip(BLACKBOX_PHASES, self.phases_s, strict=True)},
                "failed_checks": list(self.failed_checks)}


def _err(key: str, message: str) -> InputError:
    return InputError(f"{key}: {message}")


def parse_http_spec(where: str, entry: Mapping[str, Any]) -> HttpProbeSpec:
    """An http target's keys (``where``: ``targets[2]``) to its spec; InputError names the key."""
    raw = entry.get("url")
    if not isinstance(raw, str):
        raise _err(f"{where}.url", "expected \"http(s)://host[:port]/path\"")
    try:
        url = parse_url(raw)
    except InputError as exc:
        raise _err(f"{where}.url", str(exc)) from None
    status = entry.get("expect_status", "2xx")
    if isinstance(status, int) and not isinstance(status, bool):
        status = str(status)
    if not isinstance(status, str):
        raise _err(f"{where}.expect_status", "expected a string such as \"2xx,301\"")
    body = entry.get("expect_body")
    if body is not None:
        if not isinstance(body, str):
            raise _err(f"{where}.expect_body", "expected a regular expression")
        compile_body_regex(body)
    nums: dict[str, float | None] = {}
    for key in ("max_total", "min_cert_days"):
        v = entry.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            raise _err(f"{where}.{key}", "expected a number >= 0")
        nums[key] = None if v is None else float(v)
    insecure = entry.get("insecure", False)
    if not isinstance(insecure, bool):
        raise _err(f"{where}.insecure", "expected true or false")
    cafile = entry.get("cafile")
    if cafile is not None and not isinstance(cafile, str):
        raise _err(f"{where}.cafile", "expected a file path")
    try:
        spec = parse_status_spec(status)
    except InputError as exc:
        raise _err(f"{where}.expect_status", str(exc)) from None
    checks = HttpChecks(expect_status=spec, expect_body=body, max_total_ms=nums["max_total"],
                        min_cert_days=nums["min_cert_days"])
    return HttpProbeSpec(url, checks, insecure, cafile)


def http_round(t: MonitorTarget, s: HttpSample, duration_ns: int, cert_expiry_epoch: float | None,
               address: str | None) -> TargetRound:
    """The round's verdict from its one request: success is a response that passes every check."""
    from netkit.core.monitor_models import RoundState, TargetRound

    assert t.http is not None
    checks = t.http.checks
    failed: list[str] = []
    messages: list[str] = []
    if not s.ok:
        failed.append("request")
        messages.append(s.error or "request failed")
    else:
        if checks.expect_status is not None and not checks.expect_status.matches(s.status):
            failed.append("expect_status")
            messages.append(f"status {s.status}, expected {checks.expect_status.text}")
        if checks.expect_body is not None and s.body_match is False:
            failed.append("expect_body")
            messages.append(f"the body does not match {checks.expect_body!r}")
        total_ms = s.phases_ns[-1] / 1e6
        if checks.max_total_ms is not None and total_ms > checks.max_total_ms:
            failed.append("max_total")
            messages.append(f"{total_ms:.1f} ms is over {checks.max_total_ms:g} ms")
        days = s.cert_days_left
        if checks.min_cert_days is not None and days is not None and days < checks.min_cert_days:
            failed.append("min_cert_days")
            messages.append(f"the certificate has {s.cert_days_left:.1f} days left")
    dns, conn, tls, send, ttfb, transfer, total = s.phases_ns
    info = HttpRoundInfo(
        phases_s=(dns / 1e9, conn / 1e9, tls / 1e9, (send + ttfb) / 1e9, transfer / 1e9), status=s.status,
        content_length=s.bytes, http_version=float(s.http_version) if s.http_version else 0.0,
        redirects=s.redirects, ssl=s.tls_version is not None, cert_expiry_epoch=cert_expiry_epoch,
        failed_checks=tuple(failed), body_regex_failed="expect_body" in failed)
    success = not failed
    if success:
        state = RoundState.OPEN
    elif not s.ok:
        state = {"dns": RoundState.DNS_ERROR, "tls": RoundState.TLS_ERROR, "refused": RoundState.CLOSED,
                 "timeout": RoundState.TIMEOUT}.get(s.error_kind or "", RoundState.ERROR)
    else:
        state = RoundState.MISMATCH
    return TargetRound(
        target=t.name, method=t.method, host=t.host, port=t.port, address=address, success=success, state=state,
        attempts=1, duration_ns=duration_ns, sent=1, received=int(s.ok), lost=int(not s.ok),
        rtts_ns=(total,) if s.ok else (), error=None if success else "; ".join(messages), http=info)


def http_families(state: MonitorState) -> list[MetricFamily]:
    """The blackbox-named http families (and netkit's check flags); none without an http target."""
    from netkit.core.monitor_metrics import MetricFamily, MetricKind, MetricSeries
    from netkit.core.monitor_models import RESERVED_LABELS

    cfg = state.config
    names = cfg.label_names()
    extra = names[len(RESERVED_LABELS):]
    rows: list[tuple[tuple[str, ...], HttpRoundInfo]] = []
    for t in cfg.targets:
        tot = state.totals.get(t.key)
        info = None if tot is None else tot.http
        if info is not None:
            own = dict(t.labels)
            rows.append(((t.name, t.method.value, *(own.get(n, "") for n in extra)), info))
    if not any(t.http is not None for t in cfg.targets):
        return []
    g = MetricKind.GAUGE

    def fam(name: str, help: str, pick: Any) -> MetricFamily:
        series = []
        for values, info in rows:
            v = pick(info)
            if v is not None:
                series.append(MetricSeries(values, float(v)))
        return MetricFamily(name, g, help, names, tuple(series))

    phases = tuple(MetricSeries((*values, p), v) for values, info in rows
                   for p, v in zip(BLACKBOX_PHASES, info.phases_s, strict=True))
    checks = tuple(MetricSeries((*values, c), 1.0 if c in info.failed_checks else 0.0)
                   for values, info in rows for c in CHECK_NAMES)
    return [
        MetricFamily("probe_http_duration_seconds", g, "Duration of the last request by phase (blackbox's phases)",
                     (*names, "phase"), phases),
        fam("probe_http_status_code", "Status code of the last response (0: none)", lambda i: i.status),
        fam("probe_http_content_length", "Body bytes of the last response", lambda i: i.content_length),
        fam("probe_http_version", "HTTP version of the last response (1.1, 2)", lambda i: i.http_version),
        fam("probe_http_redirects", "Redirects followed by the last request", lambda i: i.redirects),
        fam("probe_http_ssl", "1 when the last request used TLS", lambda i: 1 if i.ssl else 0),
        fam("probe_ssl_earliest_cert_expiry", "When the server's certificate expires (unix seconds)",
            lambda i: i.cert_expiry_epoch),
        fam("probe_failed_due_to_regex", "1 when the last body did not match expect_body",
            lambda i: 1 if i.body_regex_failed else 0),
        MetricFamily("netkit_http_check_failed", g, "1 when the last round failed this check",
                     (*names, "check"), checks),
    ]


__all__ = ["BLACKBOX_PHASES", "CHECK_NAMES", "HTTP_KEYS", "HttpProbeSpec", "HttpRoundInfo", "http_families",
           "http_round", "parse_http_spec"]
