"""What ``netkit monitor`` knows: its configuration, one target's round, and the running totals.

Pure code. The I/O layer (``netkit.io.measure.monitor``) probes, passes the outcomes and the times in,
and reads snapshots out; nothing here opens a socket, reads a clock or prints. The totals are
what the Prometheus collector exports, so their meaning is defined here once:

- ``success``: 1 when the last round got an answer (a TCP connect, a UDP reply or an ICMP
  echo reply), else 0.
- ``duration_s``: how long the last round took for that target, probe and latency packets.
- ``attempts_total``: reachability attempts made (retries included; for icmp, one per round).
- ``packets_sent_total`` / ``packets_lost_total``: the latency packets of every round and those
  never answered within the timeout (a late reply is neither received nor lost).
- the RTT histogram: every latency packet's round-trip time, in seconds.

A ``trace`` target's round is one traced path (``netkit.core.monitor_trace``): ``success`` is the
destination answering, its one probe at the destination's TTL is the round's one packet (sent 1,
lost 0 or 1, its RTT in the histogram), and the per-hop state lives in ``TargetTotals.trace``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from netkit.core.monitor_dns import DnsProbe, DnsRound, DnsTotals
from netkit.core.monitor_http import HttpProbeSpec, HttpRoundInfo
from netkit.core.monitor_trace import DEFAULT_MAX_HOPS, TraceHop, TraceTotals, hop_count, hops_of
from netkit.core.trace_models import TargetTrace

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.keyed import Key


class MonitorMethod(str, Enum):
    """How a target is watched: a TCP connect, UDP probe packets (a reflector answers), ICMP echo,
    or the path to it hop by hop (udp probes with growing TTL, unprivileged)."""

    TCP_CONNECT = "tcp-connect"
    UDP = "udp"
    ICMP = "icmp"
    TRACE = "trace"
    HTTP = "http"
    DNS = "dns"

    def __str__(self) -> str:
        return self.value


METHODS: tuple[str, ...] = tuple(m.value for m in MonitorMethod)

#: RTT histogram bounds in seconds: 100 us (loopback) to 2.5 s (a bad mobile link).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)
#: Labels netkit sets itself; a user label may not take these names.
RESERVED_LABELS = ("target", "method")
#: Labels of the per-hop trace series; a user label may not take these names either.
TRACE_LABELS = ("ttl", "address")
DEFAULT_LISTEN = ("127.0.0.1", 9464)


@dataclass(frozen=True)
class MonitorTarget:
    """One thing to watch, with every setting resolved (no defaults left to apply)."""

    name: str  # the ``target`` label: HOST:PORT as written, or the config's ``name``
    host: str
    port: int  # 0 for icmp; for trace 0 (traceroute's varying ports) or the one fixed udp port
    method: MonitorMethod
    interval_s: float
    timeout_s: float
    packets: int
    packet_interval_s: float
    retries: int
    labels: tuple[tuple[str, str], ...] = ()
    max_hops: int = DEFAULT_MAX_HOPS  # trace: the highest TTL probed
    http: HttpProbeSpec | None = None  # http: the URL and the checks
    dns: DnsProbe | None = None  # dns: the question and its checks

    @property
    def key(self) -> tuple[str, MonitorMethod]:
        """Identity across reloads: the same name and method keep their counters."""
        return (self.name, self.method)

    @property
    def budget_s(self) -> float:
        """The longest a round may take: 90% of the interval, so rounds never overlap."""
        return self.interval_s * 0.9


@dataclass(frozen=True)
class KeyRef:
    """Where a shared measurement key is: a file, or an environment variable (never the key itself).

    A config holds the reference; the I/O layer reads the key when it loads the config (and again
    on every reload, so a rotated key file takes effect on SIGHUP).
    """

    file: str | None = None
    env: str | None = None

    @property
    def config_key(self) -> str:
        """The config key the reference was written as (errors name it)."""
        return "key_file" if self.file is not None else "key_env"


@dataclass(frozen=True)
class MonitorConfig:
    """The whole monitor: targets, where metrics go, the dashboard window, histogram bounds.

    ``key_ref`` says where the udp probes' key is; ``key`` is that key once the I/O layer has read
    it (its repr hides the material). ``common_labels`` are the labels every target carries
    (the file's top-level ``labels``), also set on the monitor's own series.
    """

    targets: tuple[MonitorTarget, ...]
    listen: tuple[str, int] | None = DEFAULT_LISTEN
    textfile: str | None = None
    window: int = 10  # rounds the dashboard's loss column covers
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    key_ref: KeyRef | None = None
    key: Key | None = field(default=None, compare=False, repr=False)
    common_labels: tuple[tuple[str, str], ...] = ()

    def label_names(self) -> tuple[str, ...]:
        """``target``, ``method``, then every user label name (sorted), the same for all series."""
        names = sorted({k for t in self.targets for k, _ in t.labels})
        return (*RESERVED_LABELS, *names)

    def groups(self) -> dict[float, list[MonitorTarget]]:
        """Targets by interval, in config order: each group runs its rounds together."""
        out: dict[float, list[MonitorTarget]] = {}
        for t in self.targets:
            out.setdefault(t.interval_s, []).append(t)
        return out


class RoundState(str, Enum):
    """How a target's round ended: the probe's states, plus ``error`` for a round that could not run.

    str-valued: JSON, CSV and the Prometheus labels show the value, exactly the words of ``probe``.
    """

    OPEN = "open"
    CLOSED = "closed"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    DNS_ERROR = "dns-error"
    TLS_ERROR = "tls-error"
    MISMATCH = "mismatch"
    OPEN_FILTERED = "open|filtered"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TargetRound:
    """One target's outcome in one round; the ``targets[]`` objects of a jsonl round line."""

    target: str
    method: MonitorMethod
    host: str
    port: int
    address: str | None
    success: bool
    state: RoundState
    attempts: int
    duration_ns: int
    sent: int
    received: int
    lost: int
    rtts_ns: tuple[int, ...]
    error: str | None
    hops: tuple[TraceHop, ...] = ()  # trace: every TTL probed this round
    hop_count: int | None = None  # trace: the destination's TTL (None: not reached)
    http: HttpRoundInfo | None = None  # http: the request's phases, status and checks
    dns: DnsRound | None = None  # dns: the answer's rcode, records, truncation, failed check

    @property
    def loss_pct(self) -> float | None:
        return None if self.sent == 0 else round(100.0 * self.lost / self.sent, 4)

    def to_json(self) -> dict[str, Any]:
        rtts = self.rtts_ns
        record: dict[str, Any] = {
            "target": self.target,
            "method": self.method.value,
            "address": self.address,
            "success": self.success,
            "state": self.state.value,
            "attempts": self.attempts,
            "duration_s": round(self.duration_ns / 1e9, 6),
            "sent": self.sent,
            "received": self.received,
            "lost": self.lost,
            "loss_pct": self.loss_pct,
            "rtt_ms": {
                "min": _ms(min(rtts)) if rtts else None,
                "avg": _ms(sum(rtts) / len(rtts)) if rtts else None,
                "max": _ms(max(rtts)) if rtts else None,
                "last": _ms(rtts[-1]) if rtts else None,
            },
            "error": self.error,
        }
        if self.method is MonitorMethod.TRACE:
            record["hop_count"] = self.hop_count
            record["hops"] = [h.to_json() for h in self.hops]
        if self.http is not None:
            record["http"] = self.http.to_json()
        if self.dns is not None:
            record["dns"] = self.dns.to_json()
        return record


@dataclass(frozen=True)
class GroupRound:
    """One round of a group of targets (sharing an interval): what each round hands its renderer."""

    round: int
    time_iso: str
    interval_s: float
    results: list[TargetRound]


@dataclass(frozen=True)
class MonitorOutcome:
    """How a monitor run ended: the per-target totals (``summary_record`` objects, the published
    JSON), whether SIGINT stopped it, and whether ``--rounds`` bounded it."""

    targets: list[dict[str, Any]]
    interrupted: bool
    rounds_limited: bool

    @property
    def all_up(self) -> bool:
        """Every target answered in its last round (the verdict of a ``--rounds`` run)."""
        return all(t["success"] for t in self.targets)


def _ms(ns: float) -> float:
    return round(ns / 1e6, 6)


def round_record(round_no: int, time_iso: str, interval_s: float, rounds: Sequence[TargetRound]) -> dict[str, Any]:
    """One jsonl line: a group's round (every target sharing an interval)."""
    return {
        "event": "round",
        "round": round_no,
        "time": time_iso,
        "interval_s": interval_s,
        "targets": [r.to_json() for r in rounds],
    }


def combine_round(
    t: MonitorTarget,
    *,
    probe_state: str | None,
    attempts: int,
    probe_error: str | None,
    address: str | None,
    sent: int,
    received: int,
    lost: int,
    rtts_ns: Iterable[int],
    latency_error: str | None,
    duration_ns: int,
) -> TargetRound:
    """The round's verdict from the reachability probe and the latency packets.

    ``probe_state`` is None when the round had no reachability step: icmp, and udp to a keyed
    reflector (which drops the unsigned reachability packet): then the latency packets are the check.

    Success is an answer of any kind: the probe opened (a TCP connect, a UDP reply), or at least
    one latency packet came back. A silent UDP port (open|filtered) is not success: a monitor
    watches for answers.
    """
    rtts = tuple(rtts_ns)
    success = (probe_state == "open") or received > 0
    if success:
        state = RoundState.OPEN
    elif probe_state is not None:
        state = RoundState(probe_state)  # closed, timeout, unreachable, dns-error, or open|filtered (silent UDP)
    else:
        state = RoundState.UNREACHABLE if latency_error else RoundState.TIMEOUT
    error = None if success else (probe_error or latency_error or ("no reply" if sent else None))
    if probe_state is None:
        attempts = 1  # icmp, keyed udp: the round's packet train is the one attempt
    return TargetRound(
        target=t.name, method=t.method, host=t.host, port=t.port, address=address, success=success,
        state=state, attempts=attempts, duration_ns=duration_ns, sent=sent, received=received, lost=lost,
        rtts_ns=rtts, error=error,
    )


def trace_round(t: MonitorTarget, trace: TargetTrace, duration_ns: int) -> TargetRound:
    """A trace target's round from its one-round trace: success is the destination answering."""
    hops = hops_of(trace)
    dest = trace.destination
    reached = dest is not None and dest.received > 0
    rtts = (int(dest.last_ns),) if dest is not None and dest.last_ns is not None else ()
    if reached:
        state, error = RoundState.OPEN, None
    elif trace.error:
        state, error = RoundState.UNREACHABLE, trace.error
    else:
        state, error = RoundState.TIMEOUT, "destination not reached"
    return TargetRound(
        target=t.name, method=t.method, host=t.host, port=t.port, address=trace.address, success=reached,
        state=state, attempts=1, duration_ns=duration_ns, sent=1, received=int(reached), lost=int(not reached),
        rtts_ns=rtts, error=error, hops=hops, hop_count=hop_count(trace) if reached else None,
    )


def error_round(t: MonitorTarget, error: str, duration_ns: int, attempts: int = 1) -> TargetRound:
    """A round that could not run (an exception, an overrun): failure, nothing measured."""
    return TargetRound(
        target=t.name, method=t.method, host=t.host, port=t.port, address=None, success=False,
        state=RoundState.ERROR, attempts=attempts, duration_ns=duration_ns, sent=0, received=0, lost=0,
        rtts_ns=(), error=error,
    )


# ----- running totals (what the collector exports) ------------------------------------------
@dataclass
class TargetTotals:
    """Counters and the RTT histogram of one target since the monitor started."""

    buckets: tuple[float, ...]
    rounds: int = 0
    up_rounds: int = 0
    success: bool | None = None
    duration_s: float | None = None
    attempts_total: int = 0
    sent_total: int = 0
    lost_total: int = 0
    rtt_counts: list[int] = field(default_factory=list)  # per bucket (not cumulative) + one for +Inf
    rtt_sum_s: float = 0.0
    rtt_count: int = 0
    trace: TraceTotals | None = None  # a trace target's per-hop state
    http: HttpRoundInfo | None = None  # an http target's last round
    dns: DnsTotals | None = None  # a dns target's last answer and counters

    def __post_init__(self) -> None:
        if not self.rtt_counts:
            self.rtt_counts = [0] * (len(self.buckets) + 1)

    def record(self, r: TargetRound) -> None:
        self.rounds += 1
        self.up_rounds += r.success
        self.success = r.success
        self.duration_s = r.duration_ns / 1e9
        self.attempts_total += r.attempts
        self.sent_total += r.sent
        self.lost_total += r.lost
        for ns in r.rtts_ns:
            s = ns / 1e9
            self.rtt_counts[_bucket_index(self.buckets, s)] += 1
            self.rtt_sum_s += s
            self.rtt_count += 1
        if self.trace is not None and r.method is MonitorMethod.TRACE:
            self.trace.record(r.hops, r.hop_count)
        if r.http is not None:
            self.http = r.http
        if self.dns is not None and r.dns is not None:
            self.dns.record(r.dns, r.rtts_ns[-1] if r.rtts_ns else None, r.received > 0)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, cumulative count)`` pairs ending with ``+Inf``, as the exposition format wants."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*self.buckets, float("inf")), self.rtt_counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else _float_text(bound), running))
        return out


def summary_record(t: MonitorTarget, tot: TargetTotals) -> dict[str, Any]:
    """One target's totals since start (the summary printed when the monitor stops)."""
    record: dict[str, Any] = {
        "target": t.name,
        "method": t.method.value,
        "rounds": tot.rounds,
        "up_rounds": tot.up_rounds,
        "success": tot.success,
        "attempts": tot.attempts_total,
        "sent": tot.sent_total,
        "lost": tot.lost_total,
        "loss_pct": None if tot.sent_total == 0 else round(100.0 * tot.lost_total / tot.sent_total, 4),
        "rtt_avg_ms": None if tot.rtt_count == 0 else round(tot.rtt_sum_s / tot.rtt_count * 1e3, 6),
    }
    if tot.trace is not None:
        record["hop_count"] = tot.trace.hop_count
    return record


def _bucket_index(bounds: Sequence[float], value: float) -> int:
    for i, b in enumerate(bounds):
        if value <= b:
            return i
    return len(bounds)


def _float_text(v: float) -> str:
    return repr(float(v))


@dataclass
class TargetWindow:
    """The dashboard's memory of one target: the last rounds and the last RTTs."""

    size: int
    rounds: deque[TargetRound] = field(default_factory=deque)
    rtts_ns: deque[int] = field(default_factory=lambda: deque(maxlen=40))

    def record(self, r: TargetRound) -> None:
        self.rounds.append(r)
        while len(self.rounds) > self.size:
            self.rounds.popleft()
        self.rtts_ns.extend(r.rtts_ns)

    @property
    def last(self) -> TargetRound | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def loss_pct(self) -> float | None:
        """Lost over sent across the window's rounds (None when no packet was sent)."""
        sent = sum(r.sent for r in self.rounds)
        lost = sum(r.lost for r in self.rounds)
        return None if sent == 0 else 100.0 * lost / sent

    @property
    def up_rounds(self) -> int:
        return sum(1 for r in self.rounds if r.success)


class MonitorState:
    """Totals and windows for the configured targets; a reload keeps those still configured."""

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.totals: dict[tuple[str, str], TargetTotals] = {}
        self.windows: dict[tuple[str, str], TargetWindow] = {}
        self.apply(config)

    def apply(self, config: MonitorConfig) -> tuple[int, int]:
        """Switch to ``config``: new targets start at zero, removed ones vanish. (added, removed)."""
        keys = {t.key for t in config.targets}
        removed = [k for k in self.totals if k not in keys]
        for k in removed:
            del self.totals[k]
            self.windows.pop(k, None)
        added = 0
        for t in config.targets:
            tot = self.totals.get(t.key)
            if tot is None or tot.buckets != config.buckets:
                added += tot is None
                tot = self.totals[t.key] = TargetTotals(config.buckets)
            if t.method is MonitorMethod.TRACE:
                if tot.trace is None:
                    tot.trace = TraceTotals(config.buckets, config.window)
                tot.trace.resize(config.window)
            if t.method is MonitorMethod.DNS and tot.dns is None:
                tot.dns = DnsTotals()
            win = self.windows.get(t.key)
            if win is None:
                self.windows[t.key] = TargetWindow(config.window)
            else:
                win.size = config.window
        self.config = config
        return added, len(removed)

    def record(self, r: TargetRound) -> None:
        key = (r.target, r.method)
        tot = self.totals.get(key)
        if tot is None:  # a round of a target removed by a reload while it ran
            return
        tot.record(r)
        self.windows[key].record(r)
