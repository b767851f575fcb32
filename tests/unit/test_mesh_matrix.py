"""``netkit.core.mesh_matrix``: PromQL, Prometheus' answers and /metrics samples to the pairs."""

from __future__ import annotations

import json

import pytest

from netkit.core.errors import CheckFailed, InputError
from netkit.core.mesh_matrix import (
    BadAnswer,
    assemble,
    by_pair,
    check_max_loss,
    choose_method,
    figures_from_samples,
    methods_query,
    pair_queries,
    pair_records,
    parse_vector,
    present_in_samples,
    worst_first,
)


def answer(*samples: tuple[dict[str, str], float]) -> str:
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [1700000000.0, str(value)]} for labels, value in samples]}})


def pair(source: str, target: str, **extra: str) -> dict[str, str]:
    return {"mesh": "lab", "source": source, "target": target, "method": "udp", **extra}


def test_queries_sum_each_counter_per_pair() -> None:
    queries = pair_queries("5m", "lab", "udp")
    assert queries["sent"] == ('max by (mesh, source, target, method) '
                               '(increase(netkit_packets_sent_total{source!="",mesh="lab",method="udp"}[5m]))')
    assert set(queries) == {"sent", "lost", "rtt_sum", "rtt_count", "success"}
    assert "netkit_rtt_seconds_count" in queries["rtt_count"]
    assert queries["success"] == ('min by (mesh, source, target, method) '
                                  '(netkit_probe_success{source!="",mesh="lab",method="udp"})')
    assert methods_query(None) == 'count by (mesh, method) (netkit_packets_sent_total{source!=""})'
    # A mesh name is a PromQL string, quoted as such.
    assert 'mesh="a\\"b"' in pair_queries("5m", 'a"b', "udp")["sent"]


def test_assemble_computes_loss_and_mean_rtt_per_pair() -> None:
    figures = {
        "sent": by_pair([(pair("a", "b", instance="x"), 100.0), (pair("b", "a"), 50.0), (pair("a", "c"), 0.0)]),
        "lost": by_pair([(pair("a", "b", instance="x"), 5.0), (pair("b", "a"), 0.0)]),
        "rtt_sum": by_pair([(pair("a", "b"), 0.095), (pair("b", "a"), 0.1)]),
        "rtt_count": by_pair([(pair("a", "b"), 95.0), (pair("b", "a"), 50.0)]),
        "success": by_pair([(pair("a", "b"), 1.0), (pair("b", "a"), 1.0), (pair("a", "c"), 0.0)]),
    }
    matrix = assemble(figures, mesh="lab", method="udp", origin="prometheus", window_s=300.0)
    assert matrix.hosts == ("a", "b", "c")
    ab = matrix.pair("a", "b")
    assert ab is not None and ab.loss_pct == 5.0 and ab.rtt_mean_ms == pytest.approx(1.0) and ab.reachable
    ba = matrix.pair("b", "a")
    assert ba is not None and ba.loss_pct == 0.0 and ba.rtt_mean_ms == pytest.approx(2.0)
    ac = matrix.pair("a", "c")
    assert ac is not None and ac.loss_pct is None and ac.rtt_mean_ms is None and ac.reachable is False
    assert [(p.source, p.target) for p in worst_first(matrix.pairs)] == [("a", "c"), ("a", "b"), ("b", "a")]
    records = pair_records(matrix)
    assert list(records[0]) == ["mesh", "source", "target", "method", "window_s", "sent", "lost", "loss_pct",
                                "rtt_mean_ms", "rtt_samples", "reachable"]
    assert records[0]["sent"] == 100 and records[0]["window_s"] == 300.0


def test_max_loss_fails_on_loss_above_it_and_on_an_unreachable_pair() -> None:
    figures = {"sent": {("lab", "a", "b", "udp"): 100.0, ("lab", "b", "a", "udp"): 100.0},
               "lost": {("lab", "a", "b", "udp"): 3.0}}
    matrix = assemble(figures, mesh="lab", method="udp", origin="metrics", window_s=None)
    check_max_loss(matrix, None)
    check_max_loss(matrix, 3.0)  # not above
    with pytest.raises(CheckFailed, match=r"1 of 2 pairs lose more than 2 % or are unreachable: a->b 3.0 %"):
        check_max_loss(matrix, 2.0)
    down = assemble({**figures, "success": {("lab", "b", "a", "udp"): 0.0}}, mesh="lab", method="udp",
                    origin="metrics", window_s=None)
    with pytest.raises(CheckFailed, match=r"b->a 0\.0 %"):
        check_max_loss(down, 5.0)


def test_parse_vector_reads_samples_and_refuses_other_answers() -> None:
    assert parse_vector(answer((pair("a", "b"), 1.5))) == [(pair("a", "b"), 1.5)]
    with pytest.raises(BadAnswer, match="the answer is not JSON"):
        parse_vector(b"<html>")
    with pytest.raises(BadAnswer, match="refused the query: parse error"):
        parse_vector(json.dumps({"status": "error", "error": "parse error"}))
    with pytest.raises(BadAnswer, match="not an instant vector"):
        parse_vector(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}))
    with pytest.raises(BadAnswer, match="without labels or value"):
        parse_vector(json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{}]}}))


def test_a_label_with_control_characters_is_no_pair() -> None:
    assert by_pair([(pair("a\x1b[31m", "b"), 1.0), (pair("a", "b"), 2.0), ({"source": "a"}, 3.0)]) == {
        ("lab", "a", "b", "udp"): 2.0}


def test_choose_method_prefers_udp_then_the_only_one() -> None:
    assert choose_method({("lab", "icmp"), ("lab", "udp")}, None, None) == ("lab", "udp")
    assert choose_method({("lab", "icmp")}, None, None) == ("lab", "icmp")
    assert choose_method({("lab", "icmp"), ("lab", "udp")}, "lab", "icmp") == ("lab", "icmp")
    with pytest.raises(InputError, match="choose one with --method"):
        choose_method({("lab", "icmp"), ("lab", "tcp-connect")}, None, None)
    with pytest.raises(InputError, match="several meshes \\(a, b\\): choose one with --mesh"):
        choose_method({("a", "udp"), ("b", "udp")}, None, None)
    with pytest.raises(InputError, match="--method trace: mesh 'lab' has no such probe"):
        choose_method({("lab", "udp")}, None, "trace")
    with pytest.raises(BadAnswer, match="no netkit mesh series"):
        choose_method(set(), None, None)


def test_figures_from_metrics_samples_keep_one_mesh_and_method() -> None:
    samples = [
        ("netkit_packets_sent_total", pair("a", "b"), 10.0),
        ("netkit_packets_sent_total", {**pair("a", "b"), "method": "icmp"}, 7.0),
        ("netkit_packets_sent_total", {"target": "x", "method": "udp"}, 99.0),  # not a mesh monitor's
        ("netkit_packets_lost_total", pair("a", "b"), 1.0),
        ("netkit_rtt_seconds_sum", pair("a", "b"), 0.009),
        ("netkit_rtt_seconds_count", pair("a", "b"), 9.0),
        ("netkit_probe_success", pair("a", "b"), 1.0),
    ]
    assert present_in_samples(samples) == {("lab", "udp"), ("lab", "icmp")}
    figures = figures_from_samples(samples, "lab", "udp")
    matrix = assemble(figures, mesh="lab", method="udp", origin="metrics", window_s=None)
    (ab,) = matrix.pairs
    assert (ab.sent, ab.lost, ab.loss_pct, ab.rtt_mean_ms, ab.reachable) == (10, 1, 10.0, pytest.approx(1.0), True)
