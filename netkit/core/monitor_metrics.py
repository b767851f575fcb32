"""The Prometheus metric families of ``netkit monitor``, built from its state: pure code.

``prometheus_client``'s metric families are plain data (names, help, label values, samples); no
socket, clock or thread is involved here. The I/O layer's collector calls :func:`metric_families`
under the monitor's lock at each scrape, and tests call it on a hand-made state. The label set
(``target``, ``method`` and the union of user labels) is computed per scrape because a reload may
change it, which fixed-label ``Gauge``/``Counter`` objects cannot do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.core.monitor_models import RESERVED_LABELS, MonitorState

if TYPE_CHECKING:  # pragma: no cover
    from prometheus_client.metrics_core import Metric


def metric_families(state: MonitorState, reload_ok: bool | None) -> list[Metric]:
    """Every family exported at a scrape; ``reload_ok`` None means no SIGHUP reload happened yet."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    cfg = state.config
    names = list(cfg.label_names())
    extra = names[len(RESERVED_LABELS):]
    success = GaugeMetricFamily("netkit_probe_success",
                                "1 when the last round got an answer from the target, else 0", labels=names)
    duration = GaugeMetricFamily("netkit_probe_duration_seconds",
                                 "How long the last round took for the target (probe and latency packets)",
                                 labels=names)
    rtt = HistogramMetricFamily("netkit_rtt_seconds", "Round-trip time of each latency packet", labels=names)
    sent = CounterMetricFamily("netkit_packets_sent_total", "Latency packets sent", labels=names)
    lost = CounterMetricFamily("netkit_packets_lost_total",
                               "Latency packets not answered within the timeout", labels=names)
    attempts = CounterMetricFamily("netkit_probe_attempts_total",
                                   "Reachability attempts, retries included (icmp: one per round)", labels=names)
    rounds = CounterMetricFamily("netkit_monitor_rounds_total", "Rounds completed for the target", labels=names)
    for t in cfg.targets:
        tot = state.totals.get(t.key)
        if tot is None:
            continue
        own = dict(t.labels)
        values = [t.name, t.method, *(own.get(n, "") for n in extra)]
        if tot.success is not None:
            success.add_metric(values, 1.0 if tot.success else 0.0)
        if tot.duration_s is not None:
            duration.add_metric(values, tot.duration_s)
        rtt.add_metric(values, tot.cumulative(), tot.rtt_sum_s)
        sent.add_metric(values, tot.sent_total)
        lost.add_metric(values, tot.lost_total)
        attempts.add_metric(values, tot.attempts_total)
        rounds.add_metric(values, tot.rounds)
    reload = GaugeMetricFamily("netkit_monitor_config_last_reload_successful",
                               "1 when the last SIGHUP reload of --config succeeded, 0 when it failed")
    reload.add_metric([], 1.0 if reload_ok is None or reload_ok else 0.0)
    return [success, duration, rtt, sent, lost, attempts, rounds, reload]
