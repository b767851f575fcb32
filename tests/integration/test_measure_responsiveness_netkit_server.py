"""``measure responsiveness`` against ``netkit serve responsiveness`` (skips where this checkout has
no such server): both directions at once over HTTP/2 + TLS, the certificate checked with --cafile."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if importlib.util.find_spec("netkit.io.servers.responsiveness_server") is None:
        pytest.skip("this checkout has no netkit serve responsiveness")
    cert = tmp_path_factory.mktemp("nq") / "cert.pem"
    proc = subprocess.Popen([sys.executable, "-m", "netkit", "serve", "responsiveness", "--port", "0",
                             "--cert-out", str(cert)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=support.clean_env())
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 10
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("config "):
                url = line.split()[1]
        assert url is not None, "the server printed no config line"
        support.wait_until(cert.exists, timeout=5)
        yield url, cert
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_parallel_h2_against_netkit_server(server: tuple[str, Path]) -> None:
    url, cert = server
    p = subprocess.run(support.netkit_cmd("measure", "responsiveness", url, "--cafile", str(cert), "--parallel",
                                          "--max-duration", "4s", "--format", "json"),
                       capture_output=True, text=True, timeout=30, env=support.clean_env())
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["protocol"] == "h2" and doc["parallel"] and doc["config_url"] == url
    for d in doc["directions"]:
        assert d["goodput_bps"] > 1e6 and d["rpm"] > 0, d
        assert d["probes"]["self"] > 0 and d["probes"]["foreign"] > 0, d


def test_cleartext_url_to_a_tls_port_says_so(server: tuple[str, Path]) -> None:
    # The server closes a cleartext request without a byte; the user is told that, and why it may be.
    url, _cert = server
    p = subprocess.run(support.netkit_cmd("measure", "responsiveness", url.replace("https://", "http://")),
                       capture_output=True, text=True, timeout=30, env=support.clean_env())
    assert p.returncode == 1
    assert p.stderr.startswith("netkit: ") and len(p.stderr.splitlines()) == 1, p.stderr
    assert "closed the connection without answering: a TLS port? try https://" in p.stderr


def test_every_get_asks_for_the_identity_encoding() -> None:
    # The draft: a client MUST send its GETs with Accept-Encoding: identity (nothing measured is
    # compressed). The first GET, the configuration's, is read here and answered 404.
    heads: list[bytes] = []

    def serve(conn: Any) -> None:
        head = support.read_request_head(conn)
        if head is None:
            return
        heads.append(head)
        conn.sendall(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")

    with support.tcp_peer(serve) as port:
        p = subprocess.run(support.netkit_cmd("measure", "responsiveness", f"http://127.0.0.1:{port}"),
                           capture_output=True, text=True, timeout=30, env=support.clean_env())
    assert p.returncode == 1 and "404" in p.stderr, p.stderr
    assert heads and b"\r\naccept-encoding: identity\r\n" in heads[0].lower(), heads
