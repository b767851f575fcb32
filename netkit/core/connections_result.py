"""What one ``netkit measure connections`` run measured (pure data): per-second intervals, the totals,
and the check of ``--min-rate`` / ``--max-errors`` against them. ``to_json`` gives the published schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netkit.core.connections_config import ERROR_KINDS, CloseMode
from netkit.core.latency_histogram import LatencyMs
from netkit.core.units import format_count, format_rate, three_digits

NS = 1_000_000_000


@dataclass(frozen=True)
class ConnectionsInterval:
    """One reporting interval (a second; the last may be shorter): ``event: "interval"`` in jsonl,
    ``intervals[]`` in json, with ``start_s``/``end_s`` as the other meters have them."""

    start_s: float
    end_s: float
    connections: int
    connections_per_s: float
    connect_ms: dict[str, float | None]
    errors: int

    def to_json(self) -> dict[str, Any]:
        return {"event": "interval", "start_s": self.start_s, "end_s": self.end_s,
                "connections": self.connections, "connections_per_s": self.connections_per_s,
                "connect_ms": self.connect_ms, "errors": self.errors}


@dataclass(frozen=True)
class ConnectionThresholds:
    """``--min-rate`` / ``--max-errors`` and how the run fared against them."""

    min_rate: float | None = None
    max_errors: int | None = None
    passed: bool = True
    failed: tuple[str, ...] = ()

    @property
    def given(self) -> bool:
        return self.min_rate is not None or self.max_errors is not None

    def to_json(self) -> dict[str, Any]:
        return {"min_rate": self.min_rate, "max_errors": self.max_errors, "passed": self.passed,
                "failed": list(self.failed)}


@dataclass(frozen=True)
class ConnectionsResult:
    """The outcome of a connection-rate run. ``close`` may be given as its string value.

    ``connections`` counts attempts that completed (connected, and the ``--send``/``--expect``
    exchange done); ``attempts`` every socket started; ``abandoned`` those still under way when the
    duration ended (neither completed nor errors). ``time_wait`` is the sockets toward the target
    in TIME_WAIT on this host when the run ended (``time_wait_before`` at its start), None where
    ``/proc/net/tcp`` cannot be read.
    """

    target: str
    address: str | None
    concurrency: int
    close: CloseMode
    send: int
    expect: int
    elapsed_ns: int
    attempts: int
    connections: int
    connect: LatencyMs
    transaction: LatencyMs | None
    errors: dict[str, int]
    abandoned: int = 0
    time_wait: int | None = None
    time_wait_before: int | None = None
    intervals: tuple[ConnectionsInterval, ...] = ()
    thresholds: ConnectionThresholds = field(default_factory=ConnectionThresholds)
    interrupted: bool = False
    error: str | None = None  # the last error seen (its text), for the report
    #: Stopped by Ctrl-C (SIGINT) in particular: the command then exits 130. Not published.
    by_sigint: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "close", CloseMode(self.close))

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_ns / NS

    @property
    def connections_per_s(self) -> float | None:
        return None if self.elapsed_ns <= 0 else self.connections / self.elapsed_s

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def to_json(self, *, intervals: bool = False) -> dict[str, Any]:
        rate = self.connections_per_s
        doc: dict[str, Any] = {
            "target": self.target,
            "address": self.address,
            "concurrency": self.concurrency,
            "close": self.close.value,
            "send_bytes": self.send,
            "expect_bytes": self.expect,
            "duration_s": round(self.elapsed_s, 6),
            "attempts": self.attempts,
            "connections": self.connections,
            "connections_per_s": None if rate is None else round(rate, 3),
            "connect_ms": self.connect.to_json(),
            "transaction_ms": None if self.transaction is None else self.transaction.to_json(),
            "errors": {"total": self.errors_total, **{k: self.errors.get(k, 0) for k in ERROR_KINDS}},
            "abandoned": self.abandoned,
            "time_wait": self.time_wait,
            "time_wait_before": self.time_wait_before,
            "thresholds": self.thresholds.to_json(),
            "interrupted": self.interrupted,
            "error": self.error,
        }
        if intervals:
            doc["intervals"] = [row.to_json() for row in self.intervals]
        return doc


def check_connections_thresholds(result: ConnectionsResult, min_rate: float | None,
                                 max_errors: int | None) -> ConnectionThresholds:
    """``--min-rate`` against the run's connections/s, ``--max-errors`` against its error total.

    A run in which no connection completed fails whatever the thresholds (as ping exits 1 with
    no reply).
    """
    failed: list[str] = []
    if result.connections == 0:
        failed.append("no connection completed" + (f" ({result.error})" if result.error else ""))
    rate = result.connections_per_s or 0.0
    if min_rate is not None and rate < min_rate:
        failed.append(f"{format_rate(rate, 'connections/s')} < min-rate {three_digits(min_rate)}")
    if max_errors is not None and result.errors_total > max_errors:
        failed.append(f"{format_count(result.errors_total)} errors > max-errors {format_count(max_errors)}")
    return ConnectionThresholds(min_rate, max_errors, not failed, tuple(failed))
