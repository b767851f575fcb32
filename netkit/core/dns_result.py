"""What one ``netkit measure dns`` run measured (pure data): every query, a row per server and name
with its statistics, and the checks. ``to_json`` gives the published schema.

A query's outcome is one of:

- ``answered``: a reply that is the answer (id, question and source checked by the io layer); its
  ``rtt_ns`` runs from the query's send to the reply's arrival (over DoH, from the request on a
  connection already set up to its answer's last byte; the query that opened the connection also
  carries the setup apart, ``connect_ns``); when UDP came back truncated, the
  query was asked again over TCP and ``rtt_ns`` covers both (``udp_ns`` and ``tcp_ns`` each part);
- ``timeout``: no answer within ``--timeout`` (counted as loss);
- ``error``: the exchange failed otherwise (TCP refused or reset, TLS failure, a malformed reply):
  also loss, with the reason in ``error``.

Stray datagrams (a wrong id, another question, another source address or port) never end a
query: they are ignored and counted in ``ignored``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from netkit.core.dns_wire import Answer
from netkit.core.stats import percentile

#: Kinds of ignored datagrams, always all present in results.
IGNORED_KINDS = ("wrong_id", "wrong_question", "wrong_source", "malformed")


@dataclass(frozen=True)
class DnsQuery:
    """One query and its outcome; ``jsonl`` streams one per query."""

    seq: int
    server: str
    name: str
    qtype: str
    transport: str  # what the answer came over: udp, tcp (also after a truncated udp), tls
    outcome: str  # answered | timeout | error
    rtt_ns: int | None = None
    udp_ns: int | None = None  # with a TCP retry: the truncated UDP exchange
    tcp_ns: int | None = None  # with a TCP retry: the TCP exchange (connect included)
    truncated: bool = False  # the UDP answer had TC set (and the TCP retry followed)
    rcode: str | None = None
    answers: tuple[Answer, ...] = ()
    answer_count: int = 0
    edns_size: int | None = None
    size: int = 0
    error: str | None = None
    http_version: str | None = None  # DoH: the HTTP version the query went over (2 or 1.1)
    connect_ns: int | None = None  # DoH: the connection's setup (TCP and TLS), on the query that opened it

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"

    @property
    def ttl_min(self) -> int | None:
        return min((a.ttl for a in self.answers), default=None)

    def to_json(self) -> dict[str, Any]:
        def ms(ns: int | None) -> float | None:
            return None if ns is None else round(ns / 1e6, 6)

        return {"event": "query", "seq": self.seq, "server": self.server, "name": self.name, "type": self.qtype,
                "transport": self.transport, "outcome": self.outcome, "rtt_ms": ms(self.rtt_ns),
                "udp_ms": ms(self.udp_ns), "tcp_ms": ms(self.tcp_ns), "truncated": self.truncated,
                "rcode": self.rcode, "answer_count": self.answer_count,
                "answers": [a.to_json() for a in self.answers], "ttl_min": self.ttl_min,
                "edns_size": self.edns_size, "size_bytes": self.size, "error": self.error,
                **({"http_version": self.http_version, "connect_ms": ms(self.connect_ns)}
                   if self.transport == "https" else {})}


@dataclass(frozen=True)
class DnsRow:
    """One server and one name across the run's rounds."""

    server: str
    name: str
    sent: int
    answered: int
    rtt_ms: dict[str, float | None]  # min, p50, p90, p99, max of answered queries
    rcodes: dict[str, int]
    answers: tuple[str, ...]  # the distinct answer data, in the order first seen
    ttl_min: int | None
    truncated: int  # queries whose UDP answer was truncated (and retried over TCP)
    errors: dict[str, int]  # timeout / error reasons, counted
    last_error: str | None

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    @property
    def loss_pct(self) -> float | None:
        return None if self.sent == 0 else 100.0 * self.lost / self.sent

    @property
    def rcode(self) -> str | None:
        """The most frequent rcode (None: nothing answered)."""
        return max(self.rcodes, key=lambda k: self.rcodes[k]) if self.rcodes else None

    def to_json(self) -> dict[str, Any]:
        return {"server": self.server, "name": self.name, "sent": self.sent, "answered": self.answered,
                "lost": self.lost, "loss_pct": None if self.loss_pct is None else round(self.loss_pct, 3),
                "rtt_ms": self.rtt_ms, "rcode": self.rcode, "rcodes": self.rcodes, "answers": list(self.answers),
                "ttl_min": self.ttl_min, "truncated": self.truncated, "errors": self.errors,
                "last_error": self.last_error}


#: Distinct answers kept per row (the rest are counted in the queries, not listed).
MAX_ROW_ANSWERS = 32


def summarize(server: str, name: str, queries: list[DnsQuery]) -> DnsRow:
    """The row of ``server`` and ``name`` from its queries."""
    rtts = sorted(q.rtt_ns / 1e6 for q in queries if q.answered and q.rtt_ns is not None)
    rcodes: dict[str, int] = {}
    answers: list[str] = []
    errors: dict[str, int] = {}
    last_error = None
    ttl: int | None = None
    for q in queries:
        if q.answered and q.rcode is not None:
            rcodes[q.rcode] = rcodes.get(q.rcode, 0) + 1
            for a in q.answers:
                if a.data not in answers and len(answers) < MAX_ROW_ANSWERS:
                    answers.append(a.data)
            if q.ttl_min is not None:
                ttl = q.ttl_min if ttl is None else min(ttl, q.ttl_min)
        else:
            errors[q.outcome] = errors.get(q.outcome, 0) + 1
            last_error = q.error or last_error

    def r(p: float) -> float | None:
        v = percentile(rtts, p)
        return None if v is None else round(v, 6)

    return DnsRow(server=server, name=name, sent=len(queries), answered=sum(q.answered for q in queries),
                  rtt_ms={"min": rtts[0] if rtts else None, "p50": r(50), "p90": r(90), "p99": r(99),
                          "max": rtts[-1] if rtts else None},
                  rcodes=rcodes, answers=tuple(answers), ttl_min=ttl,
                  truncated=sum(q.truncated for q in queries), errors=errors, last_error=last_error)


@dataclass(frozen=True)
class DnsChecks:
    """``--expect`` / ``--expect-rcode`` / ``--max-rtt`` and how the run fared."""

    expect: str | None = None
    expect_rcode: str = "NOERROR"
    max_rtt_ms: float | None = None
    passed: bool = True
    failed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"expect": self.expect, "expect_rcode": self.expect_rcode, "max_rtt_ms": self.max_rtt_ms,
                "passed": self.passed, "failed": list(self.failed)}


@dataclass(frozen=True)
class DnsResult:
    qtype: str
    transport: str
    edns_size: int
    rows: tuple[DnsRow, ...]
    queries: tuple[DnsQuery, ...] = ()
    ignored: dict[str, int] = field(default_factory=dict)
    elapsed_ns: int = 0
    checks: DnsChecks = field(default_factory=DnsChecks)
    interrupted: bool = False
    by_sigint: bool = False  # not published: the command then exits 130

    def to_json(self, *, queries: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": self.qtype, "transport": self.transport, "edns_size": self.edns_size,
            "duration_s": round(self.elapsed_ns / 1e9, 6),
            "rows": [r.to_json() for r in self.rows],
            "ignored": {k: self.ignored.get(k, 0) for k in IGNORED_KINDS},
            "checks": self.checks.to_json(), "interrupted": self.interrupted,
        }
        if queries:
            doc["queries"] = [q.to_json() for q in self.queries]
        return doc


def check_dns(result: DnsResult, *, expect: str | None, expect_rcode: str = "NOERROR",
              max_rtt_ms: float | None = None) -> DnsChecks:
    """The run's checks, naming each failure with its server and name.

    - a row with no answer at all fails (as ``ping`` with no reply);
    - ``--expect-rcode`` (NOERROR unless given): every answered query's rcode;
    - ``--expect REGEX``: searched in each answered query's answer records (``name ttl type data``,
      one per line); a query whose records do not match fails;
    - ``--max-rtt``: each row's p99 RTT.
    """
    failed: list[str] = []
    pattern = re.compile(expect) if expect is not None else None
    by_row: dict[tuple[str, str], list[DnsQuery]] = {}
    for q in result.queries:
        by_row.setdefault((q.server, q.name), []).append(q)
    for row in result.rows:
        where = f"{row.name} @{row.server}"
        if row.answered == 0:
            why = f" ({row.last_error})" if row.last_error else ""
            failed.append(f"{where}: no answer{why}")
            continue
        bad = sorted(k for k in row.rcodes if k != expect_rcode)
        if bad:
            failed.append(f"{where}: rcode {','.join(bad)} (expected {expect_rcode})")
        if pattern is not None:
            misses = [q for q in by_row.get((row.server, row.name), [])
                      if q.answered and not pattern.search("\n".join(a.text() for a in q.answers))]
            if misses:
                failed.append(f"{where}: {len(misses)} of {row.answered} answers do not match --expect {expect}")
        p99 = row.rtt_ms.get("p99")
        if max_rtt_ms is not None and p99 is not None and p99 > max_rtt_ms:
            failed.append(f"{where}: p99 RTT {p99:.3f} ms > max-rtt {max_rtt_ms:.3f} ms")
    return DnsChecks(expect=expect, expect_rcode=expect_rcode, max_rtt_ms=max_rtt_ms,
                     passed=not failed, failed=tuple(failed))
