"""The monitor's collector as Prometheus reads it: ``generate_latest`` parsed back with
``prometheus_client``'s own parser (no sockets; the collector is the I/O layer's, so not a unit test)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netkit.core.monitor_config import CliSettings, config_from_text
from netkit.core.monitor_models import combine_round
from netkit.io.measure.monitor import Monitor


def _families(monitor: Monitor) -> dict[str, object]:
    text = generate_latest(monitor.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_collector_exposition_parses_with_units_types_and_labels() -> None:
    cfg = config_from_text('labels = { site = "lab" }\nbuckets = [0.001, 0.01]\n[[targets]]\ntarget = "127.0.0.1:1"\n'
                           'name = "a"\nlabels = { role = "x" }\n[[targets]]\ntarget = "127.0.0.1:2"\nname = "b"\n',
                           CliSettings())
    monitor = Monitor(cfg)
    fams = _families(monitor)
    # Before a round: counters at zero, no success/duration sample yet (unknown is not 0).
    assert fams["netkit_probe_success"].samples == []  # type: ignore[attr-defined]
    a = cfg.targets[0]
    with monitor.lock:
        monitor.state.record(combine_round(a, probe_state="open", attempts=2, probe_error=None, address="127.0.0.1",
                                           sent=3, received=2, lost=1, rtts_ns=(500_000, 2_000_000),
                                           latency_error=None, duration_ns=300_000_000))
    fams = _families(monitor)
    types = {name: f.type for name, f in fams.items()}  # type: ignore[attr-defined]
    assert types == {"netkit_probe_success": "gauge", "netkit_probe_duration_seconds": "gauge",
                     "netkit_rtt_seconds": "histogram", "netkit_packets_sent": "counter",
                     "netkit_packets_lost": "counter", "netkit_probe_attempts": "counter",
                     "netkit_monitor_rounds": "counter", "netkit_monitor_config_last_reload_successful": "gauge"}
    samples = {(s.name, s.labels.get("target"), s.labels.get("le")): s for f in fams.values()
               for s in f.samples}  # type: ignore[attr-defined]
    ok = samples[("netkit_probe_success", "a", None)]
    assert ok.value == 1.0 and ok.labels == {"target": "a", "method": "tcp-connect", "role": "x", "site": "lab"}
    # Every series carries the same label names; a label a target lacks is empty.
    assert samples[("netkit_packets_sent_total", "b", None)].labels["role"] == ""
    assert samples[("netkit_probe_duration_seconds", "a", None)].value == 0.3
    assert samples[("netkit_packets_sent_total", "a", None)].value == 3
    assert samples[("netkit_packets_lost_total", "a", None)].value == 1
    assert samples[("netkit_probe_attempts_total", "a", None)].value == 2
    assert samples[("netkit_rtt_seconds_bucket", "a", "0.001")].value == 1
    assert samples[("netkit_rtt_seconds_bucket", "a", "+Inf")].value == 2
    assert samples[("netkit_rtt_seconds_count", "a", None)].value == 2
    assert ("netkit_probe_success", "b", None) not in samples
