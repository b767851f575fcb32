"""``netkit monitor`` as a real process on loopback: scrape /metrics, parse with prometheus_client's parser.

Known setup: netkit's TCP echo server (an open port) and a bound socket that never listens (a
closed port: connects are refused, and no other process can take the port meanwhile).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import support
from prometheus_client.parser import text_string_to_metric_families

FAST = ["--interval", "0.5s", "--timeout", "200ms", "--listen", "127.0.0.1:0"]


def scrape(address: str) -> dict[tuple[str, str], float]:
    """``{(sample name, target label): value}`` from /metrics, via the official parser."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: dict[tuple[str, str], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "netkit_rtt_seconds_bucket":
                out[(f"{s.name}{{le={s.labels['le']}}}", s.labels["target"])] = s.value
            else:
                out[(s.name, s.labels.get("target", ""))] = s.value
    return out


def rounds_at_least(address: str, targets: list[str], n: int) -> dict[tuple[str, str], float] | None:
    values = scrape(address)
    if all(values.get(("netkit_monitor_rounds_total", t), 0) >= n for t in targets):
        return values
    return None


@pytest.fixture
def open_port() -> Iterator[str]:
    with support.netkit_server("serve", "tcp", "--port", "0") as server:
        yield server.addr


@pytest.fixture
def closed_port() -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_open_and_closed_port_values(open_port: str, closed_port: str, tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'[[targets]]\ntarget = "{closed_port}"\nname = "closed-retry"\nretries = 1\n')
    mon = support.start_netkit_server("monitor", open_port, closed_port, "--config", str(config), *FAST)
    try:
        where = f"{mon.host}:{mon.port}"
        values = support.wait_until(lambda: rounds_at_least(where, [open_port, closed_port, "closed-retry"], 2),
                                    timeout=10, interval=0.1)
        n_open = values[("netkit_monitor_rounds_total", open_port)]
        assert values[("netkit_probe_success", open_port)] == 1.0
        assert values[("netkit_packets_sent_total", open_port)] == 3 * n_open
        assert values[("netkit_packets_lost_total", open_port)] == 0
        assert values[("netkit_probe_attempts_total", open_port)] == n_open
        assert values[("netkit_rtt_seconds_count", open_port)] == 3 * n_open
        assert values[("netkit_rtt_seconds_bucket{le=+Inf}", open_port)] == 3 * n_open
        assert 0 < values[("netkit_rtt_seconds_sum", open_port)] < 3 * n_open * 0.1
        assert 0.1 <= values[("netkit_probe_duration_seconds", open_port)] < 0.5  # 3 packets 50 ms apart

        n_closed = values[("netkit_monitor_rounds_total", closed_port)]
        assert values[("netkit_probe_success", closed_port)] == 0.0
        assert values[("netkit_probe_attempts_total", closed_port)] == n_closed
        assert values[("netkit_packets_sent_total", closed_port)] == 0  # no latency packets to a closed port
        assert values[("netkit_rtt_seconds_count", closed_port)] == 0
        n_retry = values[("netkit_monitor_rounds_total", "closed-retry")]
        assert values[("netkit_probe_attempts_total", "closed-retry")] == 2 * n_retry
    finally:
        code, out, err = mon.stop(signal.SIGTERM)
    assert code == 0, err  # SIGTERM is a clean stop
    assert "Traceback" not in err
    assert "netkit monitor" in out and "closed-retry" in out  # the summary table


def test_sighup_reloads_and_a_bad_config_keeps_the_old_one(open_port: str, closed_port: str,
                                                           tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'interval = "0.5s"\ntimeout = "100ms"\n[[targets]]\ntarget = "{open_port}"\nname = "a"\n')
    mon = support.start_netkit_server("monitor", "--config", str(config), "--listen", "127.0.0.1:0")
    try:
        where = f"{mon.host}:{mon.port}"
        support.wait_until(lambda: rounds_at_least(where, ["a"], 1), timeout=10, interval=0.1)
        config.write_text(config.read_text() + f'[[targets]]\ntarget = "{closed_port}"\nname = "b"\n'
                          'labels = { role = "new" }\n')
        mon.proc.send_signal(signal.SIGHUP)
        values = support.wait_until(lambda: rounds_at_least(where, ["a", "b"], 1), timeout=10, interval=0.1)
        assert values[("netkit_probe_success", "b")] == 0.0
        assert values[("netkit_monitor_config_last_reload_successful", "")] == 1.0

        before = values[("netkit_monitor_rounds_total", "a")]
        config.write_text('interval = "0.5s"\n[[targets]]\ntarget = "127.0.0.1:1"\nintervall = "1s"\n')
        mon.proc.send_signal(signal.SIGHUP)

        def failed_reload_but_running() -> bool:
            v = scrape(where)
            return (v[("netkit_monitor_config_last_reload_successful", "")] == 0.0
                    and v[("netkit_monitor_rounds_total", "a")] >= before + 2
                    and ("netkit_monitor_rounds_total", "127.0.0.1:1") not in v)

        support.wait_until(failed_reload_but_running, timeout=10, interval=0.1)
    finally:
        code, _out, err = mon.stop(signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err and "never retrieved" not in err
    assert "reloaded: 2 targets (1 added, 0 removed)" in err
    assert "reload failed, keeping the previous config:" in err and "targets[0].intervall: unknown key" in err


def test_textfile_is_written_atomically_and_rounds_set_the_exit_status(open_port: str, closed_port: str,
                                                                       tmp_path: Path) -> None:
    prom = tmp_path / "netkit.prom"
    res = support.run_netkit(["monitor", open_port, "--interval", "0.5s", "--timeout", "100ms", "--rounds", "2",
                              "--textfile", str(prom)], timeout=30)
    assert res.exit_code == 0, res.stderr
    assert "listening on" not in res.stderr  # a textfile alone: no HTTP endpoint
    assert [p.name for p in tmp_path.iterdir()] == ["netkit.prom"]  # no temporary file left behind
    fams = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    assert [s.value for s in fams["netkit_probe_success"].samples] == [1.0]
    assert [s.value for s in fams["netkit_packets_sent"].samples] == [6.0]

    res = support.run_netkit(["monitor", open_port, closed_port, "--interval", "0.5s", "--timeout", "100ms",
                              "--rounds", "1", "--textfile", str(prom)], timeout=30)
    assert res.exit_code == 1  # a target failed its last round


def test_jsonl_off_a_terminal_is_one_line_per_round(open_port: str, closed_port: str) -> None:
    res = support.run_netkit(["monitor", open_port, closed_port, "--interval", "0.5s", "--timeout", "100ms",
                              "--rounds", "2", "--listen", "127.0.0.1:0", "--format", "jsonl"], timeout=30)
    assert res.exit_code == 1, res.stderr
    lines = res.jsonl()
    assert [d["event"] for d in lines] == ["round", "round", "summary"]
    assert [d["round"] for d in lines[:2]] == [1, 2]
    first = {t["target"]: t for t in lines[0]["targets"]}
    assert first[open_port]["success"] is True and first[open_port]["sent"] == 3
    assert first[open_port]["rtt_ms"]["last"] > 0
    assert first[closed_port]["state"] == "closed" and first[closed_port]["error"] == "connection refused"
    summary = {t["target"]: t for t in lines[2]["targets"]}
    assert summary[open_port]["rounds"] == 2 and summary[open_port]["sent"] == 6
    json.dumps(lines)  # plain JSON values only


def test_plain_lines_when_stdout_is_a_pipe(open_port: str) -> None:
    proc = subprocess.run(support.netkit_cmd("monitor", open_port, "--interval", "0.5s", "--timeout", "100ms",
                                             "--rounds", "1", "--listen", "127.0.0.1:0"),
                          capture_output=True, text=True, timeout=30, env=support.clean_env())
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert f" {open_port} tcp-connect open rtt=" in first and "loss=0/3" in first


def test_sigint_prints_the_summary_and_exits_130(open_port: str) -> None:
    mon = support.start_netkit_server("monitor", open_port, *FAST, "--format", "json")
    where = f"{mon.host}:{mon.port}"
    support.wait_until(lambda: rounds_at_least(where, [open_port], 1), timeout=10, interval=0.1)
    mon.proc.send_signal(signal.SIGHUP)  # no --config: a warning, and the rounds go on
    n = scrape(where)[("netkit_monitor_rounds_total", open_port)]
    support.wait_until(lambda: rounds_at_least(where, [open_port], n + 1), timeout=10, interval=0.1)
    code, out, err = mon.stop(signal.SIGINT)
    assert code == 130, err
    assert "SIGHUP: nothing to reload (no --config)" in err and "Traceback" not in err
    doc = json.loads(out)
    (rec,) = doc["targets"]
    assert rec["target"] == open_port and rec["rounds"] >= 1 and rec["success"] is True
    assert list(rec) == ["target", "method", "rounds", "up_rounds", "success", "attempts", "sent", "lost",
                         "loss_pct", "rtt_avg_ms"]


def test_icmp_to_loopback() -> None:
    res = support.run_netkit(["monitor", "127.0.0.1", "--method", "icmp", "--interval", "0.5s", "--rounds", "1",
                              "--listen", "127.0.0.1:0", "--format", "jsonl"], timeout=30)
    first = res.jsonl()[0]["targets"][0]
    if first["error"] and "ICMP needs" in first["error"]:
        pytest.skip("no ICMP socket for this user (root or net.ipv4.ping_group_range needed)")
    assert res.exit_code == 0, res.stderr
    assert first["success"] is True and first["attempts"] == 1 and first["sent"] == 3 and first["received"] == 3


def test_csv_rows_per_target_per_round(open_port: str, closed_port: str) -> None:
    res = support.run_netkit(["monitor", open_port, closed_port, "--interval", "0.5s", "--rounds", "1",
                              "--listen", "127.0.0.1:0", "--format", "csv"], timeout=30)
    header, *rows = res.stdout.splitlines()
    assert header == ("time,round,target,method,address,success,state,attempts,duration_s,sent,received,lost,"
                      "loss_pct,rtt_ms.min,rtt_ms.avg,rtt_ms.max,rtt_ms.last,error")
    assert [r.split(",")[2] for r in rows] == [open_port, closed_port]
    assert rows[1].split(",")[6] == "closed" and rows[1].endswith("connection refused")
