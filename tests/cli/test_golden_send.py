"""Golden text of ``send tcp|udp --format table``: the reply shown on a terminal at 80 columns and
written to a pipe, and the ``-v`` line, from fixed hand-made results (no network).

``NETKIT_UPDATE_GOLDEN=1 python -m pytest tests/cli/test_golden_send.py`` rewrites the files under
tests/golden/ after a deliberate change of the screen; review the diff before committing.
"""

from __future__ import annotations

import io
import json

import pytest
from golden_support import BOX, FakeTerminal, check_golden

from netkit.core.escape import is_safe, safe_text
from netkit.core.send_models import TcpSendResult, UdpReply, UdpSendResult
from netkit.render.output import Output
from netkit.render.send import print_result, reply_writer

# A reply in three chunks: an HTTP-ish head, a colour escape, markup, a bell, and "é" cut in two.
CHUNKS = [b"HTTP/1.0 200 OK\r\nServer: peer\r\n\r\n", b"\x1b[31m[bold]red[/bold]\x07 caf\xc3", b"\xa9\n"]
REPLY = b"".join(CHUNKS)
TCP = TcpSendResult(target="127.0.0.1:8000", sent_bytes=18, received_bytes=len(REPLY), connect_ms=0.311,
                    elapsed_ms=1311.25, reply=safe_text(REPLY))
DATAGRAMS = [b"pong 1\n", b"pong \x1b]0;title\x07 2\n"]
UDP = UdpSendResult(target="[::1]:9000", datagrams_sent=3, sent_bytes=15, datagrams_received=2,
                    received_bytes=sum(map(len, DATAGRAMS)), elapsed_ms=2004.5,
                    replies=[UdpReply("[::1]:9000", len(d), 1.25 * (i + 1), safe_text(d))
                             for i, d in enumerate(DATAGRAMS)])


def render(result: TcpSendResult | UdpSendResult, *, terminal: bool, monkeypatch: pytest.MonkeyPatch,
           fmt: str = "table") -> tuple[bytes, str]:
    """What ``netkit -v send ...`` writes: the reply bytes on stdout, the ``-v`` line on stderr."""
    monkeypatch.setenv("COLUMNS", "80")
    stdout: io.StringIO = FakeTerminal() if terminal else io.StringIO()
    stderr = io.StringIO()
    out = Output(format=fmt, verbose=1, stdout=stdout, stderr=stderr, color=False)
    raw = io.BytesIO()
    write = reply_writer(out, raw)
    if fmt != "table":
        pass  # the reply is part of the document, not written as it comes
    elif isinstance(result, TcpSendResult):
        for chunk in CHUNKS:
            write(chunk)
    else:
        for datagram in DATAGRAMS:
            write(datagram, ("::1", 9000))
    print_result(out, result)
    return raw.getvalue() + stdout.getvalue().encode(), stderr.getvalue()


@pytest.mark.parametrize(("name", "result"), [("send_tcp", TCP), ("send_udp", UDP)])
def test_send_at_80_columns_on_a_terminal(name: str, result: TcpSendResult | UdpSendResult,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shown, err = render(result, terminal=True, monkeypatch=monkeypatch)
    text = shown.decode() + err
    assert is_safe(text.replace("\n", "")) and "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    check_golden(f"{name}_80.txt", text)


@pytest.mark.parametrize(("name", "result"), [("send_tcp", TCP), ("send_udp", UDP)])
def test_send_piped_writes_the_reply_verbatim(name: str, result: TcpSendResult | UdpSendResult,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    written, err = render(result, terminal=False, monkeypatch=monkeypatch)
    assert written == (REPLY if isinstance(result, TcpSendResult) else b"".join(DATAGRAMS))  # like nc
    assert "…" not in err and not BOX & set(err) and all(line == line.rstrip() for line in err.splitlines())
    check_golden(f"{name}_piped.txt", err)


def test_jsonl_names_its_event_and_json_keeps_the_published_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    line, _ = render(TCP, terminal=False, monkeypatch=monkeypatch, fmt="jsonl")
    doc = json.loads(line)
    assert next(iter(doc)) == "event" and doc["event"] == "summary" and doc["reply"] == TCP.reply
    whole, _ = render(UDP, terminal=False, monkeypatch=monkeypatch, fmt="json")
    assert "event" not in json.loads(whole) and json.loads(whole)["replies"][1]["reply"] == safe_text(DATAGRAMS[1])
