"""``netkit measure latency`` as a user runs it: output formats, thresholds, exit statuses."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import support

from netkit.io.servers.reflector_server import reflector_in_thread

TARGET_KEYS = ["target", "address", "sent", "received", "lost", "loss_pct", "lost_forward", "lost_return",
               "duplicates", "reordered", "late", "rtt_ms", "jitter_ms", "ipdv_ms", "samples_ms", "local_drops",
               "achieved_pps", "timestamps"]
RTT_KEYS = ["min", "avg", "max", "mdev", "p50", "p90", "p95", "p99"]


@pytest.fixture(scope="module")
def refl() -> Iterator[str]:
    with reflector_in_thread() as srv:
        host, port = srv.address
        yield f"{host}:{port}"


@pytest.fixture
def listener() -> Iterator[str]:
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(64)
        yield f"127.0.0.1:{ls.getsockname()[1]}"


def test_json_schema_exact_with_nulls(listener: str) -> None:
    res = support.run_netkit(["measure", "latency", listener, "-c", "3", "-i", "5ms", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert list(doc) == ["method", "targets", "thresholds", "interrupted"] and doc["interrupted"] is False
    assert doc["method"] == "tcp-connect"
    t = doc["targets"][0]
    assert list(t) == TARGET_KEYS
    assert list(t["rtt_ms"]) == RTT_KEYS
    assert t["lost_forward"] is None and t["lost_return"] is None and t["samples_ms"] is None
    assert t["local_drops"] is None  # TCP: no socket buffer that drops replies
    assert t["timestamps"] == "user"  # a handshake is timed by this process's clock
    assert (t["sent"], t["received"], t["lost"], t["loss_pct"]) == (3, 3, 0, 0.0)
    assert doc["thresholds"] == {"max_loss_pct": None, "max_rtt_ms": None, "passed": True, "failed": []}


def test_udp_samples_and_direction_fields(refl: str) -> None:
    res = support.run_netkit(["measure", "latency", "-m", "udp", refl, "-c", "4", "-i", "5ms", "--samples",
                              "--format", "json"])
    t = res.json()["targets"][0]
    assert len(t["samples_ms"]) == 4 and all(s > 0 for s in t["samples_ms"])
    assert (t["lost_forward"], t["lost_return"]) == (0, 0)


def test_plain_lines_off_terminal_and_quiet(refl: str) -> None:
    res = support.run_netkit(["measure", "latency", "-m", "udp", refl, "-c", "3", "-i", "5ms"])
    lines = [ln for ln in res.stdout.splitlines() if " bytes from " in ln]
    assert len(lines) == 3 and "seq=0 time=" in lines[0] and lines[0].endswith(" ms")
    assert "round-trip time" in res.stdout and "┃" not in res.stdout and "─" not in res.stdout
    quiet = support.run_netkit(["measure", "latency", "-m", "udp", refl, "-c", "2", "-i", "5ms", "-q"])
    assert quiet.exit_code == 0 and quiet.stdout == ""


def test_jsonl_streams_replies_then_summary(refl: str) -> None:
    res = support.run_netkit(["measure", "latency", "-m", "udp", refl, "-c", "3", "-i", "5ms", "--format", "jsonl"])
    events = res.jsonl()
    assert [e["event"] for e in events] == ["reply"] * 3 + ["summary"]
    assert [e["seq"] for e in events[:3]] == [0, 1, 2]
    assert events[-1]["targets"][0]["received"] == 3


def test_max_rtt_breach_exits_1_and_says_which(refl: str) -> None:
    res = support.run_netkit(["measure", "latency", "-m", "udp", refl, "-c", "3", "-i", "5ms", "--max-rtt", "1ns",
                              "--max-loss", "50", "--format", "json"])
    assert res.exit_code == 1
    th = res.json()["thresholds"]
    assert th["passed"] is False and th["max_rtt_ms"] == pytest.approx(1e-6) and th["max_loss_pct"] == 50
    assert len(th["failed"]) == 1 and "max-rtt" in th["failed"][0]
    ok = support.run_netkit(["measure", "latency", "-m", "udp", refl, "-c", "3", "-i", "5ms", "--max-rtt", "5s",
                             "--max-loss", "0"])
    assert ok.exit_code == 0


def test_no_reply_exits_1() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))  # bound, never answers
        port = s.getsockname()[1]
        res = support.run_netkit(["measure", "latency", "-m", "udp", f"127.0.0.1:{port}", "-c", "2", "-i", "5ms",
                                  "-W", "100ms"])
    assert res.exit_code == 1
    assert "no reply" in res.stderr and "Traceback" not in res.stderr


def test_several_targets_one_row_each(refl: str, listener: str) -> None:
    res = support.run_netkit(["measure", "latency", listener, listener, "-c", "2", "-i", "5ms", "--format", "csv"])
    rows = res.stdout.strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("method,target,")


@pytest.mark.parametrize("args", [
    ["-m", "udp", "127.0.0.1:9", "--size", "10"],
    ["-m", "udp", "127.0.0.1"],
    ["127.0.0.1:9", "-4", "-6"],
    ["127.0.0.1:9", "--interval", "soon"],
    ["127.0.0.1:9", "--max-loss", "120"],
    [],
])
def test_usage_errors_exit_2(args: list[str]) -> None:
    res = support.invoke(["measure", "latency", *args])
    assert res.exit_code == 2, res.stderr


def test_closed_stdout_ends_quietly(refl: str) -> None:
    import subprocess

    proc = subprocess.Popen(support.netkit_cmd("measure", "latency", "-m", "udp", refl, "-c", "50", "-i", "20ms"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env())
    assert proc.stdout is not None and proc.stderr is not None
    assert b"bytes from" in proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=10) == 141
    assert "Traceback" not in err and "Exception" not in err


def test_no_port_hints_at_icmp() -> None:
    res = support.invoke(["measure", "latency", "127.0.0.1"])
    assert res.exit_code == 2
    assert "127.0.0.1: no port: give HOST:PORT, or --method icmp for ICMP echo" in res.stderr


def test_icmp_with_a_port_warns_once_and_measures_the_host() -> None:
    res = support.run_netkit(["measure", "latency", "-m", "icmp", "127.0.0.1:80", "localhost:80", "-c", "1",
                              "--format", "json"])
    if res.exit_code == 3:
        pytest.skip("no ICMP socket here: " + res.stderr)
    assert res.exit_code == 0, res.stderr
    assert res.stderr.count("netkit: warning: --method icmp has no ports; ignoring :") == 1
    assert [t["target"] for t in res.json()["targets"]] == ["127.0.0.1", "localhost"]


def test_tcp_connect_table_has_no_direction_columns_and_no_verdict_without_thresholds(listener: str) -> None:
    res = support.run_netkit(["measure", "latency", listener, "-c", "2", "-i", "5ms"])
    assert res.exit_code == 0, res.stderr
    assert "fwd" not in res.stdout and "thresholds" not in res.stdout and "answered by" not in res.stderr
    assert "0.0 %" in res.stdout and " ms" in res.stdout


def test_notes_on_stderr_say_netkit(refl: str) -> None:
    res = support.run_netkit(["measure", "latency", "-m", "udp", refl, "-c", "2", "-i", "5ms"])
    assert f"netkit: {refl}: answered by netkit's reflector (per-direction loss)" in res.stderr
    assert "fwd/ret: lost on the way there / back" in res.stdout
    assert all(line.startswith("netkit: ") for line in res.stderr.splitlines()), res.stderr


def test_help_says_what_quiet_does() -> None:
    res = support.invoke(["measure", "latency", "--help"])
    text = " ".join(res.stdout.split())
    assert "summary only" not in text and "with -q nothing is printed and the exit status tells" in text
