"""``netkit.core.mesh_prometheus``: the scrape config and alert rules a mesh file gives."""

from __future__ import annotations

import pytest

from netkit.core.errors import InputError
from netkit.core.mesh_config import parse_mesh
from netkit.core.mesh_prometheus import (
    RULES_FILE,
    RuleSettings,
    alert_rules,
    default_scrape_interval_s,
    job_name,
    loss_ratio_expr,
    prom_duration,
    rtt_mean_expr,
    rule_names,
    scrape_config,
)

MESH = """
name = "lab-1"
interval = "1s"
timeout = "200ms"
metrics_port = 9500

[[hosts]]
name = "fra1"
address = "198.18.0.1"
labels = { site = "fra", note = 'say "hi" \\ there' }

[[hosts]]
name = "ams1"
address = "198.18.0.2"

[[hosts]]
name = "v6"
address = "2001:db8::3"

[[probes]]
method = "udp"
packets = 3
"""

TRACE = MESH + '\n[[probes]]\nmethod = "trace"\ninterval = "30s"\n'


def test_scrape_config_has_one_job_and_a_target_per_host_with_its_own_labels() -> None:
    text = scrape_config(parse_mesh(MESH))
    assert f'rule_files:\n  - "{RULES_FILE}"\n' in text
    assert text.count("job_name:") == 1 and 'job_name: "netkit_mesh_lab_1"' in text
    assert '- targets: ["198.18.0.1:9500"]  # "fra1"\n        labels:\n' in text
    assert '"site": "fra"' in text
    # A label value with quotes and a backslash stays one YAML double-quoted scalar.
    assert '"note": "say \\"hi\\" \\\\ there"' in text
    assert '- targets: ["198.18.0.2:9500"]  # "ams1"\n      - targets' in text  # no labels: no labels key
    assert '"[2001:db8::3]:9500"' in text
    # The monitors export these on every series: a target label of the same name would rename theirs.
    for reserved in ("source", "target", "mesh", "method"):
        assert f'"{reserved}":' not in text


def test_scrape_interval_follows_the_fastest_probe_within_bounds() -> None:
    assert default_scrape_interval_s(parse_mesh(MESH)) == 5.0  # 1s probes: at least 5s
    slow = MESH.replace('interval = "1s"', 'interval = "20s"')
    assert default_scrape_interval_s(parse_mesh(slow)) == 20.0
    text = scrape_config(parse_mesh(MESH), scrape_interval_s=0.5)
    assert 'scrape_interval: "500ms"' in text and 'scrape_timeout: "500ms"' in text
    text = scrape_config(parse_mesh(slow))
    assert 'scrape_interval: "20s"' in text and 'scrape_timeout: "10s"' in text


@pytest.mark.parametrize(("seconds", "text"), [(300, "5m"), (5400, "1h30m"), (0.5, "500ms"), (1, "1s"),
                                               (86400, "1d"), (150, "2m30s")])
def test_prom_duration(seconds: float, text: str) -> None:
    assert prom_duration(seconds) == text


def test_promql_sums_per_pair_and_selects_the_mesh() -> None:
    assert loss_ratio_expr("lab", "5m") == (
        'sum by (mesh, source, target, method) (increase(netkit_packets_lost_total{mesh="lab"}[5m]))\n'
        '  / sum by (mesh, source, target, method) (increase(netkit_packets_sent_total{mesh="lab"}[5m]))')
    assert rtt_mean_expr("lab", "10m") == (
        'sum by (mesh, source, target, method) (rate(netkit_rtt_seconds_sum{mesh="lab"}[10m]))\n'
        '  / sum by (mesh, source, target, method) (rate(netkit_rtt_seconds_count{mesh="lab"}[10m]))')


def test_rules_alert_on_loss_rtt_baseline_and_silence() -> None:
    mesh = parse_mesh(MESH)
    text = alert_rules(mesh, RuleSettings(max_loss_pct=2.5, window_s=600, rtt_factor=3, rtt_floor_s=0.01))
    assert rule_names(text) == ["netkit_mesh:loss_ratio:10m", "netkit_mesh:rtt_mean_seconds:10m", "NetkitMeshLoss",
                                "NetkitMeshRttAboveBaseline", "NetkitMeshTargetDown", "NetkitMeshMonitorDown"]
    assert 'netkit_mesh:loss_ratio:10m{mesh="lab-1"} * 100 > 2.5' in text
    assert ('netkit_mesh:rtt_mean_seconds:10m{mesh="lab-1"}\n'
            '            > 3 * avg_over_time(netkit_mesh:rtt_mean_seconds:10m{mesh="lab-1"}[1d])\n'
            '          and\n'
            '          netkit_mesh:rtt_mean_seconds:10m{mesh="lab-1"} > 0.01') in text
    assert 'for: "5m"' in text  # half the window
    assert "above 10 ms" in text  # the floor is explained in the annotation
    assert "{{ $labels.source }} to {{ $labels.target }}" in text
    assert 'up{job="netkit_mesh_lab_1"} == 0' in text
    assert "netkit_trace_hops" not in text  # no trace probe, no path rule


def test_a_trace_probe_adds_the_path_change_alert() -> None:
    text = alert_rules(parse_mesh(TRACE))
    assert rule_names(text)[-1] == "NetkitMeshPathChanged"
    assert 'changes(netkit_trace_hops{mesh="lab-1"}[15m]) > 0' in text


def test_a_window_shorter_than_two_scrapes_is_refused() -> None:
    with pytest.raises(InputError, match="--window: 5s holds fewer than two scrapes 5s apart"):
        alert_rules(parse_mesh(MESH), RuleSettings(window_s=5))
    alert_rules(parse_mesh(MESH), RuleSettings(window_s=5), scrape_interval_s=1)


def test_job_name_is_a_plain_identifier() -> None:
    assert job_name(parse_mesh(MESH.replace('"lab-1"', '"a.b-c"'))) == "netkit_mesh_a_b_c"
