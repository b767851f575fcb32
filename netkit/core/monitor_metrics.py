"""The metrics ``netkit monitor`` exports, computed from its state: pure data, no exporter.

This module decides what is exported (names, types, help, label sets, values); the I/O layer's
collector (``netkit.io.measure.monitor.MonitorCollector``) hands these families to
``prometheus_client`` at each scrape, under the monitor's lock. The label set (``target``,
``method`` and the union of user labels) is computed per scrape because a reload may change it,
which fixed-label ``Gauge``/``Counter`` objects cannot do. Unknown is not zero: a target that has
not finished a round has no ``success`` or ``duration`` sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from netkit.core.monitor_models import RESERVED_LABELS, MonitorState


class MetricKind(str, Enum):
    """The exposition type of a family (its ``# TYPE`` line)."""

    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricSeries:
    """One labelled series: a value, or for a histogram its cumulative buckets and sum."""

    labels: tuple[str, ...]
    value: float = 0.0
    buckets: tuple[tuple[str, int], ...] = ()
    sum: float = 0.0


@dataclass(frozen=True)
class MetricFamily:
    """A metric name with its type, help text, label names and series.

    Counter names carry their ``_total`` suffix as exposed (``netkit_packets_sent_total``).
    """

    name: str
    kind: MetricKind
    help: str
    label_names: tuple[str, ...]
    series: tuple[MetricSeries, ...]


def metric_families(state: MonitorState, reload_ok: bool | None) -> list[MetricFamily]:
    """Every family exported at a scrape; ``reload_ok`` None means no SIGHUP reload happened yet."""
    cfg = state.config
    names = cfg.label_names()
    extra = names[len(RESERVED_LABELS):]
    success: list[MetricSeries] = []
    duration: list[MetricSeries] = []
    rtt: list[MetricSeries] = []
    sent: list[MetricSeries] = []
    lost: list[MetricSeries] = []
    attempts: list[MetricSeries] = []
    rounds: list[MetricSeries] = []
    for t in cfg.targets:
        tot = state.totals.get(t.key)
        if tot is None:
            continue
        own = dict(t.labels)
        values = (t.name, t.method.value, *(own.get(n, "") for n in extra))
        if tot.success is not None:
            success.append(MetricSeries(values, 1.0 if tot.success else 0.0))
        if tot.duration_s is not None:
            duration.append(MetricSeries(values, tot.duration_s))
        rtt.append(MetricSeries(values, buckets=tuple(tot.cumulative()), sum=tot.rtt_sum_s))
        sent.append(MetricSeries(values, tot.sent_total))
        lost.append(MetricSeries(values, tot.lost_total))
        attempts.append(MetricSeries(values, tot.attempts_total))
        rounds.append(MetricSeries(values, tot.rounds))
    gauge, counter = MetricKind.GAUGE, MetricKind.COUNTER
    return [
        MetricFamily("netkit_probe_success", gauge, "1 when the last round got an answer from the target, else 0",
                     names, tuple(success)),
        MetricFamily("netkit_probe_duration_seconds", gauge,
                     "How long the last round took for the target (probe and latency packets)", names,
                     tuple(duration)),
        MetricFamily("netkit_rtt_seconds", MetricKind.HISTOGRAM, "Round-trip time of each latency packet", names,
                     tuple(rtt)),
        MetricFamily("netkit_packets_sent_total", counter, "Latency packets sent", names, tuple(sent)),
        MetricFamily("netkit_packets_lost_total", counter, "Latency packets not answered within the timeout", names,
                     tuple(lost)),
        MetricFamily("netkit_probe_attempts_total", counter,
                     "Reachability attempts, retries included (icmp: one per round)", names, tuple(attempts)),
        MetricFamily("netkit_monitor_rounds_total", counter, "Rounds completed for the target", names,
                     tuple(rounds)),
        MetricFamily("netkit_monitor_config_last_reload_successful", gauge,
                     "1 when the last SIGHUP reload of --config succeeded, 0 when it failed", (),
                     (MetricSeries((), 1.0 if reload_ok is None or reload_ok else 0.0),)),
    ]
