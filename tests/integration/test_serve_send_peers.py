"""``netkit serve``/``netkit send`` against real peers: ncat and socat, over loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import support


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ncat_client_against_serve_tcp_echo() -> None:
    ncat = support.require_tool("ncat")
    with support.netkit_server("serve", "tcp", "--port", "0", "--format", "jsonl") as srv:
        payload = os.urandom(200_000)
        proc = subprocess.run([ncat, "127.0.0.1", str(srv.port)], input=payload, capture_output=True, timeout=20)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == payload
        code, out, err = srv.stop()
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "listening" and events[0]["port"] == srv.port
    close = next(e for e in events if e["event"] == "close")
    assert close["bytes_in"] == close["bytes_out"] == len(payload) and close["reason"] == "eof"
    assert events[-1]["event"] == "summary" and events[-1]["connections"] == 1
    assert "Traceback" not in err


def test_ncat_client_against_serve_tcp_reply_once() -> None:
    ncat = support.require_tool("ncat")
    with support.netkit_server("serve", "tcp", "--port", "0", "--mode", "reply", "--once") as srv:
        proc = subprocess.run([ncat, "127.0.0.1", str(srv.port)], input=b"hi\n", capture_output=True, timeout=20)
        assert proc.stdout == b"Message received"
        srv.proc.wait(timeout=10)  # --once: exits by itself
        code, out, _ = srv.stop()
    assert code == 0
    assert "connections" in out


def test_send_tcp_against_ncat_listener() -> None:
    ncat = support.require_tool("ncat")
    port = _free_port()
    listener = subprocess.Popen([ncat, "-l", "127.0.0.1", str(port)], stdout=subprocess.PIPE,
                                stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            try:
                # ncat -l without -k serves one connection: probe with ss instead of connecting.
                out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
                return bool(out.strip())
            except FileNotFoundError:  # pragma: no cover
                time.sleep(0.3)
                return True

        support.wait_until(up, timeout=10)
        assert listener.stdin is not None
        listener.stdin.write(b"from ncat\x00\xff\n")
        listener.stdin.close()  # ncat sends this, then closes its side
        res = subprocess.run(support.netkit_cmd("send", "tcp", f"127.0.0.1:{port}", "hello ncat", "--wait", "3s"),
                             capture_output=True, timeout=30, env=support.clean_env())
        assert listener.stdout is not None
        listener.wait(timeout=10)
        got = listener.stdout.read()
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    assert res.returncode == 0, res.stderr
    assert got == b"hello ncat"
    assert res.stdout == b"from ncat\x00\xff\n"  # raw, binary safe


def test_socat_udp_client_against_serve_udp_echo() -> None:
    socat = support.require_tool("socat")
    with support.netkit_server("serve", "udp", "--port", "0", "--mode", "echo") as srv:
        proc = subprocess.run([socat, "-T", "2", "-", f"UDP:127.0.0.1:{srv.port}"], input=b"ping over udp",
                              capture_output=True, timeout=20)
        assert proc.stdout == b"ping over udp"
        code, out, _ = srv.stop()
    assert code == 0
    assert "datagrams" in out


def test_send_udp_against_socat_echo() -> None:
    socat = support.require_tool("socat")
    port = _free_port(socket.SOCK_DGRAM)
    peer = subprocess.Popen([socat, f"UDP-RECVFROM:{port},bind=127.0.0.1,fork", "EXEC:cat"],
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def ready() -> bool:
            out = subprocess.run(["ss", "-lunH", f"sport = :{port}"], capture_output=True, text=True).stdout
            return bool(out.strip())

        support.wait_until(ready, timeout=10)
        res = support.run_netkit(["send", "udp", f"127.0.0.1:{port}", "hey", "--wait", "2s", "--format", "json"])
    finally:
        os.killpg(peer.pid, 9)
        peer.wait()
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["datagrams_sent"] == 1 and doc["datagrams_received"] == 1
    assert doc["replies"][0]["reply"] == "hey"


def test_serve_udp_shows_escaped_preview_from_socat() -> None:
    socat = support.require_tool("socat")
    with support.netkit_server("serve", "udp", "--port", "0") as srv:
        subprocess.run([socat, "-u", "-", f"UDP-SENDTO:127.0.0.1:{srv.port}"], input=b"\x1b[2J[bold]x",
                       timeout=10, check=True)
        assert srv.proc.stdout is not None
        first = srv.proc.stdout.readline().decode()  # one flushed line per datagram
        code, out, _ = srv.stop()
    out = first + out
    assert code == 0
    assert "\x1b" not in out
    assert "\\x1b[2J[bold]x" in out


def test_ncat_ssl_client_against_serve_tcp_tls() -> None:
    ncat = support.require_tool("ncat")
    with support.netkit_server("serve", "tcp", "--port", "0", "--tls") as srv:
        proc = subprocess.run([ncat, "--ssl", "127.0.0.1", str(srv.port)], input=b"secret",
                              capture_output=True, timeout=20)
        assert proc.stdout == b"secret"
        _, _, err = srv.stop()
    assert "SHA-256 fingerprint" in err
