"""Every latency method over loopback, against netkit's own peers and plain tools."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
import support

from netkit.core.latency_models import LatencyConfig, LossConfig, ReflectorKind
from netkit.core.targets import Target
from netkit.io.measure.latency import measure_latency_sync
from netkit.io.measure.loss import measure_loss_sync
from netkit.io.servers.reflector_server import reflector_in_thread


def _cfg(method: str, **kw: object) -> LatencyConfig:
    base: dict = {"method": method, "count": 20, "interval_s": 0.005, "timeout_s": 0.5}
    base.update(kw)
    return LatencyConfig(**base)


def test_udp_against_netkit_reflector(no_socket_leak: None) -> None:
    with reflector_in_thread() as srv:
        r = measure_latency_sync([Target(*srv.address)], _cfg("udp"))[0]
    assert r.reflector is ReflectorKind.NETKIT
    assert (r.acc.sent, r.acc.received, r.acc.lost) == (20, 20, 0)
    assert (r.acc.lost_forward, r.acc.lost_return) == (0, 0)
    assert r.stats.p50 is not None and 0 < r.stats.p50 < 50_000_000
    assert r.kernel_timestamps


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_udp_echo(port: int) -> None:
    def ok() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(b"x", ("127.0.0.1", port))
                return s.recv(10) == b"x"
            except OSError:
                return False
    support.wait_until(ok, timeout=5)


def test_udp_against_plain_socat_echo() -> None:
    support.require_tool("socat")
    port = _free_udp_port()
    proc = subprocess.Popen(["socat", f"UDP-RECVFROM:{port},bind=127.0.0.1,fork", "EXEC:cat"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_udp_echo(port)
        r = measure_latency_sync([Target("127.0.0.1", port)], _cfg("udp", count=10))[0]
    finally:
        proc.kill()
        proc.wait()
    assert r.reflector is ReflectorKind.PLAIN
    assert r.acc.received == 10
    assert r.acc.lost_forward is None and r.acc.lost_return is None


def test_tcp_connect_and_refused(no_socket_leak: None) -> None:
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(64)
        port = ls.getsockname()[1]
        ok = measure_latency_sync([Target("127.0.0.1", port)], _cfg("tcp-connect", count=5))[0]
    assert ok.acc.received == 5 and ok.error is None
    t0 = time.monotonic()
    bad = measure_latency_sync([Target("127.0.0.1", port)], _cfg("tcp-connect", count=3, timeout_s=5))[0]
    assert time.monotonic() - t0 < 2  # refused probes fail at once, not by timeout
    assert bad.acc.received == 0 and bad.acc.lost == 3 and bad.error == "connection refused"


def test_tcp_echo_against_ncat() -> None:
    support.require_tool("ncat")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["ncat", "-l", "-k", "127.0.0.1", str(port), "--exec", "/bin/cat"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        support.wait_until(up, timeout=5)
        r = measure_latency_sync([Target("127.0.0.1", port)], _cfg("tcp-echo", size=200))[0]
    finally:
        proc.kill()
        proc.wait()
    assert (r.acc.sent, r.acc.received) == (20, 20)


def test_tcp_echo_against_netkit_serve_tcp() -> None:
    with support.netkit_server("serve", "tcp", "--port", "0") as srv:
        r = measure_latency_sync([Target(srv.host, srv.port)], _cfg("tcp-echo"))[0]
    assert (r.acc.sent, r.acc.received, r.acc.duplicates) == (20, 20, 0)


def test_icmp_loopback_v4_and_v6() -> None:
    if not support.is_root():
        pytest.skip("ICMP test runs as root (raw socket)")
    rs = measure_latency_sync([Target("127.0.0.1", 0), Target("::1", 0)], _cfg("icmp", count=10))
    for r in rs:
        assert r.acc.received == 10, r.error
        assert r.kernel_timestamps


def test_icmp_no_permission_names_what_to_enable(monkeypatch: pytest.MonkeyPatch) -> None:
    from netkit.core.errors import RuntimeFailure
    from netkit.io.measure import latency_probers as latency

    class NoSocket:
        def __init__(self, *a: object, **k: object) -> None:
            raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(latency.socket, "socket", NoSocket)
    with pytest.raises(RuntimeFailure) as info:
        latency.open_icmp_socket(socket.AF_INET)
    assert "ping_group_range" in str(info.value) and "root" in str(info.value)
    assert "\n" not in str(info.value)


def test_loss_stream_against_reflector() -> None:
    with reflector_in_thread() as srv:
        r = measure_loss_sync(Target(*srv.address), LossConfig(rate_pps=2000, duration_s=0.5, timeout_s=0.5))
    assert r.acc.sent == 1000 and r.acc.lost == 0
    assert (r.acc.lost_forward, r.acc.lost_return) == (0, 0)
    assert 0.4e9 < r.elapsed_ns < 1.5e9  # generous: CI machines are shared


def test_ctrl_c_prints_summary_and_exits_by_result() -> None:
    with reflector_in_thread() as srv:
        host, port = srv.address
        proc = subprocess.Popen(support.netkit_cmd("measure", "latency", "--method", "udp", f"{host}:{port}",
                                                   "-c", "100000", "-i", "5ms", "--format", "json"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env(),
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and srv.reflector.stats["probes"] < 20:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    import json

    doc = json.loads(out)
    t = doc["targets"][0]
    assert proc.returncode == 0, err
    assert 20 <= t["sent"] < 100000 and t["received"] >= 19


def test_interval_zero_floods_without_queueing_behind_itself() -> None:
    """-i 0 is ping -f: one probe waits for the last one's reply, so RTTs stay the path's own.

    With 256 probes in flight a loopback UDP echo read p50 35 ms (the sender's own queue); one
    at a time it is tens of microseconds. The bound is loose for a loaded machine, yet far
    below what a self-made queue of even a few dozen probes shows.
    """
    with support.netkit_server("serve", "udp", "--mode", "echo", "--port", "0") as srv:
        res = support.run_netkit(["--format", "json", "measure", "latency", srv.addr, "-m", "udp", "-i", "0",
                                  "-c", "2000"], timeout=60)
    assert res.exit_code == 0, res.stderr
    target = res.json()["targets"][0]
    assert target["received"] == 2000 and target["lost"] == 0
    assert target["rtt_ms"]["p50"] < 2.0, target["rtt_ms"]
