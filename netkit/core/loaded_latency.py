"""Latency under load (``measure throughput --latency``): phases, their RTT statistics, the verdict.

Pure: probe samples come in with their send times (monotonic integer nanoseconds), each phase's
load window with its start and end on the same clock; nothing here reads a clock or opens a socket.

A run is an idle phase (probes only), then one phase per direction asked for (upload, download,
bidir), each a throughput test, with RTT probes running the whole time. A probe belongs to the
phase whose window holds its *send* time; probes sent between windows (connection setup, the
server's report, a queue draining) belong to none. Per phase: the RTT percentiles (p50, p90,
p99, linear interpolation as :mod:`netkit.core.stats` defines them), the probe count and loss,
and for a loaded phase the latency the load added: loaded p50 minus idle p50 (and p90 minus p90).

Field names are the published JSON schema of the ``latency`` object (README, "netkit measure
throughput"); :func:`latency_json` builds them explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from netkit.core.stats import summarize_rtts
from netkit.core.throughput_models import ThroughputResult
from netkit.core.units import format_ms

NS = 1_000_000_000
NS_PER_MS = 1_000_000
#: Probes may use at most this share of the measured rate before a warning says they may disturb it.
PROBE_SHARE_LIMIT_PERCENT = 1.0


class _Word(str, Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Phase(_Word):
    """One part of the run: no load, or the load of one direction (seen from the client)."""

    IDLE = "idle"
    UPLOAD = "upload"  # the client sends
    DOWNLOAD = "download"  # the server sends (-R)
    BIDIR = "bidir"  # both at once (--bidir)


LOADED_PHASES = (Phase.UPLOAD, Phase.DOWNLOAD, Phase.BIDIR)
_PHASE_WORDS = {"up": Phase.UPLOAD, "upload": Phase.UPLOAD, "down": Phase.DOWNLOAD,
                "download": Phase.DOWNLOAD, "bidir": Phase.BIDIR, "both": Phase.BIDIR}


class ProbeChoice(_Word):
    """``--latency-probe``: how RTT is taken while the load runs."""

    AUTO = "auto"  # the best the server allows (see ``netkit.io.measure.loaded_latency``)
    ECHO = "echo"  # small requests on a separate session to netkit serve tcp
    TCP_CONNECT = "tcp-connect"  # a handshake per probe (iperf3 and plain: to a closed port, RST)
    ICMP = "icmp"  # echo requests


PROBE_CHOICES = tuple(p.value for p in ProbeChoice)


def parse_directions(text: str) -> tuple[Phase, ...]:
    """``--directions down,up,bidir`` -> phases in that order; ValueError names a bad word."""
    phases: list[Phase] = []
    for word in (w.strip().lower() for w in text.split(",")):
        if not word:
            continue
        phase = _PHASE_WORDS.get(word)
        if phase is None:
            raise ValueError(f"unknown direction {word!r} (use up, down or bidir, separated by commas)")
        if phase in phases:
            raise ValueError(f"direction {phase} given twice")
        phases.append(phase)
    if not phases:
        raise ValueError("no direction given (use up, down or bidir, separated by commas)")
    return tuple(phases)


def flag_phase(reverse: bool, bidir: bool) -> Phase:
    """The one loaded phase the throughput flags choose (default upload, -R download, --bidir)."""
    return Phase.BIDIR if bidir else Phase.DOWNLOAD if reverse else Phase.UPLOAD


@dataclass(frozen=True)
class LoadedLatencyConfig:
    """What ``--latency`` adds to a throughput test."""

    probe: ProbeChoice = ProbeChoice.AUTO
    interval_s: float = 0.1
    idle_s: float = 2.0
    phases: tuple[Phase, ...] = (Phase.UPLOAD,)
    #: A probe not answered within this is lost (a full 100 ms queue is far below it).
    timeout_s: float = 2.0
    #: ``--max-added-latency``: a loaded phase whose added p50 is above this fails the check (ms).
    max_added_latency_ms: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "probe", ProbeChoice(self.probe))
        object.__setattr__(self, "phases", tuple(Phase(p) for p in self.phases))
        if not self.phases or Phase.IDLE in self.phases:
            raise ValueError("phases must name loaded directions (upload, download, bidir)")
        if self.interval_s <= 0:
            raise ValueError("the probe interval must be above 0")

    def total_s(self, phase_s: float) -> float:
        """Wall-clock time of the whole run: the idle phase, then each loaded phase of ``phase_s``."""
        return self.idle_s + phase_s * len(self.phases)


@dataclass(frozen=True)
class ProbeSample:
    """One probe: when it left (monotonic ns) and its RTT (ns), or None when lost or failed."""

    sent_ns: int
    rtt_ns: int | None


@dataclass(frozen=True)
class PhaseWindow:
    """The span of one phase whose probes count (monotonic ns; a loaded one: the measured load)."""

    phase: Phase
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class PhaseRate:
    """A loaded phase's throughput: the headline rate, and each direction apart for bidir."""

    bits_per_second: float | None
    send_bits_per_second: float | None = None
    recv_bits_per_second: float | None = None

    @property
    def lowest(self) -> float | None:
        """The smallest rate of the phase (bidir: the slower direction), the probes' yardstick."""
        known = [r for r in (self.send_bits_per_second, self.recv_bits_per_second) if r is not None]
        if known:
            return min(known)
        return self.bits_per_second


@dataclass(frozen=True)
class PhaseLatency:
    """One phase's probes and, for a loaded one, its throughput and the latency it added."""

    phase: Phase
    start_s: float  # the window, seconds after the run's first probe
    end_s: float
    probes: int  # probes sent in the window that were answered, lost or failed
    received: int
    lost: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    min_ms: float | None = None
    avg_ms: float | None = None
    max_ms: float | None = None
    added_p50_ms: float | None = None  # loaded p50 minus idle p50; None for idle or when unknown
    added_p90_ms: float | None = None
    rate: PhaseRate | None = None  # None for idle

    @property
    def loss_percent(self) -> float | None:
        return None if self.probes == 0 else round(100.0 * self.lost / self.probes, 3)


@dataclass(frozen=True)
class ProbeLoad:
    """What the probes themselves put on the path, against the measured rate."""

    bytes_per_probe: int  # IP bytes both ways, as estimated for the method (headers included)
    bits_per_second: float
    share_percent: float | None  # of the slowest loaded phase's rate; None when no rate is known

    @property
    def over_limit(self) -> bool:
        return self.share_percent is not None and self.share_percent > PROBE_SHARE_LIMIT_PERCENT


@dataclass(frozen=True)
class AddedLatencyThreshold:
    """``--max-added-latency`` and its verdict."""

    max_added_latency_ms: float | None = None
    passed: bool = True
    failed: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedLatency:
    """The latency side of a ``--latency`` run (the throughput side stays a ThroughputResult each)."""

    probe: ProbeChoice  # what was used (never AUTO)
    probe_detail: str  # how and why, in a few words
    interval_s: float
    phases: tuple[PhaseLatency, ...]
    load: ProbeLoad
    thresholds: AddedLatencyThreshold = field(default_factory=AddedLatencyThreshold)
    interrupted: bool = False

    def phase(self, phase: Phase) -> PhaseLatency | None:
        return next((p for p in self.phases if p.phase == phase), None)


@dataclass(frozen=True)
class PhaseThroughput:
    phase: Phase
    result: ThroughputResult


@dataclass(frozen=True)
class LoadedLatencyRun:
    """Everything a ``--latency`` run measured: each loaded phase's throughput, and the latency."""

    target: str
    throughput: tuple[PhaseThroughput, ...]
    latency: LoadedLatency
    interrupted: bool
    warnings: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.latency.thresholds.passed and all(t.result.thresholds.passed for t in self.throughput)



# ----- arithmetic ------------------------------------------------------------------------------

def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / NS_PER_MS, 3)


def in_window(samples: Iterable[ProbeSample], window: PhaseWindow) -> list[ProbeSample]:
    """The samples sent inside ``window`` (start included, end excluded)."""
    return [s for s in samples if window.start_ns <= s.sent_ns < window.end_ns]


def phase_latency(window: PhaseWindow, samples: Sequence[ProbeSample], origin_ns: int,
                  idle: PhaseLatency | None = None, rate: PhaseRate | None = None) -> PhaseLatency:
    """The statistics of the probes sent in ``window``; added latency against ``idle`` when given.

    ``samples`` may hold every probe of the run: only the window's count. ``origin_ns`` is the
    run's start (the window's times are said relative to it).
    """
    mine = in_window(samples, window)
    rtts = [s.rtt_ns for s in mine if s.rtt_ns is not None]
    st = summarize_rtts(rtts)
    p50, p90 = _ms(st.p50), _ms(st.p90)
    added50 = added90 = None
    if idle is not None and window.phase != Phase.IDLE:
        if p50 is not None and idle.p50_ms is not None:
            added50 = round(p50 - idle.p50_ms, 3)
        if p90 is not None and idle.p90_ms is not None:
            added90 = round(p90 - idle.p90_ms, 3)
    return PhaseLatency(
        phase=window.phase,
        start_s=round((window.start_ns - origin_ns) / NS, 3), end_s=round((window.end_ns - origin_ns) / NS, 3),
        probes=len(mine), received=len(rtts), lost=len(mine) - len(rtts),
        p50_ms=p50, p90_ms=p90, p99_ms=_ms(st.p99), min_ms=_ms(st.min), avg_ms=_ms(st.avg), max_ms=_ms(st.max),
        added_p50_ms=added50, added_p90_ms=added90, rate=rate,
    )


def summarize_phases(windows: Sequence[PhaseWindow], samples: Sequence[ProbeSample], origin_ns: int,
                     rates: dict[Phase, PhaseRate]) -> tuple[PhaseLatency, ...]:
    """Every window's statistics, in order; loaded phases measured against the idle one."""
    idle_w = next((w for w in windows if w.phase == Phase.IDLE), None)
    idle = phase_latency(idle_w, samples, origin_ns) if idle_w is not None else None
    out: list[PhaseLatency] = [] if idle is None else [idle]
    for w in windows:
        if w.phase != Phase.IDLE:
            out.append(phase_latency(w, samples, origin_ns, idle, rates.get(w.phase)))
    return tuple(out)


#: IP bytes of one probe, both ways, per method (IPv4; IPv6 adds 20 per packet). ICMP: request and
#: reply of 20 + 8 + 56. echo: a 12-byte request and an 8-byte reply, each with 52 bytes of TCP/IP
#: headers (timestamps on), and a bare ACK. tcp-connect to an open port: SYN, SYN-ACK, ACK, then
#: FIN, FIN, ACK. To a closed port: SYN and RST.
_PROBE_BYTES = {("icmp", True): 168, ("echo", True): 176, ("tcp-connect", True): 328,
                ("tcp-connect", False): 100}
_PROBE_PACKETS = {("icmp", True): 2, ("echo", True): 3, ("tcp-connect", True): 6, ("tcp-connect", False): 2}


def probe_wire_bytes(probe: ProbeChoice, *, port_open: bool = True, v6: bool = False) -> int:
    """Estimated IP bytes (both ways) one probe of ``probe`` puts on the path."""
    key = (str(probe), port_open if probe == ProbeChoice.TCP_CONNECT else True)
    return _PROBE_BYTES[key] + (20 * _PROBE_PACKETS[key] if v6 else 0)


def probe_load(bytes_per_probe: int, interval_s: float, phases: Sequence[PhaseLatency]) -> ProbeLoad:
    """The probes' rate and its share of the slowest loaded phase's measured rate."""
    bits = bytes_per_probe * 8 / interval_s
    rates = [p.rate.lowest for p in phases if p.rate is not None and p.rate.lowest]
    share = None if not rates else 100.0 * bits / min(r for r in rates if r is not None)
    return ProbeLoad(bytes_per_probe, round(bits, 1), share)


def check_added_latency(phases: Sequence[PhaseLatency], max_ms: float | None) -> AddedLatencyThreshold:
    """``--max-added-latency``: each loaded phase's added p50 must be at most ``max_ms``."""
    failed: list[str] = []
    if max_ms is not None:
        for p in phases:
            if p.phase == Phase.IDLE:
                continue
            if p.added_p50_ms is None:
                failed.append(f"{p.phase}: added latency unknown (no RTT measured)")
            elif p.added_p50_ms > max_ms:
                failed.append(f"{p.phase}: added latency {format_added(p.added_p50_ms)} is above "
                              f"--max-added-latency {format_ms(max_ms)}")
    return AddedLatencyThreshold(max_ms, not failed, tuple(failed))


def format_added(v: float | None) -> str:
    """An added latency with its sign, at the precision of the RTT columns: ``+37.6 ms``,
    ``-0.120 ms``; ``-`` when unknown."""
    if v is None:
        return "-"
    return ("+" if v >= 0 else "-") + format_ms(abs(v))


def phase_json(p: PhaseLatency) -> dict[str, Any]:
    """One phase in the published ``latency.phases[]`` form."""
    d: dict[str, Any] = {
        "phase": str(p.phase), "start_s": p.start_s, "end_s": p.end_s,
        "probes": p.probes, "received": p.received, "lost": p.lost, "loss_percent": p.loss_percent,
        "rtt_ms": {"min": p.min_ms, "avg": p.avg_ms, "p50": p.p50_ms, "p90": p.p90_ms, "p99": p.p99_ms,
                   "max": p.max_ms},
        "added_ms": None if p.phase == Phase.IDLE else {"p50": p.added_p50_ms, "p90": p.added_p90_ms},
        "bits_per_second": None if p.rate is None else p.rate.bits_per_second,
    }
    if p.rate is not None and p.rate.send_bits_per_second is not None:
        d["send_bits_per_second"] = p.rate.send_bits_per_second
        d["recv_bits_per_second"] = p.rate.recv_bits_per_second
    return d


def latency_json(r: LoadedLatency) -> dict[str, Any]:
    """The ``latency`` object a ``--latency`` run adds to the throughput JSON."""
    return {
        "probe": str(r.probe), "probe_detail": r.probe_detail, "interval_s": r.interval_s,
        "probe_bytes": r.load.bytes_per_probe, "probe_bits_per_second": r.load.bits_per_second,
        "probe_share_percent": r.load.share_percent, "interrupted": r.interrupted,
        "phases": [phase_json(p) for p in r.phases],
        "thresholds": {"max_added_latency_ms": r.thresholds.max_added_latency_ms, "passed": r.thresholds.passed,
                       "failed": list(r.thresholds.failed)},
    }
