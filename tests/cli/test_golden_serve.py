"""Golden text of ``serve tcp|udp --format table``: event lines and the human summary, at 80 columns
on a terminal and piped, from fixed hand-made events and summaries (no network).

``NETKIT_UPDATE_GOLDEN=1 python -m pytest tests/cli/test_golden_serve.py`` rewrites the files under
tests/golden/ after a deliberate change of the screen; review the diff before committing.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from golden_support import FakeTerminal, assert_piped_text, assert_terminal_text, check_golden

from netkit.core.serve_models import TcpServeSummary, UdpServeSummary, empty_limits
from netkit.render.output import Output
from netkit.render.serve import print_event, print_summary

T = "2026-11-25T20:07:53.666Z"


TCP_EVENTS: list[dict[str, Any]] = [
    {"event": "listening", "time": T, "host": "127.0.0.1", "port": 8000},
    {"event": "open", "time": T, "id": 1, "peer": "127.0.0.1:40112"},
    {"event": "open", "time": T, "id": 2, "peer": "[::1]:40113"},
    {"event": "session", "time": T, "kind": "throughput", "direction": "sink", "stream": 0, "bytes": 156755384023,
     "id": 2},
    {"event": "close", "time": T, "id": 2, "peer": "[::1]:40113", "bytes_in": 156755384060, "bytes_out": 48,
     "duration_ms": 2033693.025, "reason": "session"},
    {"event": "limit", "time": T, "limit": "max_bytes", "id": 1, "peer": "127.0.0.1:40112", "value": 1073741824},
    {"event": "close", "time": T, "id": 1, "peer": "127.0.0.1:40112", "bytes_in": 1073741825, "bytes_out": 0,
     "duration_ms": 812.5, "reason": "max-bytes"},
    {"event": "limit", "time": T, "limit": "rejected_by_key", "reason": "bad-key", "id": None,
     "peer": "198.18.0.9:5555", "value": None, "count": 3},
]
TCP = TcpServeSummary(
    host="127.0.0.1", port=8000, mode="echo", tls=False, connections=368917, peak_concurrent=1024,
    bytes_in=156755384023 + 1073741825, bytes_out=48, errors=2,
    limits_hit={**empty_limits(), "max_conns": 12, "max_bytes": 1}, sessions=1, elapsed_ms=2033693.025,
    stopped_by="SIGINT", tls_handshake_failed=0,
)
UDP_EVENTS: list[dict[str, Any]] = [
    {"event": "listening", "time": T, "host": "127.0.0.1", "port": 9000},
    {"event": "datagram", "time": T, "peer": "127.0.0.1:51000", "size": 1400,
     "preview": "GET / HTTP/1.0\\r\\n\\x1b[2J[bold]hi[/bold]"},
    {"event": "datagram", "time": T, "peer": "[2001:db8::7]:51001", "size": 0, "preview": ""},
]
UDP_SHOW = UdpServeSummary(host="127.0.0.1", port=9000, mode="show", datagrams=2, bytes_in=1400,
                           datagrams_out=0, bytes_out=0, senders=2, errors=0, elapsed_ms=61_250.0,
                           stopped_by="SIGTERM")
UDP_ECHO = UdpServeSummary(
    host="::1", port=9000, mode="echo", datagrams=1_250_000, bytes_in=80_000_000, datagrams_out=1_249_990,
    bytes_out=79_999_360, senders=3, errors=1,
    reflector={"datagrams": 1_250_000, "probes": 1_249_990, "queries": 0, "verbatim": 10, "malformed_probes": 0,
               "sessions": 3, "sessions_evicted": 0, "dropped_self": 0, "dropped_service_port": 10,
               "dropped_reply": 0, "dropped_repeat": 0, "dropped_rate": 0},
    elapsed_ms=12_500.0, stopped_by="SIGINT",
)


def render(events: list[dict[str, Any]], summary: TcpServeSummary | UdpServeSummary, title: str, *,
           terminal: bool, monkeypatch: pytest.MonkeyPatch, fmt: str = "table",
           events_dropped: int | None = 0) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    stdout: io.StringIO = FakeTerminal() if terminal else io.StringIO()
    out = Output(format=fmt, stdout=stdout, stderr=io.StringIO(), color=False)
    for event in events:
        print_event(out, event)
    print_summary(out, summary, title, events_dropped)
    return stdout.getvalue()


CASES = [("serve_tcp", TCP_EVENTS, TCP, "netkit serve tcp"), ("serve_udp_show", UDP_EVENTS, UDP_SHOW,
                                                             "netkit serve udp"),
         ("serve_udp_echo", UDP_EVENTS[:1], UDP_ECHO, "netkit serve udp")]


@pytest.mark.parametrize(("name", "events", "summary", "title"), CASES)
def test_serve_at_80_columns_on_a_terminal(name: str, events: list[dict[str, Any]], summary: Any, title: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(events, summary, title, terminal=True, monkeypatch=monkeypatch)
    assert_terminal_text(text, 80)
    check_golden(f"{name}_80.txt", text)


@pytest.mark.parametrize(("name", "events", "summary", "title"), CASES)
def test_serve_piped_is_plain_text(name: str, events: list[dict[str, Any]], summary: Any, title: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(events, summary, title, terminal=False, monkeypatch=monkeypatch)
    assert_piped_text(text)
    check_golden(f"{name}_piped.txt", text)


def test_tcp_summary_reads_in_units_not_raw_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render([], TCP, "netkit serve tcp", terminal=False, monkeypatch=monkeypatch)
    for raw in ("156755384023", "2033693.025", "False", "elapsed_ms", "limits_hit", "bytes_in"):
        assert raw not in text
    for shown in ("147 GiB", "33m54s", "368,917", "max_conns 12, max_bytes 1"):
        assert shown in text, text
    assert re.search(r"^tls +no$", text, re.M) and re.search(r"^stopped by +SIGINT$", text, re.M)
    assert "events dropped" not in text  # shown only when some were


def test_events_dropped_shown_when_some_were(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render([], UDP_SHOW, "netkit serve udp", terminal=False, monkeypatch=monkeypatch, events_dropped=4711)
    assert re.search(r"^events dropped +4,711$", text, re.M)


def test_json_summary_unchanged_by_the_human_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(TCP_EVENTS, TCP, "netkit serve tcp", terminal=False, monkeypatch=monkeypatch, fmt="json")
    doc = json.loads(text)
    assert doc["bytes_in"] == 156755384023 + 1073741825 and doc["elapsed_ms"] == 2033693.025
    assert doc["tls"] is False and doc["events_dropped"] == 0 and list(doc)[-1] == "events_dropped"
    lines = render(TCP_EVENTS, TCP, "netkit serve tcp", terminal=False, monkeypatch=monkeypatch,
                   fmt="jsonl").splitlines()
    assert [json.loads(line)["event"] for line in lines] == [e["event"] for e in TCP_EVENTS] + ["summary"]
