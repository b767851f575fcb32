"""The responsiveness test's algorithm as a pure state machine (the draft's "Final Algorithm").

One :class:`DirectionRun` per direction. The I/O layer feeds it what happened, with times passed in
as integer nanoseconds: :meth:`DirectionRun.add_probe` for each finished probe and
:meth:`DirectionRun.end_interval` at the end of each interval (ID) with the bytes moved in it. Each
interval end answers with a :class:`Decision`: how many load-generating connections to add, and
whether the direction is done.

The stages, as the draft has them:

1. goodput: connections are added (INC per interval, up to MNP) until the moving average of the
   aggregate goodput (the bytes of the last MAD intervals over their duration) is stable: the standard
   deviation of the last MAD moving averages is within SDT of the newest.
2. responsiveness: the responsiveness of the probes finished in the last MAD intervals is computed
   each interval, until it is stable by the same rule.

Each stage is bounded by ``stage_max_s``; its confidence (the draft's "Confidence of Test-Results") is
low when it ran fewer than MAD intervals, medium when it ran MAD or more without reaching stability,
high when it reached stability.

Aggregation (the draft's "Aggregating the Measurements"): a one-sided trimmed mean (the lowest TMP %)
of each of ``tcp_f``, ``tls_f``, ``http_f`` (foreign probes, on new connections) and ``http_l`` (self
probes, on the load-generating connections), then

    TLS:      foreign RPM = 60000 / ((TM(tcp_f) + TM(tls_f) + TM(http_f)) / 3)
    TCP only: foreign RPM = 60000 / ((TM(tcp_f) + TM(http_f)) / 2)
    loaded RPM = 60000 / TM(http_l);  RPM = (foreign RPM + loaded RPM) / 2

The latency netkit reports beside the RPM (idle, loaded, added) is the foreign probes' mean round
trip, ``(TM(tcp_f) [+ TM(tls_f)] + TM(http_f)) / n``: each of those is one network round trip on a
fresh connection, so loaded minus idle is the queueing delay the load added. Self probes wait behind
the server's own send buffer too: their figure is the percentiles of ``http_l``.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from netkit.core.responsiveness_config import FOREIGN_PROBE_BYTES, SELF_PROBE_BYTES, AlgorithmParams

NS = 1_000_000_000


class Confidence(str, enum.Enum):
    """The draft's confidence of a stage's result."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    def __str__(self) -> str:
        return self.value


class Stage(str, enum.Enum):
    GOODPUT = "goodput"
    RESPONSIVENESS = "responsiveness"
    DONE = "done"

    def __str__(self) -> str:
        return self.value


# ----- statistics ---------------------------------------------------------------------------------

def trimmed_mean(samples: Sequence[float], keep_percent: float = 95.0) -> float | None:
    """The draft's one-sided trimmed mean: the mean of the lowest ``keep_percent`` % of the samples
    (the slowest are the outliers a probe can suffer: a lost SYN, a retransmission). At least one
    sample is kept; None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    keep = max(1, math.floor(len(ordered) * keep_percent / 100.0 + 1e-9))
    return math.fsum(ordered[:keep]) / keep


def percentile(samples: Sequence[float], p: float) -> float | None:
    """Linear-interpolation percentile (``p`` in 0..100); None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def tls_round_trips(version: str | None) -> int:
    """Round trips a full TLS handshake takes until data flows: 1 for TLS 1.3, 2 before it."""
    return 1 if version == "TLSv1.3" else 2


def normalize_tls_ms(handshake_ms: float, version: str | None) -> float:
    """``tls_f``: the handshake time per round trip (the draft normalizes it so TLS versions compare)."""
    return handshake_ms / tls_round_trips(version)


def foreign_latency_ms(tcp: float | None, tls: float | None, http: float | None) -> float | None:
    """The mean of the foreign components present (``tls`` None in the TCP-only case)."""
    parts = [x for x in (tcp, tls, http) if x is not None]
    return math.fsum(parts) / len(parts) if parts and tcp is not None and http is not None else None


def rpm_from(tm_tcp: float | None, tm_tls: float | None, tm_http_f: float | None,
             tm_http_l: float | None) -> float | None:
    """The draft's RPM from the trimmed means (ms); ``tm_tls`` None is the TCP-only case. With only
    one kind of probe measured, RPM is that kind's alone; None with neither."""
    foreign_ms = foreign_latency_ms(tm_tcp, tm_tls, tm_http_f)
    foreign = 60000.0 / foreign_ms if foreign_ms and foreign_ms > 0 else None
    loaded = 60000.0 / tm_http_l if tm_http_l is not None and tm_http_l > 0 else None
    if foreign is not None and loaded is not None:
        return (foreign + loaded) / 2
    return foreign if foreign is not None else loaded


#: The draft's advice to both ends of a loaded connection: keep about 5 ms of its rate written but
#: not yet sent (TCP_NOTSENT_LOWAT sized from the rate), so that a probe's request or answer queued
#: behind the load waits about that long, not the seconds a full send buffer holds at a few Mbit/s.
UNSENT_S = 0.005


def unsent_allowance(rate_bps: float, *, floor: int, ceiling: int, seconds: float = UNSENT_S,
                     power_of_two: bool = False) -> int:
    """``seconds`` of ``rate_bps`` in bytes within ``floor``..``ceiling``; ``power_of_two`` rounds it
    up first (a server's: few distinct sizes, as they size frames, and up to 2x of margin, so the
    allowance itself never holds the rate down)."""
    want = max(1.0, rate_bps / 8 * seconds)
    if power_of_two:
        want = 1 << math.ceil(math.log2(want))
    return int(max(floor, min(ceiling, want)))


class Band(str, enum.Enum):
    """The draft's bands of responsiveness."""

    POOR = "poor"  # < 300 RPM: a round trip over 200 ms
    FAIR = "fair"  # 300-1000 RPM
    GOOD = "good"  # 1000-6000 RPM
    EXCELLENT = "excellent"  # >= 6000 RPM: a round trip under 10 ms

    def __str__(self) -> str:
        return self.value


def rpm_band(rpm: float) -> Band:
    if rpm < 300:
        return Band.POOR
    if rpm < 1000:
        return Band.FAIR
    if rpm < 6000:
        return Band.GOOD
    return Band.EXCELLENT


def probe_pairs_per_s(goodput_bps: float | None, params: AlgorithmParams) -> float:
    """How many foreign+self probe pairs a second the goodput allows: at most MPS, and their bytes at
    most PTC of the goodput. Before any goodput is known, a tenth of MPS."""
    if goodput_bps is None or goodput_bps <= 0:
        return max(1.0, params.max_probes_per_s / 10)
    share = params.probe_capacity_share * goodput_bps / 8 / (FOREIGN_PROBE_BYTES + SELF_PROBE_BYTES)
    return max(1.0, min(params.max_probes_per_s, share))


def stable(values: Sequence[float], mad: int, sdt: float) -> bool:
    """The draft's stability: the last ``mad`` values' standard deviation within ``sdt`` of the newest."""
    if len(values) < mad:
        return False
    last = values[-mad:]
    return statistics.pstdev(last) < sdt * abs(last[-1])


# ----- probes and intervals -----------------------------------------------------------------------

class ProbeKind(str, enum.Enum):
    FOREIGN = "foreign"
    SELF = "self"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ProbeSample:
    """One finished probe. Foreign: ``tcp_ms``, ``tls_ms`` (normalized; None without TLS), ``http_ms``
    (``http_f``). Self: ``http_ms`` is ``http_l``. ``at_ns``: when it finished (or was given up)."""

    kind: ProbeKind
    at_ns: int
    http_ms: float
    tcp_ms: float | None = None
    tls_ms: float | None = None
    answered: bool = True  # False: never answered, ``http_ms`` is the time it waited (a lower bound)


@dataclass(frozen=True)
class ProbeStats:
    """Trimmed means and percentiles of a set of probes (ms)."""

    tm_tcp: float | None
    tm_tls: float | None
    tm_http_f: float | None
    tm_http_l: float | None
    foreign: int
    self_: int
    percentiles: dict[str, dict[str, float | None]]

    @property
    def rpm(self) -> float | None:
        return rpm_from(self.tm_tcp, self.tm_tls, self.tm_http_f, self.tm_http_l)

    @property
    def foreign_latency_ms(self) -> float | None:
        return foreign_latency_ms(self.tm_tcp, self.tm_tls, self.tm_http_f)


METRICS = ("tcp_f", "tls_f", "http_f", "http_l")


def probe_stats(probes: Sequence[ProbeSample], keep_percent: float = 95.0) -> ProbeStats:
    """Trimmed means (the draft's aggregation) and p50/p90/p99 of each metric over ``probes``."""
    foreign = [p for p in probes if p.kind is ProbeKind.FOREIGN]
    selfp = [p for p in probes if p.kind is ProbeKind.SELF]
    series: dict[str, list[float]] = {
        "tcp_f": [p.tcp_ms for p in foreign if p.tcp_ms is not None],
        "tls_f": [p.tls_ms for p in foreign if p.tls_ms is not None],
        "http_f": [p.http_ms for p in foreign],
        "http_l": [p.http_ms for p in selfp],
    }
    pct = {name: {f"p{q}": percentile(vals, q) for q in (50, 90, 99)} for name, vals in series.items()}
    return ProbeStats(
        tm_tcp=trimmed_mean(series["tcp_f"], keep_percent),
        tm_tls=trimmed_mean(series["tls_f"], keep_percent),
        tm_http_f=trimmed_mean(series["http_f"], keep_percent),
        tm_http_l=trimmed_mean(series["http_l"], keep_percent),
        foreign=len(foreign), self_=len(selfp), percentiles=pct)


@dataclass(frozen=True)
class IntervalRecord:
    """One finished interval of a direction (the jsonl ``interval`` event)."""

    direction: str
    index: int
    start_ns: int  # since the direction began
    end_ns: int
    bytes: int
    connections: int
    stage: Stage
    goodput_ma_bps: float
    rpm: float | None
    foreign: int  # probes finished in this interval
    self_: int

    @property
    def goodput_bps(self) -> float:
        dur = self.end_ns - self.start_ns
        return self.bytes * 8 * NS / dur if dur > 0 else 0.0


@dataclass(frozen=True)
class Decision:
    """What the I/O layer does after an interval: open ``add`` connections; stop when ``done``."""

    add: int
    done: bool
    record: IntervalRecord


@dataclass
class DirectionRun:
    """The algorithm for one direction. ``start_ns`` is when its first connections were opened."""

    direction: str
    params: AlgorithmParams
    start_ns: int
    connections: int = 0
    stage: Stage = Stage.GOODPUT
    intervals: list[IntervalRecord] = field(default_factory=list)
    goodput_mas: list[float] = field(default_factory=list)
    rpms: list[float] = field(default_factory=list)
    goodput_stable: bool = False
    rpm_stable: bool = False
    goodput_intervals: int = 0  # intervals the goodput stage ran
    rpm_intervals: int = 0
    _probes: list[list[ProbeSample]] = field(default_factory=lambda: [[]])
    _stage_start_ns: int = 0

    def __post_init__(self) -> None:
        self.connections = self.params.initial_connections
        self._stage_start_ns = self.start_ns

    @property
    def goodput_bps(self) -> float | None:
        """The current moving-average goodput (None before the first interval)."""
        return self.goodput_mas[-1] if self.goodput_mas else None

    def add_probe(self, probe: ProbeSample) -> None:
        """A finished probe, counted in the interval under way."""
        self._probes[-1].append(probe)

    def add_unanswered(self, probe: ProbeSample, *, at_end: bool) -> bool:
        """A self probe never answered (still waiting when the direction ended, or past its timeout),
        with the time it waited so far: a lower bound of its latency, so that a connection whose
        answers never come back within the run does not drop out of the result (nginx's h2 can hold
        one behind seconds of /large). It counts only when that bound already says it is slow: at
        least one interval, or longer than every answered self probe of the window. A probe sent
        moments before the end says nothing yet: counted, its wait would read as a sub-millisecond
        round trip and inflate the RPM. At the end it counts in the last finished interval, else in
        the one under way. Returns whether it counted."""
        answered = [p.http_ms for p in self.window_probes(include_current=True)
                    if p.kind is ProbeKind.SELF and p.answered]
        if probe.http_ms < min(self.params.interval_s * 1000.0, max(answered, default=math.inf)):
            return False
        self._probes[-2 if at_end and len(self._probes) > 1 else -1].append(replace(probe, answered=False))
        return True

    def window_probes(self, *, include_current: bool = False) -> list[ProbeSample]:
        """The probes of the last MAD finished intervals (and the one under way if asked)."""
        done = self._probes[:-1][-self.params.mad:]
        out = [p for batch in done for p in batch]
        if include_current:
            out += self._probes[-1]
        return out

    def end_interval(self, now_ns: int, nbytes: int) -> Decision:
        """The interval under way ended at ``now_ns`` having moved ``nbytes`` on the load connections."""
        p = self.params
        start = self.intervals[-1].end_ns if self.intervals else 0
        end = now_ns - self.start_ns
        batch = self._probes[-1]
        self._probes.append([])
        recent = [*self.intervals[-(p.mad - 1):]] if p.mad > 1 else []
        total_bytes = nbytes + sum(r.bytes for r in recent)
        span = end - (recent[0].start_ns if recent else start)
        ma = total_bytes * 8 * NS / span if span > 0 else 0.0
        self.goodput_mas.append(ma)
        add = 0
        # The RPM so far, shown while goodput still ramps too (a view of it converging); only the
        # responsiveness stage's values count towards its stability.
        rpm = probe_stats(self.window_probes(), p.trim_percent).rpm
        stage = self.stage
        if stage is Stage.GOODPUT:
            self.goodput_intervals += 1
            if stable(self.goodput_mas, p.mad, p.sdt):
                self.goodput_stable = True
            if self.goodput_stable or now_ns - self._stage_start_ns >= p.stage_max_s * NS:
                self.stage = Stage.RESPONSIVENESS
                self._stage_start_ns = now_ns
            else:
                add = max(0, min(p.add_connections, p.max_connections - self.connections))
                self.connections += add
        else:
            self.rpm_intervals += 1
            if rpm is not None:
                self.rpms.append(rpm)
                if stable(self.rpms, p.mad, p.sdt):
                    self.rpm_stable = True
            if self.rpm_stable or now_ns - self._stage_start_ns >= p.stage_max_s * NS:
                self.stage = Stage.DONE
        record = IntervalRecord(
            direction=self.direction, index=len(self.intervals), start_ns=start, end_ns=end, bytes=nbytes,
            connections=self.connections - add, stage=stage, goodput_ma_bps=ma, rpm=rpm,
            foreign=sum(1 for x in batch if x.kind is ProbeKind.FOREIGN),
            self_=sum(1 for x in batch if x.kind is ProbeKind.SELF))
        self.intervals.append(record)
        return Decision(add, self.stage is Stage.DONE, record)

    def confidence(self, stage: Stage) -> Confidence:
        """The draft's confidence of a stage: high when stable, medium after MAD intervals, else low."""
        ran, ok = ((self.goodput_intervals, self.goodput_stable) if stage is Stage.GOODPUT
                   else (self.rpm_intervals, self.rpm_stable))
        if ok:
            return Confidence.HIGH
        return Confidence.MEDIUM if ran >= self.params.mad else Confidence.LOW

    def final_stats(self) -> ProbeStats:
        """The probes the result is computed from: the last MAD intervals (every probe of the direction
        when those have none: a run cut short)."""
        probes = self.window_probes()
        if not probes:  # a run cut short: whatever this direction measured
            probes = [p for batch in self._probes for p in batch]
        return probe_stats(probes, self.params.trim_percent)

    def window_ns(self) -> tuple[int, int]:
        """The span (since the direction began) the final probes come from."""
        if not self.intervals:
            return (0, 0)
        last = self.intervals[-self.params.mad:]
        return (last[0].start_ns, last[-1].end_ns)
