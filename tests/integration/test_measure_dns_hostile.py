"""``netkit measure dns`` against hostile servers written here: a reply with a wrong id, a reply from
another port, a compression pointer loop, a TCP length promising more than is sent, an endless TCP
stream, a server that never answers, answer data carrying markup and escapes. Each ends as a clear,
counted outcome within the timeout: never a hang, a traceback or bytes acted on by the terminal."""

from __future__ import annotations

import socket
import time

import dns.message
import dns_peers
import pytest
import support


def run(port: int, *args: str, timeout: str = "400ms") -> support.CliResult:
    return support.invoke(["--format", "json", "measure", "dns", "-s", f"127.0.0.1:{port}", "-W", timeout,
                           "-i", "0", *args])


def test_wrong_id_is_ignored_and_counted_then_the_answer_taken() -> None:
    def handle(s: socket.socket, q: bytes, addr: tuple[str, int]) -> None:
        r = dns_peers.answer_for(q, address="192.0.2.66")
        r.id = (r.id + 1) % 65536
        s.sendto(r.to_wire(), addr)
        s.sendto(dns_peers.answer_for(q).to_wire(), addr)

    with support.udp_server(handle) as port:
        res = run(port, "x.test", "-c", "2")
    doc = res.json()
    assert res.exit_code == 0, res.stderr
    assert doc["rows"][0]["answers"] == ["198.18.0.9"]
    assert doc["ignored"]["wrong_id"] == 2


@pytest.mark.parametrize("source", ["127.0.0.1", "127.0.0.2"], ids=["other-port", "other-address"])
def test_reply_from_another_port_or_address_is_not_accepted(source: str) -> None:
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind((source, 0))

    def handle(s: socket.socket, q: bytes, addr: tuple[str, int]) -> None:
        other.sendto(dns_peers.answer_for(q).to_wire(), addr)  # a spoof: right id, wrong source

    try:
        with support.udp_server(handle) as port:
            start = time.monotonic()
            res = run(port, "x.test")
            took = time.monotonic() - start
    finally:
        other.close()
    doc = res.json()
    assert res.exit_code == 1
    assert doc["ignored"]["wrong_source"] == 1 and doc["rows"][0]["answered"] == 0
    assert f"no answer within the timeout (ignored wrong source: from {source}:" in res.stderr
    assert took < 3


def test_compression_pointer_loop_is_a_counted_malformed_reply() -> None:
    def handle(s: socket.socket, q: bytes, addr: tuple[str, int]) -> None:
        s.sendto(dns_peers.pointer_loop(q), addr)

    with support.udp_server(handle) as port:
        res = run(port, "x.test")
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert res.json()["ignored"]["malformed"] == 1
    assert "ignored malformed:" in res.stderr


def test_never_answering_is_loss_within_the_timeout() -> None:
    with support.udp_peer(lambda _q: None) as port:
        start = time.monotonic()
        res = run(port, "x.test", "-c", "3", timeout="200ms")
        took = time.monotonic() - start
    assert res.exit_code == 1
    row = res.json()["rows"][0]
    assert (row["sent"], row["answered"], row["loss_pct"]) == (3, 0, 100.0)
    assert took < 2.5


def _tcp_query(c: socket.socket) -> bytes:
    size = int.from_bytes(c.recv(2), "big")
    data = b""
    while len(data) < size:
        data += c.recv(size - len(data))
    return data


def test_tcp_length_promising_more_than_sent_times_out() -> None:
    def handler(c: socket.socket) -> None:
        _tcp_query(c)
        c.sendall(b"\xff\xff" + b"\x00" * 10)
        time.sleep(2)

    with support.tcp_peer(handler) as port:
        start = time.monotonic()
        res = run(port, "--tcp", "x.test", timeout="300ms")
        took = time.monotonic() - start
    assert res.exit_code == 1 and res.json()["queries"][0]["outcome"] == "timeout"
    assert took < 2


def test_endless_tcp_stream_reads_one_message_at_most() -> None:
    def handler(c: socket.socket) -> None:
        _tcp_query(c)
        chunk = b"\xff" * 65536
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            c.sendall(chunk)

    with support.tcp_peer(handler) as port:
        res = run(port, "--tcp", "x.test")
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    q = res.json()["queries"][0]
    assert q["outcome"] in ("timeout", "error")


def test_tcp_refused_is_an_error_outcome() -> None:
    port = dns_peers.free_port()
    res = run(port, "--tcp", "x.test")
    assert res.exit_code == 1
    assert res.json()["queries"][0]["error"] == "connection refused"


def test_answer_data_is_shown_escaped_never_as_markup() -> None:
    txt = '"[bold red]boom[/] \\027[31m oops [/]"'

    def handle(s: socket.socket, q: bytes, addr: tuple[str, int]) -> None:
        s.sendto(dns_peers.answer_for(q, txt=txt).to_wire(), addr)

    with support.udp_server(handle) as port:
        res = support.invoke(["measure", "dns", "-s", f"127.0.0.1:{port}", "-t", "TXT", "x.test"])
    assert res.exit_code == 0, res.stderr
    assert "[bold red]boom[/]" in res.stdout and "\x1b" not in res.stdout
    text = dns.message.from_wire(dns_peers.answer_for(dns.message.make_query("x.test", "TXT").to_wire(),
                                                      txt=txt).to_wire()).answer[0][0].to_text()
    assert text in res.stdout
