"""What one ``netkit measure responsiveness`` run measured (pure data), the jsonl events it streams,
and the check of ``--min-rpm`` / ``--max-added-latency``. ``to_json`` gives the published schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netkit.core.responsiveness_algo import (
    METRICS,
    NS,
    Band,
    Confidence,
    DirectionRun,
    IntervalRecord,
    ProbeStats,
    Stage,
    rpm_band,
)
from netkit.core.units import format_ms, three_digits


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


@dataclass(frozen=True)
class ResponsivenessInterval:
    """One interval of one direction while it runs: ``event: "interval"`` in jsonl."""

    record: IntervalRecord
    elapsed_s: float  # since the run began (the idle phase included)

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {"event": "interval", "direction": r.direction, "index": r.index,
                "start_s": round(r.start_ns / NS, 6), "end_s": round(r.end_ns / NS, 6),
                "elapsed_s": round(self.elapsed_s, 6), "stage": r.stage.value,
                "bytes": r.bytes, "goodput_bps": round(r.goodput_bps, 1),
                "goodput_ma_bps": round(r.goodput_ma_bps, 1), "connections": r.connections,
                "rpm": _r(r.rpm, 1), "foreign_probes": r.foreign, "self_probes": r.self_}


@dataclass(frozen=True)
class DirectionResult:
    """One direction's outcome. Latencies in ms; ``added_ms`` is loaded minus idle (foreign probes)."""

    direction: str
    goodput_bps: float
    connections: int
    rpm: float | None
    goodput_confidence: Confidence
    rpm_confidence: Confidence
    loaded_ms: float | None
    added_ms: float | None
    stats: ProbeStats
    intervals: int
    window_s: tuple[float, float]  # the span (since the direction began) the RPM comes from
    duration_s: float
    probe_errors: int = 0
    probes_skipped: int = 0  # launches skipped while too many probes of that kind were still out
    probes_unfinished: int = 0  # self probes never answered (at the end or past their timeout), counted with their wait

    @property
    def band(self) -> Band | None:
        return None if self.rpm is None else rpm_band(self.rpm)

    def to_json(self) -> dict[str, Any]:
        s = self.stats
        return {
            "direction": self.direction,
            "goodput_bps": round(self.goodput_bps, 1),
            "load_connections": self.connections,
            "rpm": _r(self.rpm, 1),
            "band": None if self.band is None else self.band.value,
            "confidence": {"goodput": self.goodput_confidence.value, "rpm": self.rpm_confidence.value},
            "loaded_latency_ms": _r(self.loaded_ms),
            "added_latency_ms": _r(self.added_ms),
            "trimmed_mean_ms": {"tcp_f": _r(s.tm_tcp), "tls_f": _r(s.tm_tls), "http_f": _r(s.tm_http_f),
                                "http_l": _r(s.tm_http_l)},
            "percentiles_ms": {m: {k: _r(v) for k, v in s.percentiles[m].items()} for m in METRICS},
            "probes": {"foreign": s.foreign, "self": s.self_, "errors": self.probe_errors,
                       "skipped": self.probes_skipped, "unfinished": self.probes_unfinished},
            "intervals": self.intervals,
            "window_s": [round(self.window_s[0], 3), round(self.window_s[1], 3)],
            "duration_s": round(self.duration_s, 3),
        }


def direction_result(run: DirectionRun, idle_ms: float | None, now_ns: int, probe_errors: int = 0,
                     goodput_bps: float | None = None, probes_skipped: int = 0,
                     probes_unfinished: int = 0) -> DirectionResult:
    """The result of ``run`` as it stands at ``now_ns`` (finished or cut short)."""
    stats = run.final_stats()
    loaded = stats.foreign_latency_ms
    w0, w1 = run.window_ns()
    goodput = goodput_bps if goodput_bps is not None else (run.goodput_bps or 0.0)
    return DirectionResult(
        direction=run.direction, goodput_bps=goodput, connections=run.connections, rpm=stats.rpm,
        goodput_confidence=run.confidence(Stage.GOODPUT), rpm_confidence=run.confidence(Stage.RESPONSIVENESS),
        loaded_ms=loaded, added_ms=None if loaded is None or idle_ms is None else loaded - idle_ms,
        stats=stats, intervals=len(run.intervals), window_s=(w0 / NS, w1 / NS),
        duration_s=max(0, now_ns - run.start_ns) / NS, probe_errors=probe_errors, probes_skipped=probes_skipped,
        probes_unfinished=probes_unfinished)


@dataclass(frozen=True)
class RpmThresholds:
    """``--min-rpm`` / ``--max-added-latency`` (ms) and how every direction fared against them."""

    min_rpm: float | None = None
    max_added_ms: float | None = None
    passed: bool = True
    failed: tuple[str, ...] = ()

    @property
    def given(self) -> bool:
        return self.min_rpm is not None or self.max_added_ms is not None

    def to_json(self) -> dict[str, Any]:
        return {"min_rpm": self.min_rpm, "max_added_latency_ms": self.max_added_ms, "passed": self.passed,
                "failed": list(self.failed)}


@dataclass(frozen=True)
class ResponsivenessResult:
    """The outcome of a run: the idle phase, then one :class:`DirectionResult` per direction measured.

    ``protocol`` is ``h2`` or ``http/1.1``; ``self_probe`` says what ``http_l`` is: ``http`` (a GET
    on a load connection, over h2) or ``tcp_info`` (the kernel's smoothed RTT of a load connection,
    the draft's stand-in where HTTP/1.1 cannot multiplex).
    """

    url: str
    config_url: str
    protocol: str
    tls_version: str | None
    self_probe: str
    parallel: bool
    idle: ProbeStats
    directions: tuple[DirectionResult, ...]
    elapsed_s: float
    interrupted: bool = False
    error: str | None = None
    thresholds: RpmThresholds = field(default_factory=RpmThresholds)
    #: Stopped by Ctrl-C (SIGINT) in particular: the command then exits 130. Not published.
    by_sigint: bool = False

    @property
    def idle_ms(self) -> float | None:
        return self.idle.foreign_latency_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "config_url": self.config_url,
            "protocol": self.protocol,
            "tls_version": self.tls_version,
            "self_probe": self.self_probe,
            "parallel": self.parallel,
            "idle_latency_ms": _r(self.idle_ms),
            "idle": {"trimmed_mean_ms": {"tcp_f": _r(self.idle.tm_tcp), "tls_f": _r(self.idle.tm_tls),
                                         "http_f": _r(self.idle.tm_http_f)},
                     "probes": self.idle.foreign},
            "directions": [d.to_json() for d in self.directions],
            "duration_s": round(self.elapsed_s, 3),
            "thresholds": self.thresholds.to_json(),
            "interrupted": self.interrupted,
            "error": self.error,
        }


def check_rpm_thresholds(result: ResponsivenessResult, min_rpm: float | None,
                         max_added_ms: float | None) -> RpmThresholds:
    """Every direction's RPM against ``min_rpm`` and its added latency against ``max_added_ms``.

    A run that measured no RPM in any direction fails whatever the thresholds (nothing was shown to
    be fine)."""
    failed: list[str] = []
    if not any(d.rpm is not None for d in result.directions):
        failed.append("no responsiveness measured" + (f" ({result.error})" if result.error else ""))
    for d in result.directions:
        if min_rpm is not None and (d.rpm is None or d.rpm < min_rpm):
            got = "none" if d.rpm is None else f"{d.rpm:,.0f}"
            failed.append(f"{d.direction} RPM {got} < min-rpm {three_digits(min_rpm)}")
        if max_added_ms is not None and d.added_ms is not None and d.added_ms > max_added_ms:
            failed.append(f"{d.direction} added latency {format_ms(d.added_ms)} > max-added-latency "
                          f"{format_ms(max_added_ms)}")
    return RpmThresholds(min_rpm, max_added_ms, not failed, tuple(failed))
