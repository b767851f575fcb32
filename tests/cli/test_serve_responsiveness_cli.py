"""``netkit serve responsiveness`` as a user runs it (subprocess): the start lines, Ctrl-C, bad input."""

from __future__ import annotations

import io
import json
import re
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import support
from golden_support import FakeTerminal, assert_piped_text, assert_terminal_text, check_golden

from netkit.core.nq_server import NqServeSummary, empty_limits
from netkit.io.tls import fingerprint
from netkit.render.output import Output
from netkit.render.responsiveness_serve import print_event, print_summary


def test_start_lines_name_the_config_url_and_the_client_command(tmp_path: Path) -> None:
    cert = tmp_path / "nq.pem"
    with support.netkit_server("serve", "responsiveness", "--port", "0", "--cert-out", str(cert),
                               "--format", "json") as srv:
        ctx = ssl.create_default_context(cafile=str(cert))  # the written certificate verifies the server
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls_sock:
                der = tls_sock.getpeercert(binary_form=True)
                tls_sock.sendall(b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                reply = b""
                while chunk := tls_sock.recv(4096):
                    reply += chunk
        code, out, err = srv.stop()
    assert der is not None and reply.startswith(b"HTTP/1.1 200 ")
    url = f"https://127.0.0.1:{srv.port}/.well-known/nq"
    lines = err.splitlines()
    assert lines[0] == f"TLS ephemeral self-signed certificate, SHA-256 fingerprint {fingerprint(der)}"
    assert lines[1] == f"config {url}"
    assert lines[2] == f"run: netkit measure responsiveness {url} --cafile {cert}"
    assert lines[3] == f"listening on 127.0.0.1:{srv.port}"
    # Ctrl-C ends a server normally, as every `netkit serve`: the totals, exit 0.
    assert code == 0 and "Traceback" not in err
    summary = json.loads(out)
    assert summary["stopped_by"] == "SIGINT" and summary["config_url"] == url
    assert summary["requests"]["small"] == 1 and summary["protocols"] == {"http/1.1": 1}


def test_cleartext_start_line_and_table_summary() -> None:
    with support.netkit_server("serve", "responsiveness", "--no-tls", "--port", "0",
                               "--test-endpoint", "nq.example") as srv:
        res = subprocess.run(["curl", "-s", "--http2-prior-knowledge", f"http://127.0.0.1:{srv.port}/.well-known/nq"],
                             capture_output=True, timeout=10)
        code, out, err = srv.stop()
    assert json.loads(res.stdout)["test_endpoint"] == "nq.example"
    assert f"run: netkit measure responsiveness http://127.0.0.1:{srv.port}/.well-known/nq\n" in err
    assert "fingerprint" not in err
    assert code == 0
    assert re.search(r"^protocols +h2c 1$", out, re.M) and re.search(r"^requests +config 1$", out, re.M)
    assert re.search(r"^stopped by +SIGINT$", out, re.M)


def test_without_cert_out_the_client_command_says_k() -> None:
    with support.netkit_server("serve", "responsiveness", "--port", "0", "-q") as srv:
        code, out, err = srv.stop()
    assert code == 0 and out == ""
    assert "listening on" in err and "run:" not in err  # -q keeps the ready and certificate lines only
    with support.netkit_server("serve", "responsiveness", "--port", "0") as srv:
        _, _, err = srv.stop()
    assert re.search(r"^run: netkit measure responsiveness https://127\.0\.0\.1:\d+/\.well-known/nq -k$", err, re.M)


def test_bad_input_is_a_usage_error() -> None:
    for args, words in ((["--port", "70000"], "--port"), (["--no-tls", "--cert-out", "x.pem"], "--no-tls"),
                        (["--url-host", "bad host!"], "--url-host"), (["--allow", "300.1.1.1/8"], "--allow")):
        res = support.run_netkit(["serve", "responsiveness", *args], timeout=30)
        assert res.exit_code == 2, (args, res.stderr)
        assert res.stderr.startswith("netkit: ") and words in res.stderr.splitlines()[0]
        assert "Traceback" not in res.stderr


def test_a_port_in_use_is_one_line_exit_3() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = support.run_netkit(["serve", "responsiveness", "--no-tls", "--port", str(port)], timeout=30)
    assert res.exit_code == 3
    assert res.stderr == f"netkit: cannot listen on 127.0.0.1:{port}: address already in use\n"


# ----- the screen, from fixed events (no network) --------------------------------------------------

T = "2026-12-02T15:22:37.008Z"
EVENTS: list[dict[str, Any]] = [
    {"event": "listening", "time": T, "host": "127.0.0.1", "port": 4443, "tls": True,
     "config_url": "https://127.0.0.1:4443/.well-known/nq"},
    {"event": "close", "time": T, "id": 7, "peer": "127.0.0.1:40320", "protocol": "h2", "tls": True, "requests": 41,
     "bytes_in": 9_812, "bytes_out": 5_234_567_890, "duration_ms": 12_004.2, "reason": "reset", "large": 1,
     "uploads": 0},
    {"event": "close", "time": T, "id": 8, "peer": "127.0.0.1:40332", "protocol": "http/1.1", "tls": False,
     "requests": 1, "bytes_in": 1_234_567, "bytes_out": 87, "duration_ms": 4.054, "reason": "eof", "large": 0,
     "uploads": 1},
    {"event": "close", "time": T, "id": 9, "peer": "127.0.0.1:40340", "protocol": "h2", "tls": True, "requests": 1,
     "bytes_in": 300, "bytes_out": 120, "duration_ms": 2.0, "reason": "eof", "large": 0, "uploads": 0},
    {"event": "limit", "time": T, "limit": "idle_timeout", "id": 10, "peer": "[2001:db8::1]:50000", "value": 10.0,
     "count": 1},
    {"event": "close", "time": T, "id": 10, "peer": "[2001:db8::1]:50000", "protocol": "h2c", "tls": False,
     "requests": 1, "bytes_in": 100, "bytes_out": 4_194_304, "duration_ms": 10_500.0, "reason": "idle-timeout",
     "large": 1, "uploads": 0},
    {"event": "close", "time": T, "id": 11, "peer": "127.0.0.1:1\x1b[31m", "protocol": "-", "tls": False,
     "requests": 0, "bytes_in": 0, "bytes_out": 0, "duration_ms": 3.1, "reason": "tls-handshake"},
]
SUMMARY = NqServeSummary(
    host="127.0.0.1", port=4443, tls=True, config_url="https://127.0.0.1:4443/.well-known/nq", connections=1_234,
    peak_concurrent=37, requests={"config": 3, "large": 48, "small": 1_100, "upload": 48, "not-found": 2,
                                  "bad-method": 0},
    protocols={"h2": 1_200, "http/1.1": 34}, bytes_in=61_234_567_890, bytes_out=72_345_678_901, errors=1,
    limits_hit={**empty_limits(), "idle_timeout": 1, "max_streams": 2}, elapsed_ms=95_000.0, stopped_by="SIGINT",
)


def _render(terminal: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    stdout: io.StringIO = FakeTerminal() if terminal else io.StringIO()
    out = Output(format="table", stdout=stdout, stderr=io.StringIO(), color=False)
    for event in EVENTS:
        print_event(out, event)
    print_summary(out, SUMMARY, "netkit serve responsiveness")
    return stdout.getvalue()


def test_the_screen_at_80_columns_and_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _render(True, monkeypatch)
    assert_terminal_text(text, 80)
    check_golden("serve_responsiveness_80.txt", text)
    piped = _render(False, monkeypatch)
    assert_piped_text(piped)
    check_golden("serve_responsiveness_piped.txt", piped)
    # A probe's short connection is counted, not listed; the peer's bytes are inert.
    assert "#9 " not in text and "\x1b" not in text and "\x1b" not in piped
    assert re.search(r"^requests +config 3, large 48, small 1,100, upload 48, not-found 2$", piped, re.M)
