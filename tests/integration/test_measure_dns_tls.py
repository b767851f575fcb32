"""``netkit measure dns --tls`` (DNS over TLS) through a small TLS front written here (an ephemeral
certificate) that relays each query to dnsmasq's TCP port: the same answers as over UDP; the
certificate checked against --cafile (and --tls-name), refused without it, skipped with -k."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dns_peers
import pytest
import support

from netkit.io.tls import server_context


def _read_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


@pytest.fixture(scope="module")
def dot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """(the TLS front's port, its certificate's PEM file)."""
    cert = tmp_path_factory.mktemp("dot") / "ca.pem"
    tls = server_context(keep_cert_at=cert)
    try:
        with dns_peers.dnsmasq() as d:
            def handler(c: socket.socket) -> None:
                with tls.context.wrap_socket(c, server_side=True) as t:
                    size = int.from_bytes(_read_exact(t, 2), "big")
                    query = _read_exact(t, size)
                    with socket.create_connection(("127.0.0.1", d.port), timeout=2) as up:
                        up.sendall(size.to_bytes(2, "big") + query)
                        rsize = int.from_bytes(_read_exact(up, 2), "big")
                        t.sendall(rsize.to_bytes(2, "big") + _read_exact(up, rsize))

            with support.tcp_peer(handler) as port:
                yield port, cert
    except dns_peers.DnsmasqUnavailable as e:
        pytest.skip(str(e))


def test_dot_answers_and_verifies(dot: tuple[int, Path]) -> None:
    port, cert = dot
    base = ["--format", "json", "measure", "dns", "--tls", "-s", f"127.0.0.1:{port}", "-i", "0"]
    res = support.invoke([*base, "-t", "MX", "m.test", "-c", "2", "--cafile", str(cert), "--tls-name", "localhost"])
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["transport"] == "tls" and doc["rows"][0]["answers"] == ["10 mail.m.test."]
    assert all(q["transport"] == "tls" for q in doc["queries"])
    assert support.invoke([*base, "a.test", "-k"]).json()["rows"][0]["answers"] == ["198.18.0.7"]
    res = support.invoke([*base, "a.test"])
    assert res.exit_code == 1
    assert "TLS verification failed" in res.json()["queries"][0]["error"]
    res = support.invoke([*base, "a.test", "--cafile", str(cert), "--tls-name", "other.example"])
    assert res.exit_code == 1 and "TLS verification failed" in res.stderr
