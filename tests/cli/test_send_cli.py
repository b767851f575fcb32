"""``netkit send tcp|udp`` through the CliRunner and subprocesses, against ``netkit serve``."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
import support

from netkit.io.clients.tcp_client import connect_error
from netkit.io.tls import make_self_signed


@pytest.fixture(scope="module")
def echo_server():
    with support.netkit_server("serve", "tcp", "--port", "0") as srv:
        yield srv


def test_message_argument_and_two_argument_target(echo_server: support.Server) -> None:
    res = support.invoke(["send", "tcp", "127.0.0.1", str(echo_server.port), "two args"])
    assert res.exit_code == 0 and res.stdout == "two args"


def test_stdin_when_message_absent(echo_server: support.Server) -> None:
    res = support.invoke(["send", "tcp", echo_server.addr], input="from stdin\n")
    assert res.exit_code == 0 and res.stdout == "from stdin\n"
    res = support.invoke(["send", "tcp", echo_server.addr, "-"], input="dash")
    assert res.stdout == "dash"


def test_file_binary_safe(echo_server: support.Server, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    proc = support.subprocess.run(support.netkit_cmd("send", "tcp", echo_server.addr, "--file", str(f)),
                                  capture_output=True, timeout=30, env=support.clean_env())
    assert proc.returncode == 0
    assert proc.stdout == data


def test_message_and_file_is_usage_error(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_text("x")
    res = support.invoke(["send", "tcp", "127.0.0.1:9", "msg", "--file", str(f)])
    assert res.exit_code == 2 and "--file" in res.stderr


def test_json_reply_is_escaped_text() -> None:
    hostile = "\x1b[31m[bold]x[/bold]\x07"
    with support.netkit_server("serve", "tcp", "--port", "0", "--mode", "reply", "--reply", hostile) as srv:
        res = support.invoke(["send", "tcp", srv.addr, "hi", "--format", "json"])
    assert res.exit_code == 0
    doc = res.json()
    assert set(doc) == {"target", "sent_bytes", "received_bytes", "connect_ms", "elapsed_ms", "reply", "error",
                        "interrupted"}
    assert doc["error"] is None
    assert doc["reply"] == "\\x1b[31m[bold]x[/bold]\\x07"
    assert doc["sent_bytes"] == 2 and doc["received_bytes"] == len(hostile.encode())
    assert doc["target"] == srv.addr and doc["connect_ms"] >= 0 and doc["elapsed_ms"] >= doc["connect_ms"]


def test_csv_and_jsonl_formats(echo_server: support.Server) -> None:
    res = support.invoke(["send", "tcp", echo_server.addr, "a,b", "--format", "csv"])
    lines = res.stdout.splitlines()
    assert lines[0] == "target,sent_bytes,received_bytes,connect_ms,elapsed_ms,reply,error,interrupted"
    res = support.invoke(["send", "tcp", echo_server.addr, "x", "--format", "jsonl"])
    assert len(res.jsonl()) == 1 and res.jsonl()[0]["reply"] == "x"
    assert next(iter(res.jsonl()[0])) == "event" and res.jsonl()[0]["event"] == "summary"


def test_wait_bounds_a_silent_peer() -> None:
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        port = lsock.getsockname()[1]
        res = support.invoke(["send", "tcp", f"127.0.0.1:{port}", "x", "--wait", "300ms", "--format", "json"])
    assert res.exit_code == 0
    assert res.json()["received_bytes"] == 0
    assert 250 <= res.json()["elapsed_ms"] < 5000


def test_tls_verification_cafile_and_insecure(tmp_path: Path) -> None:
    cert, key = make_self_signed("127.0.0.1")
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    with support.netkit_server("serve", "tcp", "--port", "0", "--tls", "--cert", str(tmp_path / "c.pem"),
                               "--key", str(tmp_path / "k.pem")) as srv:
        bad = support.run_netkit(["send", "tcp", "--tls", srv.addr, "x"])
        good = support.run_netkit(["send", "tcp", "--tls", "--cafile", str(tmp_path / "c.pem"), srv.addr, "x",
                                   "--wait", "300ms"])
        insecure = support.run_netkit(["send", "tcp", "--tls", "-k", srv.addr, "y", "--wait", "300ms"])
        _, _, err = srv.stop()
    assert bad.exit_code == 1
    assert "TLS verification failed" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert good.exit_code == 0 and good.stdout == "x"
    assert insecure.exit_code == 0 and insecure.stdout == "y" and "warning" in insecure.stderr
    assert "fingerprint" in err


def test_connect_error_messages_name_the_cause() -> None:
    assert "timed out after 2s" in str(connect_error("h:1", asyncio.TimeoutError(), 2.0))
    assert str(connect_error("h:1", ConnectionRefusedError(), 2.0)) == "h:1: connection refused"
    assert connect_error("h:1", OSError(101, "Network is unreachable"), 1).exit_code == 1


def test_send_udp_echo_raw_and_json() -> None:
    with support.netkit_server("serve", "udp", "--port", "0", "--mode", "echo") as srv:
        res = support.invoke(["send", "udp", srv.addr, "ping", "-c", "3", "-i", "10ms", "-w", "1s"])
        assert res.exit_code == 0 and res.stdout == "pingpingping"
        res = support.invoke(["send", "udp", srv.addr, "\x1b]0;x", "-w", "1s", "--format", "json"])
        doc = res.json()
        assert doc["datagrams_received"] == 1 and doc["replies"][0]["reply"] == "\\x1b]0;x"
        assert doc["error"] is None
        code, _, _ = srv.stop()
    assert code == 0


def test_send_udp_no_reply_and_unreachable_exit_1() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        port = quiet.getsockname()[1]
        res = support.invoke(["send", "udp", f"127.0.0.1:{port}", "x", "-w", "200ms"])
        assert res.exit_code == 1 and "no reply within" in res.stderr
    res = support.invoke(["send", "udp", f"127.0.0.1:{port}", "x", "-w", "1s"])  # now closed: ICMP
    assert res.exit_code == 1 and "port unreachable" in res.stderr


def test_send_udp_without_wait_just_sends() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        res = support.invoke(["send", "udp", f"127.0.0.1:{rx.getsockname()[1]}", "one"])
        assert res.exit_code == 0 and res.stdout == ""
        assert rx.recvfrom(100)[0] == b"one"


def test_udp_message_too_large_is_usage_error() -> None:
    res = support.invoke(["send", "udp", "127.0.0.1:9", "x" * 70000])
    assert res.exit_code == 2 and "65507" in res.stderr


def test_tls_handshake_to_silent_listener_times_out_exit_1() -> None:
    with socket.socket() as lsock:  # accepts in the kernel backlog, never answers the handshake
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        port = lsock.getsockname()[1]
        res = support.run_netkit(["send", "tcp", "--tls", f"127.0.0.1:{port}", "x", "--timeout", "300ms"])
    assert res.exit_code == 1
    assert res.stderr.strip() == f"netkit: 127.0.0.1:{port}: connect timed out after 0.3s"


def test_tls_to_plain_server_is_one_line_handshake_failure(echo_server: support.Server) -> None:
    res = support.run_netkit(["send", "tcp", "--tls", echo_server.addr, "x"])
    assert res.exit_code == 1
    assert "TLS handshake failed" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_large_stdin_streams_through_echo(echo_server: support.Server) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB: more than both socket buffers, so send and read overlap
    proc = support.subprocess.run(support.netkit_cmd("send", "tcp", echo_server.addr), input=data,
                                  capture_output=True, timeout=30, env=support.clean_env())
    assert proc.returncode == 0 and proc.stdout == data


def test_ipv6_target_in_brackets() -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 unavailable")
    with support.netkit_server("serve", "tcp", "--host", "::1", "--port", "0") as srv:
        assert srv.addr.startswith("[::1]:")
        res = support.invoke(["send", "tcp", srv.addr, "six", "--format", "json"])
    assert res.exit_code == 0
    assert res.json()["target"] == srv.addr and res.json()["reply"] == "six"


def test_send_udp_ipv6() -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 unavailable")
    with support.netkit_server("serve", "udp", "--host", "::1", "--port", "0", "--mode", "echo") as srv:
        res = support.invoke(["send", "udp", srv.addr, "six", "-w", "1s"])
    assert res.exit_code == 0 and res.stdout == "six"


def test_send_tcp_ends_when_the_peer_closes_not_after_the_quiet_wait(echo_server: support.Server) -> None:
    """The echo server closes once it has answered: send returns then, not --wait (5 s) later."""
    t0 = time.monotonic()
    res = support.run_netkit(["send", "tcp", echo_server.addr, "hello", "--wait", "30s"], timeout=60)
    took = time.monotonic() - t0
    assert res.exit_code == 0 and res.stdout == "hello", res.stderr
    assert took < 10, f"send tcp took {took:.1f}s after the peer had closed"


def test_send_udp_jsonl_keeps_the_replies_csv_leaves_them_out() -> None:
    with support.netkit_server("serve", "udp", "--port", "0", "--mode", "echo") as srv:
        res = support.invoke(["send", "udp", srv.addr, "hey", "-w", "1s", "--format", "jsonl"])
        [line] = res.jsonl()
        assert line["replies"][0]["reply"] == "hey" and line["datagrams_received"] == 1
        assert line["event"] == "summary"
        res = support.invoke(["send", "udp", srv.addr, "hey", "-w", "1s", "--format", "csv"])
        assert "replies" not in res.stdout.splitlines()[0]
