"""Pure parts of serve/send: configs, summaries, event lines (no sockets)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from netkit.core.escape import is_safe, safe_text
from netkit.core.send_models import TcpSendResult, UdpSendResult
from netkit.core.serve_models import (
    TcpServerConfig,
    TcpServeSummary,
    UdpServerConfig,
    close_reason,
    empty_limits,
    ms,
)
from netkit.render.output import dumps
from netkit.render.serve import event_line


def test_configs_reject_unknown_modes() -> None:
    with pytest.raises(ValueError):
        TcpServerConfig(mode="chargen")
    with pytest.raises(ValueError):
        UdpServerConfig(mode="discard")
    assert TcpServerConfig().reply == b"Message received"


def test_ms_rounds_to_microseconds() -> None:
    assert ms(1_234_567) == 1.235
    assert ms(0) == 0.0


def test_summary_json_has_every_field() -> None:
    s = TcpServeSummary("127.0.0.1", 8000, "echo", False, 2, 1, 10, 10, 0, empty_limits())
    doc = json.loads(dumps(s))
    assert list(doc) == [f.name for f in dataclasses.fields(TcpServeSummary)]
    assert doc["limits_hit"] == {"max_conns": 0, "idle_timeout": 0, "max_bytes": 0, "max_request": 0,
                                 "amplification": 0}
    assert doc["stopped_by"] is None


def test_send_results_field_names_are_published_ones() -> None:
    # Published fields keep their names and order; new ones are only ever appended.
    assert [f.name for f in dataclasses.fields(TcpSendResult)][:6] == [
        "target", "sent_bytes", "received_bytes", "connect_ms", "elapsed_ms", "reply"]
    names = [f.name for f in dataclasses.fields(UdpSendResult)]
    assert names[:6] == ["target", "datagrams_sent", "sent_bytes", "datagrams_received", "received_bytes",
                         "elapsed_ms"]


def test_event_lines_are_inert() -> None:
    ev = {"event": "datagram", "time": "2026-01-01T00:00:00.000Z", "peer": "127.0.0.1:1", "size": 9,
          "preview": safe_text(b"\x1b[2J[red]x")}
    line = event_line(ev)
    assert is_safe(line) and "\\x1b[2J[red]x" in line and " 9 B " in line
    line = event_line({"event": "close", "time": "2026-01-01T00:00:00.000Z", "id": 3, "peer": "p",
                       "bytes_in": 1, "bytes_out": 2048, "duration_ms": 1.5, "reason": "eof"})
    assert line == "00:00:00.000 close  #3 p in 1 B, out 2.00 KiB, 1.500 ms, eof"
    hostile = event_line({"event": "open", "time": "", "id": 1, "peer": "\x1b]0;pwned\x07"})
    assert is_safe(hostile)


def test_close_reason_names_how_a_connection_ended() -> None:
    assert close_reason(None) == ("eof", None)
    assert close_reason(ConnectionResetError(104, "reset")) == ("reset", None)
    assert close_reason(BrokenPipeError(32, "pipe")) == ("reset", None)
    assert close_reason(OSError(113, "No route to host")) == ("error", "OSError: [Errno 113] No route to host")
