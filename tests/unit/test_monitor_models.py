"""``netkit.core.monitor_models`` and the collector's exposition (no sockets: generate_latest + parser)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netkit.core.monitor_config import CliSettings, config_from_text
from netkit.core.monitor_metrics import MetricFamily, metric_families
from netkit.core.monitor_models import (
    MonitorMethod,
    MonitorState,
    MonitorTarget,
    TargetTotals,
    TargetWindow,
    combine_round,
    error_round,
    round_record,
    summary_record,
)

T = MonitorTarget("db", "127.0.0.1", 5432, MonitorMethod.TCP_CONNECT, 10.0, 1.0, 3, 0.1, 0, (("role", "db"),))


def _round(**kw: object):
    args: dict = dict(probe_state="open", attempts=1, probe_error=None, address="127.0.0.1", sent=3, received=3,
                      lost=0, rtts_ns=(100_000, 200_000, 300_000), latency_error=None, duration_ns=250_000_000)
    args.update(kw)
    return combine_round(T, **args)


def test_success_means_an_answer() -> None:
    assert _round().success and _round().state == "open"
    closed = _round(probe_state="closed", probe_error="connection refused", sent=0, received=0, rtts_ns=())
    assert not closed.success and closed.state == "closed" and closed.error == "connection refused"
    # A silent UDP port (open|filtered) whose latency packets all went unanswered is not up.
    silent = _round(probe_state="open|filtered", sent=3, received=0, lost=3, rtts_ns=())
    assert not silent.success and silent.state == "open|filtered" and silent.error == "no reply"
    # ... but one answered latency packet is.
    assert _round(probe_state="open|filtered", received=1, lost=2, rtts_ns=(5,)).success
    # icmp has no probe phase: one attempt per round, success from the echo replies.
    icmp = _round(probe_state=None, attempts=0)
    assert icmp.success and icmp.attempts == 1
    assert _round(probe_state=None, received=0, lost=3, rtts_ns=()).state == "timeout"


def test_round_json_fields() -> None:
    one = _round(lost=1, received=2, rtts_ns=(1_000_000, 3_000_000))
    rec = round_record(7, "2026-01-01T00:00:00.000Z", 10.0, [one])
    assert list(rec) == ["event", "round", "time", "interval_s", "targets"]
    (t,) = rec["targets"]
    assert list(t) == ["target", "method", "address", "success", "state", "attempts", "duration_s", "sent",
                       "received", "lost", "loss_pct", "rtt_ms", "error"]
    assert t["rtt_ms"] == {"min": 1.0, "avg": 2.0, "max": 3.0, "last": 3.0}
    assert t["loss_pct"] == 33.3333 and t["duration_s"] == 0.25
    empty = error_round(T, "boom", 5).to_json()
    assert empty["rtt_ms"] == {"min": None, "avg": None, "max": None, "last": None} and empty["loss_pct"] is None


def test_totals_histogram_is_cumulative_with_inf() -> None:
    tot = TargetTotals((0.001, 0.01))
    tot.record(_round(rtts_ns=(500_000, 1_000_000, 5_000_000, 50_000_000)))  # 0.5, 1 (<= bound), 5, 50 ms
    assert tot.cumulative() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert tot.rtt_count == 4 and abs(tot.rtt_sum_s - 0.0565) < 1e-12
    tot.record(_round(probe_state="closed", sent=0, received=0, rtts_ns=()))
    assert (tot.rounds, tot.up_rounds, tot.success, tot.attempts_total, tot.sent_total) == (2, 1, False, 2, 3)
    rec = summary_record(T, tot)
    assert rec["rounds"] == 2 and rec["up_rounds"] == 1 and rec["success"] is False


def test_window_loss_covers_only_the_last_rounds() -> None:
    win = TargetWindow(2)
    win.record(_round(sent=4, received=0, lost=4, rtts_ns=()))
    win.record(_round(sent=4, received=3, lost=1, rtts_ns=(1, 2, 3)))
    win.record(_round(sent=4, received=4, lost=0, rtts_ns=(4, 5, 6, 7)))
    assert win.loss_pct == 12.5 and win.up_rounds == 2 and list(win.rtts_ns)[-1] == 7


def test_reload_keeps_counters_of_targets_still_configured() -> None:
    one = config_from_text('[[targets]]\ntarget = "127.0.0.1:1"\n[[targets]]\ntarget = "127.0.0.1:2"', CliSettings())
    state = MonitorState(one)
    first = one.targets[0]
    state.record(combine_round(first, probe_state="closed", attempts=1, probe_error="refused", address=None, sent=0,
                               received=0, lost=0, rtts_ns=(), latency_error=None, duration_ns=1))
    two = config_from_text('[[targets]]\ntarget = "127.0.0.1:1"\n[[targets]]\ntarget = "127.0.0.1:3"', CliSettings())
    assert state.apply(two) == (1, 1)
    assert state.totals[first.key].attempts_total == 1
    assert ("127.0.0.1:2", "tcp-connect") not in state.totals


def _by_name(state: MonitorState, reload_ok: bool | None = None) -> dict[str, MetricFamily]:
    return {f.name: f for f in metric_families(state, reload_ok)}


def test_metric_families_types_labels_and_values() -> None:
    cfg = config_from_text('labels = { site = "lab" }\nbuckets = [0.001, 0.01]\n[[targets]]\ntarget = "127.0.0.1:1"\n'
                           'name = "a"\nlabels = { role = "x" }\n[[targets]]\ntarget = "127.0.0.1:2"\nname = "b"\n',
                           CliSettings())
    state = MonitorState(cfg)
    fams = _by_name(state)
    # Before a round: counters at zero, no success/duration sample yet (unknown is not 0).
    assert fams["netkit_probe_success"].series == ()
    assert fams["netkit_monitor_config_last_reload_successful"].series[0].value == 1.0
    a = cfg.targets[0]
    state.record(combine_round(a, probe_state="open", attempts=2, probe_error=None, address="127.0.0.1",
                               sent=3, received=2, lost=1, rtts_ns=(500_000, 2_000_000),
                               latency_error=None, duration_ns=300_000_000))
    fams = _by_name(state, reload_ok=False)
    assert {n: f.kind.value for n, f in fams.items()} == {
        "netkit_probe_success": "gauge", "netkit_probe_duration_seconds": "gauge", "netkit_rtt_seconds": "histogram",
        "netkit_packets_sent_total": "counter", "netkit_packets_lost_total": "counter",
        "netkit_probe_attempts_total": "counter", "netkit_monitor_rounds_total": "counter",
        "netkit_monitor_config_last_reload_successful": "gauge"}
    # Every series carries the same label names; a label a target lacks is empty.
    assert fams["netkit_packets_sent_total"].label_names == ("target", "method", "role", "site")
    series = {(n, s.labels[0]): s for n, f in fams.items() for s in f.series if s.labels}
    assert series[("netkit_probe_success", "a")].labels == ("a", "tcp-connect", "x", "lab")
    assert series[("netkit_packets_sent_total", "b")].labels == ("b", "tcp-connect", "", "lab")
    assert series[("netkit_probe_success", "a")].value == 1.0
    assert series[("netkit_probe_duration_seconds", "a")].value == 0.3
    assert series[("netkit_packets_sent_total", "a")].value == 3
    assert series[("netkit_packets_lost_total", "a")].value == 1
    assert series[("netkit_probe_attempts_total", "a")].value == 2
    assert series[("netkit_rtt_seconds", "a")].buckets == (("0.001", 1), ("0.01", 2), ("+Inf", 2))
    assert ("netkit_probe_success", "b") not in series
    assert fams["netkit_monitor_config_last_reload_successful"].series[0].value == 0.0


@given(st.lists(st.lists(st.integers(min_value=1, max_value=5_000_000_000), max_size=20), max_size=10))
def test_histogram_buckets_are_cumulative_and_count_every_sample(rounds: list[list[int]]) -> None:
    tot = TargetTotals((0.0001, 0.001, 0.01, 0.1, 1.0))
    for rtts in rounds:
        tot.record(_round(sent=len(rtts), received=len(rtts), rtts_ns=tuple(rtts)))
    counts = [n for _, n in tot.cumulative()]
    assert counts == sorted(counts) and counts[-1] == tot.rtt_count == sum(map(len, rounds))
    for (le, n) in tot.cumulative()[:-1]:
        assert n == sum(1 for r in rounds for v in r if v / 1e9 <= float(le))
