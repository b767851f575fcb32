"""The metrics ``netkit monitor`` exports, computed from its state: pure data, no exporter.

This module decides what is exported (names, types, help, label sets, values); the I/O layer's
collector (``netkit.io.measure.monitor.MonitorCollector``) hands these families to
``prometheus_client`` at each scrape, under the monitor's lock. The label set (``target``,
``method`` and the union of user labels) is computed per scrape because a reload may change it,
which fixed-label ``Gauge``/``Counter`` objects cannot do. Unknown is not zero: a target that has
not finished a round has no ``success`` or ``duration`` sample.

Trace targets add the ``netkit_trace_*`` families (``netkit.core.monitor_trace``): the hop count,
and per TTL (label ``ttl``) probes sent and lost, the loss ratio over the window, the rate-limit
flag, the RTT histogram and the answers per responding address (label ``address``). Their label
cardinality is bounded: ``ttl`` up to the target's ``max_hops``, at most four addresses per TTL
plus ``other``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from netkit.core.monitor_dns import dns_families
from netkit.core.monitor_http import http_families
from netkit.core.monitor_models import RESERVED_LABELS, MonitorState, TargetTotals


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
    families = [
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
                     "1 when the last SIGHUP reload of --config or --mesh succeeded, 0 when it failed",
                     tuple(k for k, _ in cfg.common_labels),  # the labels every series carries (a mesh's source)
                     (MetricSeries(tuple(v for _, v in cfg.common_labels), 1.0 if reload_ok is None or reload_ok
                                   else 0.0),)),
    ]
    families.extend(trace_families(state))
    families.extend(http_families(state))
    families.extend(dns_families(state))
    return families


def trace_families(state: MonitorState) -> list[MetricFamily]:
    """The ``netkit_trace_*`` families; none at all when no trace target is configured."""
    cfg = state.config
    names = cfg.label_names()
    extra = names[len(RESERVED_LABELS):]
    found: list[tuple[tuple[str, ...], TargetTotals]] = []
    for t in cfg.targets:
        tot = state.totals.get(t.key)
        if tot is not None and tot.trace is not None:
            own = dict(t.labels)
            found.append(((t.name, t.method.value, *(own.get(n, "") for n in extra)), tot))
    if not found:
        return []
    hops: list[MetricSeries] = []
    sent: list[MetricSeries] = []
    lost: list[MetricSeries] = []
    ratio: list[MetricSeries] = []
    limited: list[MetricSeries] = []
    rtt: list[MetricSeries] = []
    answers: list[MetricSeries] = []
    for values, tot in found:
        trace = tot.trace
        if trace is None or tot.rounds == 0:
            continue
        hops.append(MetricSeries(values, float(trace.hop_count or 0)))
        flags = trace.rate_limited()
        for ttl in sorted(trace.hops):
            h = trace.hops[ttl]
            at = (*values, str(ttl))
            sent.append(MetricSeries(at, h.sent_total))
            lost.append(MetricSeries(at, h.lost_total))
            if (r := h.loss_ratio) is not None:
                ratio.append(MetricSeries(at, r))
            limited.append(MetricSeries(at, 1.0 if flags.get(ttl) else 0.0))
            rtt.append(MetricSeries(at, buckets=tuple(h.cumulative()), sum=h.rtt_sum_s))
            for address in sorted(h.replies):
                answers.append(MetricSeries((*at, address), h.replies[address]))
    gauge, counter = MetricKind.GAUGE, MetricKind.COUNTER
    per_hop = (*names, "ttl")
    return [
        MetricFamily("netkit_trace_hops", gauge,
                     "TTL at which the destination answered in the last round (the path's hop count); "
                     "0 when it was not reached", names, tuple(hops)),
        MetricFamily("netkit_trace_hop_sent_total", counter, "Trace probes sent at this TTL whose outcome is known",
                     per_hop, tuple(sent)),
        MetricFamily("netkit_trace_hop_lost_total", counter, "Trace probes at this TTL that got no answer",
                     per_hop, tuple(lost)),
        MetricFamily("netkit_trace_hop_loss_ratio", gauge,
                     "Share of this TTL's probes unanswered over the last window of rounds (0-1)", per_hop,
                     tuple(ratio)),
        MetricFamily("netkit_trace_hop_rate_limited", gauge,
                     "1 when this hop's loss is the router limiting its ICMP replies (later hops answered), "
                     "not packets lost in forwarding", per_hop, tuple(limited)),
        MetricFamily("netkit_trace_hop_rtt_seconds", MetricKind.HISTOGRAM, "Round-trip time of each answer at this TTL",
                     per_hop, tuple(rtt)),
        MetricFamily("netkit_trace_hop_responses_total", counter,
                     "Answers at this TTL by responding address (a route change shows as a new address; "
                     "past four addresses, 'other')", (*per_hop, "address"), tuple(answers)),
    ]
