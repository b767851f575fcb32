"""``netkit serve tcp|udp`` as a user runs it (subprocess), and the selftest rows built on it."""

from __future__ import annotations

import json
import re
import socket
import ssl

import pytest
import support

from netkit.io.tls import fingerprint


def test_jsonl_events_open_close_limit() -> None:
    with support.netkit_server("serve", "tcp", "--port", "0", "--format", "jsonl", "--max-conns", "1",
                               "--max-bytes", "8") as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as a:
            a.sendall(b"1234")
            assert a.recv(4) == b"1234"
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as b:
                assert b.recv(10) == b""  # over --max-conns: closed at once
            a.sendall(b"56789")  # 4+4+5 > 8: closed
            assert a.recv(10) == b""
        code, out, _ = srv.stop()
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "listening" and kinds[-1] == "summary"
    limits = [e["limit"] for e in events if e["event"] == "limit"]
    assert sorted(limits) == ["max_bytes", "max_conns"]
    close = next(e for e in events if e["event"] == "close")
    assert {"id", "peer", "bytes_in", "bytes_out", "duration_ms", "reason", "time"} <= set(close)
    assert close["reason"] == "max-bytes"
    assert events[-1]["limits_hit"] == {"max_conns": 1, "idle_timeout": 0, "max_bytes": 1, "max_request": 0,
                                        "amplification": 0}
    assert events[-1]["tls_handshake_failed"] == 0


def test_table_mode_lines_and_summary() -> None:
    with support.netkit_server("serve", "tcp", "--port", "0", "--mode", "discard") as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
            c.sendall(b"x" * 1000)
            c.shutdown(socket.SHUT_WR)
            assert c.recv(10) == b""
        code, out, err = srv.stop()
    assert code == 0
    assert re.search(r"open +#1 127\.0\.0\.1:\d+", out)
    assert re.search(r"close +#1 .* in 1,000 B, out 0 B, .* ms, eof", out)
    assert "peak concurrent" in out and "bytes in   " in out and "1,000 B" in out
    assert re.search(r"elapsed +\d", out) and "elapsed_ms" not in out
    assert err.count("listening on") == 1


def test_tls_ephemeral_fingerprint_matches_served_certificate() -> None:
    with support.netkit_server("serve", "tcp", "--port", "0", "--tls") as srv:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls_sock:
                der = tls_sock.getpeercert(binary_form=True)
                tls_sock.sendall(b"tls!")
                assert tls_sock.recv(4) == b"tls!"
        _, _, err = srv.stop()
    assert der is not None
    assert f"SHA-256 fingerprint {fingerprint(der)}" in err


def test_serve_udp_jsonl_datagram_events() -> None:
    with support.netkit_server("serve", "udp", "--port", "0", "--format", "jsonl") as srv:
        assert srv.proc.stdout is not None
        lines = [srv.proc.stdout.readline()]  # the listening event
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00\x1b[1mhi", ("127.0.0.1", srv.port))
            s.sendto(b"two", ("127.0.0.1", srv.port))
        # Each event is flushed as it happens: read exactly the two datagram events (the pytest
        # timeout bounds this if they never come).
        lines += [srv.proc.stdout.readline(), srv.proc.stdout.readline()]
        code, out, _ = srv.stop()
    events = [json.loads(line) for line in [*map(bytes.decode, lines), *out.splitlines()]]
    grams = [e for e in events if e["event"] == "datagram"]
    summary = events[-1]
    assert code == 0 and summary["event"] == "summary"
    assert summary["datagrams"] == len(grams) == 2 and summary["senders"] == 1
    assert grams[0]["preview"] == "\\x00\\x1b[1mhi" and grams[0]["size"] == 7
    assert set(grams[0]) == {"event", "time", "peer", "size", "preview"}


def test_selftest_rows_for_serve_and_send() -> None:
    res = support.run_netkit(["selftest", "--only", "tcp", "--only", "udp", "--only", "tls", "--format", "json"],
                             timeout=120)
    assert res.exit_code == 0, res.stdout + res.stderr
    doc = res.json()
    names = [c["check"] for c in doc["checks"]]
    assert names == ["tcp echo integrity", "tcp reply", "udp echo", "tls echo"]
    assert all(c["result"] == "pass" for c in doc["checks"])
    assert doc["checks"][0]["figure"].startswith("64 MiB")


def test_reply_without_mode_reply_is_a_usage_error() -> None:
    res = support.invoke(["serve", "tcp", "--port", "0", "--reply", "hi"])
    assert res.exit_code == 2
    first, *rest = res.stderr.strip().splitlines()
    assert first.startswith("netkit: ") and "--mode reply" in first
    assert all(line.startswith("Try 'netkit serve tcp --help'") for line in rest) and len(rest) <= 1


@pytest.mark.parametrize(("proto", "mode"), [("tcp", "echo"), ("udp", "show"), ("udp", "echo")])
def test_a_port_in_use_is_one_line_naming_the_reason(proto: str, mode: str) -> None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if proto == "tcp":
            taken.listen()
        port = taken.getsockname()[1]
        res = support.run_netkit(["serve", proto, "--port", str(port), "--mode", mode], timeout=30)
    assert res.exit_code == 3
    assert res.stderr == f"netkit: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert res.stdout == ""
