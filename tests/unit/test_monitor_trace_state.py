"""The monitor's trace targets, pure: config, one round's verdict, per-hop state and its metrics."""

from __future__ import annotations

import re

import pytest

from netkit.core.errors import InputError
from netkit.core.monitor_config import CliSettings, build_config, config_from_text
from netkit.core.monitor_metrics import MetricFamily, metric_families
from netkit.core.monitor_models import MonitorMethod, MonitorState, MonitorTarget, trace_round
from netkit.core.monitor_trace import MAX_HOP_ADDRESSES, OTHER_ADDRESS, TraceHop, TraceTotals
from netkit.core.stats import summarize_rtts
from netkit.core.trace_hops import flag_rate_limited
from netkit.core.trace_models import HopResult, Responder, TargetTrace, TraceMethod

MS = 1_000_000


def config(*targets: str, **overrides: object) -> MonitorTarget:
    return build_config(None, CliSettings(targets, {"method": "trace", **overrides})).targets[0]


def trace(path: list[str | None], reached: bool = True, rtt_ns: int = MS, error: str | None = None) -> TargetTrace:
    """A one-round trace: ``path[i]`` answered at TTL i + 1 (None: silent)."""
    hops = []
    for i, address in enumerate(path):
        answered = address is not None
        hops.append(HopResult(ttl=i + 1, sent=1, received=int(answered),
                              responders=(Responder(address, None, 1),) if address else (),
                              rtt=summarize_rtts([rtt_ns * (i + 1)] if answered else []),
                              last_ns=rtt_ns * (i + 1) if answered else None,
                              destination=reached and i == len(path) - 1))
    return TargetTrace(target="t", address=path[-1] if reached else None, method=TraceMethod.UDP, reached=reached,
                       hops=flag_rate_limited(tuple(hops)), rounds=1, error=error)


# ----- config ---------------------------------------------------------------------------------
def test_a_trace_target_is_a_host_and_may_fix_a_port() -> None:
    t = config("198.18.0.9")
    assert (t.name, t.port, t.method, t.max_hops) == ("198.18.0.9", 0, MonitorMethod.TRACE, 30)
    t = config("198.18.0.9:53", max_hops=8)
    assert (t.name, t.port, t.max_hops) == ("198.18.0.9:53", 53, 8)


def test_trace_settings_from_toml_and_their_errors() -> None:
    cfg = config_from_text('max_hops = 12\n[[targets]]\nhost = "198.18.0.9"\nmethod = "trace"\n'
                           '[[targets]]\nhost = "198.18.0.8"\nmethod = "trace"\nmax_hops = 5\n', CliSettings())
    assert [t.max_hops for t in cfg.targets] == [12, 5]
    with pytest.raises(InputError, match=re.escape("targets[0].max_hops: must be 1-255")):
        config_from_text('[[targets]]\nhost = "h"\nmethod = "trace"\nmax_hops = 0\n', CliSettings())
    with pytest.raises(InputError, match=re.escape("labels.ttl: 'ttl' is set by netkit itself")):
        config_from_text('labels = { ttl = "1" }\n[[targets]]\nhost = "h"\nmethod = "trace"\n', CliSettings())
    # packets that would not fit a latency round do not matter to a trace round
    assert config("h", packets=1000).packets == 1000
    with pytest.raises(InputError, match=re.escape("--timeout: 950ms is more than the round's 900ms")):
        config("h", interval=1.0, timeout=0.95)


# ----- one round --------------------------------------------------------------------------------
def test_a_round_that_reaches_the_destination() -> None:
    t = config("198.18.0.9")
    r = trace_round(t, trace(["198.18.1.1", None, "198.18.0.9"]), 5 * MS)
    assert (r.success, r.state.value, r.sent, r.received, r.lost, r.hop_count) == (True, "open", 1, 1, 0, 3)
    assert r.rtts_ns == (3 * MS,) and r.error is None
    assert [(h.ttl, h.address) for h in r.hops] == [(1, "198.18.1.1"), (2, None), (3, "198.18.0.9")]
    js = r.to_json()
    assert js["hop_count"] == 3 and js["hops"][1] == {"ttl": 2, "address": None, "rtt_ms": None}


def test_a_round_that_does_not() -> None:
    t = config("198.18.0.9")
    r = trace_round(t, trace(["198.18.1.1", None], reached=False), 5 * MS)
    assert (r.success, r.state.value, r.lost, r.hop_count, r.error) == (False, "timeout", 1, None,
                                                                         "destination not reached")
    r = trace_round(t, TargetTrace("t", None, TraceMethod.UDP, False, error="no such host"), MS)
    assert (r.state.value, r.error, r.hops) == ("unreachable", "no such host", ())


def test_other_methods_keep_no_trace_state() -> None:
    cfg = build_config(None, CliSettings(("127.0.0.1:22",), {}))
    state = MonitorState(cfg)
    assert state.totals[cfg.targets[0].key].trace is None


# ----- per-hop state ------------------------------------------------------------------------------
def test_addresses_per_hop_are_bounded() -> None:
    tot = TraceTotals((0.001, 0.01), window=3)
    for i in range(1000):
        tot.record([TraceHop(1, 1, 1, f"198.18.{i // 256}.{i % 256}", MS), TraceHop(2, 1, 1, "198.18.0.9", MS, True)],
                   2)
    replies = tot.hops[1].replies
    assert len(replies) == MAX_HOP_ADDRESSES + 1
    assert replies[OTHER_ADDRESS] == 1000 - MAX_HOP_ADDRESSES
    assert len(tot.hops[1].recent) == 3  # the window, not every round


def test_window_loss_and_a_shorter_path_drops_the_ttls_beyond_it() -> None:
    tot = TraceTotals((0.001,), window=4)
    for answered in (True, False, True, True, False):
        tot.record([TraceHop(1, 1, int(answered), "198.18.1.1" if answered else None, MS if answered else None),
                    TraceHop(2, 1, 1, "198.18.2.1", MS), TraceHop(3, 1, 1, "198.18.0.9", MS, True)], 3)
    h1 = tot.hops[1]
    assert (h1.sent_total, h1.lost_total, h1.loss_ratio) == (5, 2, 0.5)  # the last 4 rounds: 2 of 4 lost
    # 2 of 4 lost while the later hops lost none is not yet evidence of a rate limit (chance does it)
    assert tot.rate_limited() == {1: False, 2: False, 3: False}
    tot.record([TraceHop(1, 1, 1, "198.18.1.1", MS), TraceHop(2, 1, 1, "198.18.0.9", MS, True)], 2)
    assert sorted(tot.hops) == [1, 2] and tot.hop_count == 2
    tot.record([TraceHop(1, 1, 0, None, None), TraceHop(2, 1, 0, None, None)], None)
    assert tot.hop_count is None and sorted(tot.hops) == [1, 2]


def test_window_loss_that_does_not_carry_on_is_rate_limiting() -> None:
    tot = TraceTotals((0.001,), window=40)
    for r in range(40):
        answered = r % 2 == 0  # hop 1 answers every other probe, the later hops every one
        tot.record([TraceHop(1, 1, int(answered), "198.18.1.1" if answered else None, MS if answered else None),
                    TraceHop(2, 1, 1, "198.18.2.1", MS), TraceHop(3, 1, 1, "198.18.0.9", MS, True)], 3)
    assert tot.rate_limited() == {1: True, 2: False, 3: False}


def _family(fams: list[MetricFamily], name: str) -> dict[tuple[str, ...], float]:
    fam = next(f for f in fams if f.name == name)
    return {s.labels: s.value for s in fam.series}


def test_metrics_show_the_path_and_a_route_change() -> None:
    cfg = build_config(None, CliSettings(("198.18.0.9",), {"method": "trace"}))
    t = cfg.targets[0]
    state = MonitorState(cfg)
    # unknown is not zero: no series before the first round
    assert not [f.series for f in metric_families(state, None) if f.name.startswith("netkit_trace") and f.series]
    plain = MonitorState(build_config(None, CliSettings(("127.0.0.1:22",), {})))
    assert not [f for f in metric_families(plain, None) if f.name.startswith("netkit_trace")]
    state.record(trace_round(t, trace(["198.18.1.1", "198.18.2.1", "198.18.0.9"]), MS))
    state.record(trace_round(t, trace(["198.18.1.1", "198.18.3.1", "198.18.0.9"]), MS))  # hop 2 moved
    fams = metric_families(state, None)
    base = ("198.18.0.9", "trace")
    assert _family(fams, "netkit_trace_hops") == {base: 3.0}
    assert _family(fams, "netkit_trace_hop_sent_total") == {(*base, "1"): 2, (*base, "2"): 2, (*base, "3"): 2}
    assert _family(fams, "netkit_trace_hop_responses_total") == {
        (*base, "1", "198.18.1.1"): 2, (*base, "2", "198.18.2.1"): 1, (*base, "2", "198.18.3.1"): 1,
        (*base, "3", "198.18.0.9"): 2}
    rtt = next(f for f in fams if f.name == "netkit_trace_hop_rtt_seconds")
    assert rtt.label_names == ("target", "method", "ttl")
    assert [s.sum for s in rtt.series] == [0.002, 0.004, 0.006]
    state.record(trace_round(t, trace(["198.18.1.1", None], reached=False), MS))
    fams = metric_families(state, None)
    assert _family(fams, "netkit_trace_hops") == {base: 0.0}
    assert _family(fams, "netkit_trace_hop_loss_ratio")[(*base, "2")] == pytest.approx(1 / 3)


def _path(*answers: str | None, dest: bool = True) -> list[TraceHop]:
    """One round's hops: ``answers[i]`` at TTL i + 1 (None: silent); the last is the destination."""
    return [TraceHop(i + 1, 1, int(a is not None), a, MS if a else None, dest and i == len(answers) - 1)
            for i, a in enumerate(answers)]


def test_the_destination_stays_where_it_answered_until_a_router_answers_there() -> None:
    tot = TraceTotals((0.001,), window=10)
    tot.record(_path("r1", "r2", "dst"), 3)
    assert (tot.hop_count, tot.known_dest, tot.window_hint) == (3, 3, 3)
    # Its answer at TTL 3 was lost (its ICMP rate limit), a probe further on got one: still 3 hops.
    tot.record(_path("r1", "r2", None, "dst"), 4)
    assert (tot.hop_count, sorted(tot.hops)) == (3, [1, 2, 3])
    assert (tot.hops[3].sent_total, tot.hops[3].lost_total) == (2, 1)
    # Not reached, nothing further answered: no TTL beyond it is counted.
    tot.record(_path("r1", "r2", None, None, None, dest=False), None)
    assert (tot.hop_count, tot.known_dest, sorted(tot.hops)) == (None, 3, [1, 2, 3])
    # A router where the destination was: the path got longer.
    tot.record(_path("r1", "r2", "r3", "dst"), 4)
    assert (tot.hop_count, tot.known_dest, sorted(tot.hops)) == (4, 4, [1, 2, 3, 4])
    assert tot.hops[3].replies == {"dst": 1, "r3": 1}
    # And shorter again: the TTLs beyond it go.
    tot.record(_path("r1", "dst"), 2)
    assert (tot.hop_count, tot.known_dest, sorted(tot.hops)) == (2, 2, [1, 2])
