"""``netkit info`` against what the test itself opened: its sockets, its traffic through lo."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import support

from netkit.core.sysinfo_models import CONNECTION_FIELDS, INTERFACE_FIELDS, TRAFFIC_FIELDS


@contextmanager
def tcp_listener(host: str = "127.0.0.1", family: int = socket.AF_INET) -> Iterator[socket.socket]:
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        s.listen(8)
        s.settimeout(5)
        yield s
    finally:
        s.close()


def by_port(rows: list[dict], port: int) -> list[dict]:
    return [r for r in rows if r["local_port"] == port]


# ----- connections -------------------------------------------------------------------------------
def test_own_listening_socket_appears_with_our_pid(no_socket_leak: None) -> None:
    with tcp_listener() as lst:
        port = lst.getsockname()[1]
        r = support.run_netkit(["info", "connections", "--listening", "--tcp", "--port", str(port), "--format", "json"])
        assert r.exit_code == 0, r.stderr
        doc = r.json()
        assert set(doc) == {"connections", "processes_hidden", "owners_hidden"}
        (row,) = by_port(doc["connections"], port)
        assert list(row) == list(CONNECTION_FIELDS)
        assert row["proto"] == "tcp" and row["family"] == "ipv4" and row["state"] == "listen"
        assert row["local_address"] == "127.0.0.1"
        assert row["remote_address"] is None and row["remote_port"] is None
        assert row["pid"] == os.getpid()
        assert row["process"]  # our interpreter's name


def test_established_pair_and_udp_and_ipv6_are_listed(no_socket_leak: None) -> None:
    with tcp_listener() as lst:
        port = lst.getsockname()[1]
        cli = socket.create_connection(("127.0.0.1", port), timeout=5)
        srv, _ = lst.accept()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        try:
            r = support.invoke(["info", "connections", "--state", "established", "--port", str(port),
                                "--format", "json"])
            assert r.exit_code == 0, r.stderr
            rows = r.json()["connections"]
            assert {(c["local_port"], c["remote_port"]) for c in rows} == {
                (port, cli.getsockname()[1]), (cli.getsockname()[1], port)}
            assert all(c["pid"] == os.getpid() for c in rows)

            uport = udp.getsockname()[1]
            r = support.invoke(["info", "connections", "--udp", "--port", str(uport), "--format", "jsonl"])
            (row,) = r.jsonl()
            assert (row["proto"], row["state"], row["pid"]) == ("udp", "unconn", os.getpid())
        finally:
            for s in (cli, srv, udp):
                s.close()
    if socket.has_ipv6:
        try:
            ctx = tcp_listener("::1", socket.AF_INET6)
            lst6 = ctx.__enter__()
        except OSError:
            return  # no IPv6 loopback here
        try:
            port6 = lst6.getsockname()[1]
            r = support.invoke(["info", "connections", "-l", "--port", str(port6), "--format", "csv"])
            lines = r.stdout.splitlines()
            assert lines[0] == ",".join(CONNECTION_FIELDS)
            assert lines[1].startswith(f"tcp,ipv6,::1,{port6},,,listen,{os.getpid()},")
        finally:
            ctx.__exit__(None, None, None)


def test_table_shows_the_socket() -> None:
    with tcp_listener() as lst:
        port = lst.getsockname()[1]
        r = support.invoke(["info", "connections", "--port", str(port)])
        assert r.exit_code == 0
        assert f"127.0.0.1:{port}" in r.stdout and str(os.getpid()) in r.stdout and "listen" in r.stdout


def test_bad_filters_are_usage_errors() -> None:
    assert support.invoke(["info", "connections", "--state", "bogus"]).exit_code == 2
    assert support.invoke(["info", "connections", "--port", "70000"]).exit_code == 2
    assert support.invoke(["info", "connections", "--pid", "0"]).exit_code == 2


def test_without_rights_it_shows_what_it_can_and_says_once_what_was_hidden(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A socket owned by another user; netkit run as root without capabilities cannot see its owner."""
    support.require_root_netns()
    setpriv = support.require_tool("setpriv")
    other_python = "/usr/bin/python3"
    if not os.path.exists(other_python):
        pytest.skip("needs a system python3 that user nobody can run")
    holder = subprocess.Popen(
        [other_python, "-c", "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); "
                             "print(s.getsockname()[1], flush=True); sys.stdin.read()"],
        user=65534, group=65534, extra_groups=[], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/",
    )
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())
        probe = subprocess.run([setpriv, "--inh-caps=-all", "--bounding-set=-all", "true"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot drop capabilities here: {probe.stderr.decode().strip()}")
        proc = subprocess.run(
            [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--", *support.netkit_cmd(
                "info", "connections", "--port", str(port), "--format", "json")],
            capture_output=True, timeout=30, env=support.clean_env(),
        )
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        (row,) = by_port(doc["connections"], port)
        assert row["pid"] is None and row["process"] is None  # listed, owner hidden
        assert doc["processes_hidden"] >= 1 and doc["owners_hidden"] >= 1
        err = proc.stderr.decode()
        assert err.count("note:") == 1 and "may not inspect" in err
        # As full root the same socket has its owner, and nothing is said about hiding.
        r = support.run_netkit(["info", "connections", "--port", str(port), "--format", "json"])
        (row,) = by_port(r.json()["connections"], port)
        assert row["pid"] == holder.pid and "note:" not in r.stderr
    finally:
        holder.kill()
        holder.communicate(timeout=10)


# ----- interfaces --------------------------------------------------------------------------------
def _pump_loopback(nbytes: int) -> None:
    """Send ``nbytes`` through lo over a TCP pair and read them back."""
    with tcp_listener() as lst:
        cli = socket.create_connection(lst.getsockname(), timeout=5)
        srv, _ = lst.accept()
        try:
            srv.settimeout(5)
            sender = threading.Thread(target=cli.sendall, args=(b"x" * nbytes,))
            sender.start()
            got = 0
            while got < nbytes:
                chunk = srv.recv(1 << 20)
                assert chunk
                got += len(chunk)
            sender.join(5)
        finally:
            cli.close()
            srv.close()


def _lo(doc: dict) -> dict:
    (lo,) = [i for i in doc["interfaces"] if i["name"] == "lo"]
    return lo


def test_interface_counters_grow_after_our_traffic(no_socket_leak: None) -> None:
    if "lo" not in {name for _, name in socket.if_nameindex()}:
        pytest.skip("no interface named lo")
    before = _lo(support.invoke(["info", "interfaces", "--format", "json"]).json())
    assert list(before) == list(INTERFACE_FIELDS)
    assert before["up"] is True and "127.0.0.1/8" in before["ipv4"]
    _pump_loopback(4 << 20)
    after = _lo(support.invoke(["info", "interfaces", "--format", "json"]).json())
    # Loopback counts each byte once received and once sent; other tests may add more, never less.
    assert after["rx_bytes"] - before["rx_bytes"] >= 4 << 20
    assert after["tx_bytes"] - before["tx_bytes"] >= 4 << 20
    assert after["rx_packets"] > before["rx_packets"]


def test_interfaces_all_includes_down_ones_and_formats() -> None:
    up = support.invoke(["info", "interfaces", "--format", "jsonl"]).jsonl()
    everything = support.invoke(["info", "interfaces", "--all", "--format", "jsonl"]).jsonl()
    assert all(i["up"] for i in up)
    assert {i["name"] for i in up} <= {i["name"] for i in everything}
    csv_out = support.invoke(["info", "interfaces", "--format", "csv"]).stdout.splitlines()
    assert csv_out[0] == ",".join(INTERFACE_FIELDS) and len(csv_out) == len(up) + 1
    table = support.invoke(["info", "interfaces"])
    assert table.exit_code == 0 and "lo" in table.stdout and "127.0.0.1/8" in table.stdout


# ----- traffic -----------------------------------------------------------------------------------
def test_traffic_json_takes_about_count_times_interval() -> None:
    t0 = time.perf_counter()
    r = support.run_netkit(["info", "traffic", "--count", "3", "--interval", "200ms", "--format", "json"])
    wall = time.perf_counter() - t0
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert set(doc) == {"interval_s", "samples", "summary", "interrupted"}
    assert doc["interval_s"] == 0.2 and doc["interrupted"] is False
    seqs = sorted({s["seq"] for s in doc["samples"]})
    assert seqs == [1, 2, 3]
    for s in doc["samples"]:
        assert list(s) == list(TRAFFIC_FIELDS)
        assert 0 < s["elapsed_s"] < 0.6  # deadlines are absolute: a late reading shortens the next
    measured = max(s["elapsed_s"] for s in doc["summary"])
    assert 0.59 < measured < 0.9  # first to last reading: 3 x 200 ms, plus the last wake-up's lag
    assert wall < 3.0  # about 0.6 s plus interpreter start-up (slack for a loaded CI machine)


def test_traffic_rates_see_our_loopback_traffic(no_socket_leak: None) -> None:
    stop = threading.Event()
    sent = [0]

    def pump() -> None:
        with tcp_listener() as lst:
            cli = socket.create_connection(lst.getsockname(), timeout=5)
            srv, _ = lst.accept()
            srv.settimeout(5)
            block = b"y" * 65536
            try:
                while not stop.is_set():
                    cli.sendall(block)
                    need = len(block)
                    while need:
                        need -= len(srv.recv(need))
                    sent[0] += len(block)
            finally:
                cli.close()
                srv.close()

    t = threading.Thread(target=pump)
    t.start()
    try:
        support.wait_until(lambda: sent[0] > 0)
        r = support.invoke(["info", "traffic", "--interface", "lo", "--count", "2", "--interval", "100ms",
                            "--format", "jsonl"])
    finally:
        stop.set()
        t.join(10)
    assert r.exit_code == 0, r.stderr
    rows = r.jsonl()
    assert [(x["seq"], x["interface"]) for x in rows] == [(1, "lo"), (2, "lo")]
    for x in rows:
        assert x["rx_bytes"] > 0 and x["rx_bytes_per_s"] > 0
        assert x["rx_bytes_per_s"] == pytest.approx(x["rx_bytes"] / x["elapsed_s"])


def test_traffic_plain_lines_off_a_terminal_and_csv() -> None:
    r = support.invoke(["info", "traffic", "--interface", "lo", "-c", "1", "-i", "50ms"])
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "interface", "rx/s"] and " lo " in lines[1]
    r = support.invoke(["info", "traffic", "--interface", "lo", "-c", "2", "-i", "50ms", "--format", "csv"])
    lines = r.stdout.splitlines()
    assert lines[0] == ",".join(TRAFFIC_FIELDS) and len(lines) == 3


def test_traffic_usage_errors() -> None:
    r = support.invoke(["info", "traffic", "--interface", "no-such-if0", "-c", "1"])
    assert r.exit_code == 2 and "unknown interface 'no-such-if0'" in r.stderr
    assert support.invoke(["info", "traffic", "--interval", "0"]).exit_code == 2
    assert support.invoke(["info", "traffic", "--count", "0"]).exit_code == 2


def _interrupt_after_first_sample(*extra: str) -> tuple[int, list[dict]]:
    proc = subprocess.Popen(
        support.netkit_cmd("info", "traffic", "--interface", "lo", "--interval", "50ms", "--format", "jsonl", *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env(),
        preexec_fn=support._preexec_default_sigint,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the first interval has been measured and written
    assert first, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    rows = [json.loads(x) for x in [first, *out.splitlines()] if x.strip()]
    return proc.returncode, rows


def test_traffic_ctrl_c_is_the_normal_end_without_count() -> None:
    code, rows = _interrupt_after_first_sample()
    assert code == 0 and rows[0]["seq"] == 1


def test_traffic_ctrl_c_before_count_exits_130() -> None:
    code, rows = _interrupt_after_first_sample("--count", "10000")
    assert code == 130 and rows[0]["interface"] == "lo"


def test_version_does_not_import_psutil_or_rich() -> None:
    code = ("import sys; from netkit.cli.main import run; run(['--version']); "
            "print(sorted(m for m in ('psutil', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
    assert out.strip().endswith("[]")
    # and the info module itself loads neither until a command runs
    code = ("import sys, netkit.cli.info, netkit.cli.completion; "
            "print(sorted(m for m in ('psutil', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
    assert out.strip() == "[]"


def test_connections_fall_back_to_per_process_when_the_table_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS refuses the system-wide table to non-root: then each process's own sockets are used."""
    import psutil

    from netkit.core.sysinfo_models import ConnectionFilter
    from netkit.sysinfo.connections import list_connections

    def refuse(kind: str = "inet") -> list:
        raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, "net_connections", refuse)
    with tcp_listener() as lst:
        port = lst.getsockname()[1]
        table = list_connections(ConnectionFilter(ports=frozenset({port})))
    (row,) = table.connections
    assert (row.local_port, row.state, row.pid) == (port, "listen", os.getpid())
