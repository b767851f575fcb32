"""``netkit measure dns --tls`` (DNS over TLS) through a small TLS front written here (an ephemeral
certificate) that relays each query to dnsmasq's TCP port: the same answers as over UDP; the
certificate checked against --cafile (and --tls-name), refused without it, skipped with -k."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dns_peers
import pytest
import support

from netkit.io.tls import server_context


@pytest.fixture(scope="module")
def dot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """(the TLS front's port, its certificate's PEM file)."""
    cert = tmp_path_factory.mktemp("dot") / "ca.pem"
    tls = server_context(keep_cert_at=cert)
    try:
        with dns_peers.dnsmasq() as d:
            with support.tcp_peer(dns_peers.dot_relay(tls.context, d.port)) as port:
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


def _doh_handler(tls_ctx: ssl.SSLContext, dnsmasq_port: int, mode: str) -> Callable[[socket.socket], None]:
    """A DoH front (h11 server side) relaying each POSTed query to dnsmasq over UDP; ``mode`` other
    than ``ok`` misbehaves: ``500``, ``html`` (the wrong content type), ``huge`` (a body past 64 KiB)."""
    import h11

    def handler(c: socket.socket) -> None:
        with tls_ctx.wrap_socket(c, server_side=True) as t:
            conn = h11.Connection(h11.SERVER)
            body = b""
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    conn.receive_data(t.recv(65536))
                elif isinstance(ev, h11.Data):
                    body += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    break
            if mode == "ok":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.settimeout(2)
                    u.sendto(body, ("127.0.0.1", dnsmasq_port))
                    answer = u.recv(65535)
            else:
                answer = b"\x00" * (70_000 if mode == "huge" else 20)
            status = 500 if mode == "500" else 200
            ctype = "text/html" if mode == "html" else "application/dns-message"
            t.sendall(conn.send(h11.Response(status_code=status, headers=[
                ("Content-Type", ctype), ("Content-Length", str(len(answer)))])))
            t.sendall(conn.send(h11.Data(data=answer)) + conn.send(h11.EndOfMessage()))

    return handler


@pytest.mark.parametrize(("mode", "error"), [
    ("ok", None), ("500", "the DoH server answered HTTP 500"),
    ("html", "the DoH answer is text/html, not application/dns-message"),
    ("huge", "the DoH answer is larger than any DNS message"),
])
def test_doh(tmp_path: Path, mode: str, error: str | None) -> None:
    cert = tmp_path / "ca.pem"
    tls = server_context(keep_cert_at=cert)
    try:
        with dns_peers.dnsmasq() if mode == "ok" else _no_dnsmasq() as d:
            with support.tcp_peer(_doh_handler(tls.context, d.port, mode)) as port:
                res = support.invoke(["--format", "json", "measure", "dns", "-t", "SRV", "_x._tcp.s.test",
                                      "--https", f"https://localhost:{port}/dns-query", "-s", f"127.0.0.1:{port}",
                                      "--cafile", str(cert), "-W", "1s"])
    except dns_peers.DnsmasqUnavailable as e:
        pytest.skip(str(e))
    doc = res.json()
    assert doc["transport"] == "https"
    if error is None:
        assert res.exit_code == 0, res.stderr
        assert doc["rows"][0]["answers"] == ["1 2 8080 host.s.test."]
    else:
        assert res.exit_code == 1 and doc["queries"][0]["error"] == error


@contextmanager
def _no_dnsmasq() -> Iterator[dns_peers.Dnsmasq]:
    yield dns_peers.Dnsmasq(port=9, pid=0)


def test_doh_url_must_be_https() -> None:
    res = support.invoke(["measure", "dns", "a.test", "--https", "http://127.0.0.1/dns-query"])
    assert res.exit_code == 2 and "give an https:// URL" in res.stderr
    res = support.invoke(["measure", "dns", "a.test", "--https", "https://dns.example/dns-query"])
    assert res.exit_code == 2 and "give --server ADDR[:PORT] to connect to dns.example" in res.stderr
