"""``netkit measure connections`` as users run it: real subprocesses against ``netkit serve tcp``, a
plain Python listener and a closed port; in a namespace of its own, timeouts against a blackholed
address and local port exhaustion counted the same as the C connect loop in ``bench/`` counts it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import support

from netkit.core.connections_config import ERROR_KINDS
from netkit.core.procnet import tcp_state_count
from netkit.io.measure.connection_rate import time_wait_count

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def echo() -> Iterator[support.Server]:
    with support.netkit_server("serve", "tcp", "--port", "0", "-q") as srv:
        yield srv


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    """Any listener: a plain Python accept-and-close loop."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1024)
    lst.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = lst.accept()
            except OSError:
                continue
            conn.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        yield lst.getsockname()[1]
    finally:
        stop.set()
        th.join(5)
        lst.close()


def test_against_serve_tcp_json(echo: support.Server) -> None:
    r = support.run_netkit(["measure", "connections", echo.addr, "-C", "4", "-n", "400", "--format", "json"])
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert doc["attempts"] == 400 and doc["connections"] == 400 and doc["errors"]["total"] == 0
    assert list(doc["errors"]) == ["total", *ERROR_KINDS]
    assert doc["connections_per_s"] > 0 and doc["close"] == "fin" and doc["transaction_ms"] is None
    assert set(doc["connect_ms"]) == {"min", "avg", "p50", "p90", "p99", "p99_9", "max"}
    assert sum(row["connections"] for row in doc["intervals"]) == 400
    # The client closed first each time: its side keeps the TIME_WAIT once the server has closed
    # too (the run's own figure is read as it ends, when some may still wait in FIN_WAIT2).
    assert doc["time_wait"] is not None and doc["time_wait"] <= 400 + doc["time_wait_before"]
    support.wait_until(lambda: (time_wait_count(socket.AF_INET, (echo.host, echo.port)) or 0) >= 350)


def test_transactions_and_jsonl(echo: support.Server) -> None:
    r = support.run_netkit(["measure", "connections", echo.addr, "-C", "2", "-n", "200", "--send", "32",
                            "--expect", "32", "--close", "rst", "--format", "jsonl"])
    assert r.exit_code == 0, r.stderr
    events = r.jsonl()
    assert events[-1]["event"] == "summary" and all(e["event"] == "interval" for e in events[:-1])
    doc = events[-1]
    assert doc["connections"] == 200 and doc["send_bytes"] == 32 and doc["expect_bytes"] == 32
    assert doc["transaction_ms"]["p50"] >= doc["connect_ms"]["p50"]


def test_any_listener_rst_leaves_no_time_wait_csv(listener: int) -> None:
    r = support.run_netkit(["measure", "connections", f"127.0.0.1:{listener}", "-C", "2", "-n", "300",
                            "--close", "rst", "--format", "csv"])
    assert r.exit_code == 0, r.stderr
    header, row = r.stdout.splitlines()[:2]
    rec = dict(zip(header.split(","), row.split(","), strict=True))
    assert rec["connections"] == "300" and rec["errors.total"] == "0" and rec["close"] == "rst"
    assert rec["time_wait"] == rec["time_wait_before"]


def test_closed_port_counts_refused_and_fails() -> None:
    port = support.free_tcp_port()
    r = support.run_netkit(["measure", "connections", f"127.0.0.1:{port}", "-n", "25", "-C", "5"])
    assert r.exit_code == 1
    assert re.search(r"errors: refused 25\b", r.stdout), r.stdout
    assert "check failed: no connection completed (Connection refused)" in r.stderr
    assert "Traceback" not in r.stderr


def test_thresholds_and_usage(echo: support.Server) -> None:
    r = support.run_netkit(["measure", "connections", echo.addr, "-n", "50", "--min-rate", "1e12",
                            "--max-errors", "0"])
    assert r.exit_code == 1 and "< min-rate" in r.stdout and "thresholds: FAIL" in r.stdout
    for bad in (["--close", "half"], ["-C", "0"], ["--send", "-1"], ["-d", "0s"]):
        u = support.run_netkit(["measure", "connections", echo.addr, *bad])
        assert u.exit_code == 2, (bad, u.stderr)
        assert "Traceback" not in u.stderr


# ----- in a namespace of its own (root) ----------------------------------------------------------

@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    """One namespace: lo up, a veth pair in 198.18.0.0/15 whose far end drops what is sent to it, eight
    ephemeral ports, and no TIME_WAIT reuse (so exhaustion is exact)."""
    support.require_root_netns()
    name = f"nk-conn-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "nkc0", "type", "veth", "peer", "name", "nkc1"],
                    ["ip", "addr", "add", "198.18.7.1/24", "dev", "nkc0"],
                    ["ip", "link", "set", "nkc0", "up"],
                    ["ip", "link", "set", "nkc1", "up"],
                    # frames for a MAC nobody has: the peer end drops each SYN without a word
                    ["ip", "neigh", "add", "198.18.7.2", "lladdr", "02:00:00:00:00:02", "dev", "nkc0",
                     "nud", "permanent"],
                    ["sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40007"],
                    ["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=0"]):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True, capture_output=True)
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _in_ns(ns: str, *args: str, timeout: float = 30) -> support.CliResult:
    p = subprocess.run(["ip", "netns", "exec", ns, *support.netkit_cmd(*args)], capture_output=True,
                       timeout=timeout, env=support.clean_env(), stdin=subprocess.DEVNULL)
    return support.CliResult(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


def test_blackhole_timeouts_and_wall_clock(netns: str) -> None:
    t0 = time.monotonic()
    r = _in_ns(netns, "measure", "connections", "198.18.7.2:80", "-C", "3", "-d", "1s", "--timeout", "0.3s",
               "--format", "json")
    took = time.monotonic() - t0
    assert r.exit_code == 1, r.stderr
    doc = r.json()
    assert doc["connections"] == 0 and doc["errors"]["timeout"] >= 6  # 3 at a time, 0.3 s each, 1 s
    assert doc["errors"]["total"] == doc["errors"]["timeout"]
    assert 1.0 <= doc["duration_s"] < 1.2 and took < 5
    # a timeout longer than the run: the duration still ends it, the attempts under way are abandoned
    r = _in_ns(netns, "measure", "connections", "198.18.7.2:80", "-C", "4", "-d", "0.4s", "--timeout", "30s",
               "--format", "json")
    doc = r.json()
    assert doc["duration_s"] < 0.6 and doc["abandoned"] == 4 and doc["errors"]["total"] == 0


def _c_loop(tmp: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for bench/conn_loop.c")
    exe = tmp / "conn_loop"
    subprocess.run([cc, "-O2", "-o", str(exe), str(BENCH / "conn_loop.c")], check=True)
    return exe


def test_port_exhaustion_counted_as_the_c_loop_counts(netns: str, tmp_path: Path) -> None:
    exe = _c_loop(tmp_path)
    # Two servers, so each client has the namespace's eight ports to itself (TIME_WAIT is per 4-tuple).
    servers = [support.start_netkit_server("serve", "tcp", "--port", str(p), "-q", timeout=15,
                                           prefix=("ip", "netns", "exec", netns)) for p in (7000, 7001)]
    try:
        r = _in_ns(netns, "measure", "connections", "127.0.0.1:7000", "-n", "30", "--close", "fin",
                   "--format", "json")
        doc = r.json()
        c = subprocess.run(["ip", "netns", "exec", netns, str(exe), "127.0.0.1", "7001", "1", "10", "30", "fin"],
                           capture_output=True, text=True, timeout=30)
        ref = dict(kv.split("=") for kv in c.stdout.split())
        # The eight ports toward :7000 end in TIME_WAIT once the server has closed its side too
        # (until then they wait in FIN_WAIT2, which the run's own figure, read as it ends, does
        # not count); waited for while the server runs, since stopping it would reset the rest.
        lo = (socket.inet_pton(socket.AF_INET, "127.0.0.1"), 7000)
        support.wait_until(lambda: tcp_state_count(subprocess.run(
            ["ip", "netns", "exec", netns, "cat", "/proc/net/tcp"], capture_output=True, text=True).stdout,
            lo) == 8)
    finally:
        for s in servers:
            s.stop()
    assert int(ref["connections"]) == 8 and int(ref["eaddrnotavail"]) == 22, c.stdout
    assert doc["connections"] == int(ref["connections"])
    assert doc["errors"]["eaddrnotavail"] == int(ref["eaddrnotavail"])
    assert doc["errors"]["total"] == doc["errors"]["eaddrnotavail"] and doc["time_wait"] <= 8
    assert r.exit_code == 0


def test_live_view_on_a_terminal_then_the_summary(listener: int) -> None:
    code, screen, _ = support.netkit_on_a_terminal("measure", "connections", f"127.0.0.1:{listener}", "-d", "1.3s",
                                                   "--close", "rst")
    assert code == 0, screen
    assert "measure connections (live)" in screen and "conn/s" in screen
    assert "connect latency" in screen and "Traceback" not in screen


def test_ctrl_c_prints_the_summary_and_exits_130(listener: int) -> None:
    import json
    import signal

    proc = subprocess.Popen(support.netkit_cmd("measure", "connections", f"127.0.0.1:{listener}", "-d", "60s",
                                               "--close", "rst", "--format", "jsonl"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=support.clean_env())
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # the first interval: the run is under way
    assert first["event"] == "interval"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    summary = json.loads(out.decode().splitlines()[-1])
    assert proc.returncode == 130, err
    assert summary["event"] == "summary" and summary["interrupted"] is True and summary["connections"] > 0
    assert summary["duration_s"] < 10 and b"Traceback" not in err


def test_out_of_descriptors_counted_as_emfile(echo: support.Server) -> None:
    import json
    import resource

    def few_fds() -> None:  # in the child only: 40 descriptors for 100 attempts at once
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    # A transaction holds each descriptor until the echo: 100 at once cannot all be open.
    p = subprocess.run(support.netkit_cmd("measure", "connections", echo.addr, "-C", "100", "-n", "300",
                                          "--send", "1", "--expect", "1", "--close", "rst", "--format", "json"),
                       capture_output=True, timeout=30, env=support.clean_env(), stdin=subprocess.DEVNULL,
                       preexec_fn=few_fds)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["errors"]["emfile"] > 0 and doc["connections"] > 0
    assert doc["connections"] + doc["errors"]["emfile"] == 300 and doc["errors"]["total"] == doc["errors"]["emfile"]
