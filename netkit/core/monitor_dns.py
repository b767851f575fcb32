"""``netkit monitor``'s dns targets: one query per round to a name server, checked as ``measure dns``
checks it, and the metrics blackbox_exporter's dns prober exports. Pure.

A ``[[targets]]`` entry with ``method = "dns"`` names the server as ``target = "ADDR:PORT"`` (or
``host``/``port``, port 53 by default) and the question with these keys::

    query_name = "example.com"  # required
    query_type = "A"            # A AAAA MX TXT NS SOA CNAME PTR SRV ANY
    transport = "udp"           # udp (a truncated answer is asked again over tcp) | tcp | tls (DoT)
    cafile = "ca.pem"           # tls: trust these certificates (default: the system's)
    tls_name = "dns.example"    # tls: the name the certificate must hold (default: chain checked only)
    insecure = false            # tls: no certificate check
    expect = "198\\.18\\.0\\.7"  # a regex the answer's records (name ttl type data) must match
    expect_rcode = "NOERROR"    # the rcode the answer must have
    max_rtt = "50ms"            # the lookup may take at most this

A round succeeds when the answer came and every check passed; a failed check is the round's
``mismatch`` state with the check named in ``error``. Metrics, per dns target:

- ``probe_dns_lookup_time_seconds``, ``probe_dns_answer_rrs``, ``probe_dns_query_succeeded``
  (blackbox_exporter's names: dashboards and alerts written for it work unchanged), of the last round;
- ``netkit_dns_rcode`` (label ``rcode``: 1 for the last round's rcode; the names are the DNS
  rcodes, a bounded set), ``netkit_dns_truncated_total`` (UDP answers retried over TCP) and
  ``netkit_dns_check_failed_total`` (answers that failed a check);
- the lookups also feed the common ``netkit_rtt_seconds`` histogram and packet counters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netkit.core.dns_result import DnsQuery
from netkit.core.dns_wire import QTYPES, query_name, rcode_valid, validate_name

#: The keys a dns target's entry may add to the common ones.
DNS_KEYS = ("query_name", "query_type", "transport", "expect", "expect_rcode", "max_rtt", "cafile", "tls_name",
            "insecure")
DNS_TRANSPORTS = ("udp", "tcp", "tls")
#: The port of a transport when the target gives none.
DNS_PORTS = {"udp": 53, "tcp": 53, "tls": 853}
#: Label names the dns families set themselves (a user label may not take them).
DNS_LABELS = ("rcode",)


@dataclass(frozen=True)
class DnsProbe:
    """What a dns target asks and checks."""

    query_name: str
    query_type: str = "A"
    transport: str = "udp"
    expect: str | None = None
    expect_rcode: str = "NOERROR"
    max_rtt_s: float | None = None
    cafile: str | None = None
    tls_name: str | None = None
    insecure: bool = False

    @property
    def qname(self) -> str:
        """The name on the wire (PTR of an address: its reverse name)."""
        return query_name(self.query_name, self.query_type)


def parse_dns_probe(where: str, entry: Mapping[str, Any], max_rtt_s: float | None) -> DnsProbe:
    """The dns keys of a target's entry (``max_rtt`` already read as seconds by the caller);
    ValueError naming the key."""
    name = entry.get("query_name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}.query_name: a dns target needs query_name = \"NAME\"")
    try:
        validate_name(name)
    except ValueError as e:
        raise ValueError(f"{where}.query_name: {e}") from None
    qtype = entry.get("query_type", "A")
    if not isinstance(qtype, str) or qtype.upper() not in QTYPES:
        raise ValueError(f"{where}.query_type: one of {', '.join(QTYPES)}, got {qtype!r}")
    transport = entry.get("transport", "udp")
    if transport not in DNS_TRANSPORTS:
        raise ValueError(f"{where}.transport: one of {', '.join(DNS_TRANSPORTS)}, got {transport!r}")
    expect = entry.get("expect")
    if expect is not None:
        if not isinstance(expect, str):
            raise ValueError(f"{where}.expect: expected a regular expression")
        try:
            re.compile(expect)
        except re.error as e:
            raise ValueError(f"{where}.expect: not a regular expression: {e}") from None
    rcode_text = entry.get("expect_rcode", "NOERROR")
    try:
        rcode = rcode_valid(str(rcode_text))
    except ValueError as e:
        raise ValueError(f"{where}.expect_rcode: {e}") from None
    tls: dict[str, Any] = {}
    for key in ("cafile", "tls_name"):
        if key in entry:
            if not isinstance(entry[key], str) or not entry[key]:
                raise ValueError(f"{where}.{key}: expected a string")
            tls[key] = entry[key]
    if "insecure" in entry:
        if not isinstance(entry["insecure"], bool):
            raise ValueError(f"{where}.insecure: expected true or false")
        tls["insecure"] = entry["insecure"]
    if tls and transport != "tls":
        raise ValueError(f"{where}.{next(iter(tls))}: applies to transport = \"tls\" only")
    return DnsProbe(query_name=name, query_type=qtype.upper(), transport=transport, expect=expect,
                    expect_rcode=rcode, max_rtt_s=max_rtt_s, **tls)


def check_answer(probe: DnsProbe, q: DnsQuery) -> str | None:
    """The first failed check of an answered query, as a phrase (None: every check passed)."""
    if q.rcode != probe.expect_rcode:
        return f"rcode {q.rcode} (expected {probe.expect_rcode})"
    if probe.expect is not None and not re.search(probe.expect, "\n".join(a.text() for a in q.answers)):
        return f"answer does not match {probe.expect}"
    if probe.max_rtt_s is not None and q.rtt_ns is not None and q.rtt_ns > probe.max_rtt_s * 1e9:
        return f"lookup {q.rtt_ns / 1e6:.3f} ms > max_rtt {probe.max_rtt_s * 1e3:.3f} ms"
    return None


@dataclass(frozen=True)
class DnsRound:
    """What a dns round adds to the common round record."""

    rcode: str | None
    answer_rrs: int
    truncated: bool
    check_failed: str | None

    def to_json(self) -> dict[str, Any]:
        return {"rcode": self.rcode, "answer_rrs": self.answer_rrs, "truncated": self.truncated,
                "check_failed": self.check_failed}


@dataclass
class DnsTotals:
    """A dns target's state for its metrics: the last round's answer, and counters since start."""

    rcode: str | None = None
    answer_rrs: int | None = None
    lookup_s: float | None = None
    succeeded: bool | None = None
    truncated_total: int = 0
    check_failed_total: int = 0

    def record(self, d: DnsRound, rtt_ns: int | None, answered: bool) -> None:
        self.succeeded = answered
        self.rcode = d.rcode
        self.answer_rrs = d.answer_rrs if answered else None
        self.lookup_s = None if rtt_ns is None else rtt_ns / 1e9
        self.truncated_total += d.truncated
        self.check_failed_total += d.check_failed is not None


def dns_round(t: Any, q: DnsQuery, duration_ns: int) -> Any:
    """A dns target's round (a ``monitor_models.TargetRound``) from its one query."""
    from netkit.core.monitor_models import RoundState, TargetRound

    probe: DnsProbe = t.dns
    failed = check_answer(probe, q) if q.answered else None
    if q.answered and failed is None:
        state, error = RoundState.OPEN, None
    elif q.answered:
        state, error = RoundState.MISMATCH, failed
    elif q.outcome == "timeout":
        state, error = RoundState.TIMEOUT, q.error
    else:
        state, error = RoundState.ERROR, q.error
    return TargetRound(
        target=t.name, method=t.method, host=t.host, port=t.port, address=q.server, success=state is RoundState.OPEN,
        state=state, attempts=1, duration_ns=duration_ns, sent=1, received=int(q.answered),
        lost=int(not q.answered), rtts_ns=(q.rtt_ns,) if q.rtt_ns is not None else (), error=error,
        dns=DnsRound(rcode=q.rcode, answer_rrs=q.answer_count, truncated=q.truncated, check_failed=failed),
    )


def dns_families(state: Any) -> list[Any]:
    """The dns families (``monitor_metrics.MetricFamily``); none at all when no dns target is configured."""
    from netkit.core.monitor_metrics import MetricFamily, MetricKind, MetricSeries
    from netkit.core.monitor_models import RESERVED_LABELS

    cfg = state.config
    names = cfg.label_names()
    extra = names[len(RESERVED_LABELS):]
    lookup: list[MetricSeries] = []
    rrs: list[MetricSeries] = []
    ok: list[MetricSeries] = []
    rcode: list[MetricSeries] = []
    truncated: list[MetricSeries] = []
    failed: list[MetricSeries] = []
    any_dns = False
    for t in cfg.targets:
        tot = state.totals.get(t.key)
        if tot is None or tot.dns is None:
            continue
        any_dns = True
        d: DnsTotals = tot.dns
        own = dict(t.labels)
        values = (t.name, t.method.value, *(own.get(n, "") for n in extra))
        if d.succeeded is None:
            continue
        ok.append(MetricSeries(values, 1.0 if d.succeeded else 0.0))
        if d.lookup_s is not None:
            lookup.append(MetricSeries(values, d.lookup_s))
        if d.answer_rrs is not None:
            rrs.append(MetricSeries(values, float(d.answer_rrs)))
        if d.rcode is not None:
            rcode.append(MetricSeries((*values, d.rcode), 1.0))
        truncated.append(MetricSeries(values, float(d.truncated_total)))
        failed.append(MetricSeries(values, float(d.check_failed_total)))
    if not any_dns:
        return []
    gauge, counter = MetricKind.GAUGE, MetricKind.COUNTER
    return [
        MetricFamily("probe_dns_lookup_time_seconds", gauge, "How long the last DNS lookup took", names,
                     tuple(lookup)),
        MetricFamily("probe_dns_answer_rrs", gauge, "Records in the answer section of the last DNS reply", names,
                     tuple(rrs)),
        MetricFamily("probe_dns_query_succeeded", gauge, "1 when the last DNS query got an answer, else 0", names,
                     tuple(ok)),
        MetricFamily("netkit_dns_rcode", gauge, "1 for the rcode of the last DNS answer", (*names, "rcode"),
                     tuple(rcode)),
        MetricFamily("netkit_dns_truncated_total", counter, "UDP answers that came back truncated and were "
                     "asked again over TCP", names, tuple(truncated)),
        MetricFamily("netkit_dns_check_failed_total", counter, "DNS answers that failed a check (rcode, expect, "
                     "max_rtt)", names, tuple(failed)),
    ]
