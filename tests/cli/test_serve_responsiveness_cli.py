"""``netkit serve responsiveness`` as a user runs it (subprocess): the start lines, Ctrl-C, bad input."""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
from pathlib import Path

import support

from netkit.io.tls import fingerprint


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
