"""Golden text of ``netkit monitor``: the live dashboard at 70 and 80 columns, the totals table at
80 columns and piped, and the plain per-round lines.

The state is hand-made (fixed rounds recorded into ``MonitorState``), so the text is deterministic;
``NETKIT_UPDATE_GOLDEN=1`` rewrites ``tests/golden/monitor_*.txt``.
"""

from __future__ import annotations

import threading

import pytest
from golden_support import assert_piped_text, check_golden, golden_pair, golden_terminal

from netkit.core.monitor_models import (
    MonitorConfig,
    MonitorMethod,
    MonitorOutcome,
    MonitorState,
    MonitorTarget,
    combine_round,
    error_round,
    summary_record,
)
from netkit.render.monitor import dashboard_rows, dashboard_table, monitor_dashboard, round_line, summary_table
from netkit.render.output import Output


def _target(name: str, method: MonitorMethod = MonitorMethod.TCP_CONNECT) -> MonitorTarget:
    host, _, port = name.rpartition(":") if ":" in name else (name, "", "0")
    return MonitorTarget(name, host, int(port), method, 10.0, 1.0, 5, 0.1, 0)


DB = _target("127.0.0.1:5432")
WEB = _target("127.0.0.1:8443")
DOWN = _target("127.0.0.1:9")
DNS = _target("198.18.0.53", MonitorMethod.ICMP)
CONFIG = MonitorConfig(targets=(DB, WEB, DOWN, DNS), listen=None, window=10)


def _state() -> MonitorState:
    state = MonitorState(CONFIG)
    for k in range(4):
        rtts = tuple(50_000 + 7_000 * ((k * 5 + i) % 9) for i in range(5))
        for t in (DB, WEB):
            state.record(combine_round(t, probe_state="open", attempts=1, probe_error=None, address="127.0.0.1",
                                       sent=5, received=5 - (k == 2 and t is WEB), lost=int(k == 2 and t is WEB),
                                       rtts_ns=rtts[: 5 - (k == 2 and t is WEB)], latency_error=None,
                                       duration_ns=450_000_000))
        state.record(combine_round(DOWN, probe_state="closed", attempts=1, probe_error="connection refused",
                                   address="127.0.0.1", sent=0, received=0, lost=0, rtts_ns=(), latency_error=None,
                                   duration_ns=200_000))
        state.record(error_round(DNS, "icmp needs root or net.ipv4.ping_group_range covering this group",
                                 1_000_000))
    return state


@pytest.mark.parametrize("columns", [70, 80])
def test_monitor_dashboard(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    state = _state()
    tty = golden_terminal(monkeypatch, "monitor_dashboard",
                          lambda out: out.print(monitor_dashboard(state, threading.Lock(), out.width)), columns)
    # target names and states are never cut; the headline figures keep their units
    for name in (DB.name, WEB.name, DOWN.name, DNS.name):
        assert name in tty
    for word in ("open", "closed", "error", "ms", "%"):
        assert word in tty
    assert "connection" in tty and "refused" in tty  # the error folds, in words


def test_monitor_dashboard_drops_the_sparkline_first() -> None:
    rows = dashboard_rows(_state())
    wide = dashboard_table(rows, window=10, width=200)
    assert [c.header for c in wide.columns][-2:] == ["recent RTTs", "error"]
    # the sparkline takes only what is left once the error shows whole
    assert "recent RTTs" not in [c.header for c in dashboard_table(rows, window=10, width=120).columns]
    narrow = dashboard_table(rows, window=10, width=70)
    assert "recent RTTs" not in [c.header for c in narrow.columns]
    assert {"target", "state", "rtt", "loss", "error"} <= {str(c.header) for c in narrow.columns}


def _outcome() -> MonitorOutcome:
    state = _state()
    return MonitorOutcome([summary_record(t, state.totals[t.key]) for t in CONFIG.targets], interrupted=True,
                          rounds_limited=False)


def test_monitor_totals(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = _outcome()

    def draw(out: Output) -> None:
        out.print(summary_table(outcome.targets, width=out.width))

    tty, piped = golden_pair(monkeypatch, "monitor_totals", draw)
    assert tty.count("netkit monitor") == 1  # the title once: the dashboard above it was transient
    assert piped.splitlines()[1].split()[:2] == ["target", "method"]


def test_monitor_round_lines() -> None:
    state = _state()
    lines = [round_line(state.windows[t.key].rounds[-1]) for t in CONFIG.targets]
    text = "".join(line + "\n" for line in lines)
    assert_piped_text(text)
    check_golden("monitor_round_lines", text)


def test_monitor_dashboard_long_names_put_errors_under_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name too long for an error column beside it: the name stays whole, the errors go below."""
    long = _target("very-long-hostname.example.internal:5432")
    silent = _target("127.0.0.1:1", MonitorMethod.UDP)
    state = MonitorState(MonitorConfig(targets=(long, silent), listen=None))
    state.record(combine_round(long, probe_state="dns-error", attempts=1, probe_error="name or service not known",
                               address=None, sent=0, received=0, lost=0, rtts_ns=(), latency_error=None,
                               duration_ns=5_000_000))
    state.record(combine_round(silent, probe_state="open|filtered", attempts=1, probe_error=None, address=None,
                               sent=5, received=0, lost=5, rtts_ns=(), latency_error=None, duration_ns=5_000_000))
    tty = golden_terminal(monkeypatch, "monitor_dashboard_long_names",
                          lambda out: out.print(monitor_dashboard(state, threading.Lock(), out.width)), 70)
    assert "very-long-hostname.example.internal:5432  dns-error" in tty and "open|filtered" in tty
    assert "very-long-hostname.example.internal:5432: name or service not known" in tty
