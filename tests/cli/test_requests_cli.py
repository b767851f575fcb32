"""``netkit measure requests`` as users run it: real subprocesses against ``netkit serve tcp``."""

from __future__ import annotations

import time

import pytest
import support


@pytest.fixture(scope="module")
def echo():
    with support.netkit_server("serve", "tcp", "--port", "0", "-q") as srv:
        yield srv


def test_json_summary_with_all_fields(echo) -> None:
    r = support.run_netkit(["measure", "requests", echo.addr, "-c", "4", "-n", "2000", "--format", "json"])
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert doc["requests"] == 2000 and doc["mode"] == "closed-loop" and doc["framing"] == "length"
    assert doc["requests_per_s"] > 0 and doc["errors"]["total"] == 0 and doc["reconnects"] == 0
    assert set(doc["latency_ms"]) == {"min", "avg", "p50", "p90", "p99", "p99_9", "max"}
    assert doc["thresholds"] == {"min_rps": None, "max_p99_ms": None, "passed": True, "failed": []}
    assert doc["intervals"] and doc["intervals"][0]["requests"] == 2000


def test_jsonl_streams_intervals_then_summary(echo) -> None:
    r = support.run_netkit(["measure", "requests", echo.addr, "-c", "2", "-d", "1.5s", "--rate", "200",
                            "--format", "jsonl"])
    assert r.exit_code == 0, r.stderr
    events = r.jsonl()
    assert [e["event"] for e in events] == ["interval", "interval", "summary"]
    assert events[-1]["mode"] == "open-loop" and events[-1]["latency_from"] == "scheduled"
    assert 250 <= events[-1]["requests"] <= 320


def test_thresholds_exit_1_and_table_lines(echo) -> None:
    r = support.run_netkit(["measure", "requests", echo.addr, "-c", "2", "-d", "1.2s", "--rate", "100",
                            "--min-rps", "1000000", "--max-p99", "1us"])
    assert r.exit_code == 1
    assert "min-rps" in r.stderr and "max-p99" in r.stderr
    assert "req/s" in r.stdout and "p99" in r.stdout  # per-second line and the summary table
    assert "open loop" in r.stdout


def test_line_payload_expect_and_csv(echo) -> None:
    r = support.run_netkit(["measure", "requests", echo.addr, "-c", "2", "-n", "100", "--payload", r"PING\r\n",
                            "--delimiter", r"\r\n", "--expect", "^PING", "--format", "csv"])
    assert r.exit_code == 0, r.stderr
    import csv
    import io

    (rec,) = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rec["requests"] == "100" and rec["framing"] == "delimiter" and rec["errors.unexpected-reply"] == "0"


def test_payload_from_file(echo, tmp_path) -> None:
    f = tmp_path / "req.bin"
    f.write_bytes(b"\x01\x02hello\xff")
    r = support.run_netkit(["measure", "requests", echo.addr, "-c", "1", "-n", "20", "--payload", f"@{f}",
                            "--expect", "hello", "--format", "json"])
    assert r.exit_code == 0, r.stderr
    assert r.json()["requests"] == 20 and r.json()["bytes_received"] == 20 * 8
    missing = support.invoke(["measure", "requests", echo.addr, "--payload", f"@{tmp_path}/nope"])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


def test_netkit_header_framing(echo) -> None:
    r = support.run_netkit(["measure", "requests", echo.addr, "-c", "2", "-n", "200", "--netkit-header",
                            "--size", "16", "--reply-size", "2K", "--format", "json"])
    assert r.exit_code == 0, r.stderr
    assert r.json()["framing"] == "header" and r.json()["bytes_received"] >= 200 * 2048


@pytest.mark.parametrize("args, words", [
    (["--size", "10", "--payload", "x"], "exclude"),
    (["--delimiter", r"\q"], "escape"),
    (["--expect", "("], "regex"),
    (["--insecure"], "--tls"),
    (["--netkit-header", "--delimiter", "x"], "exclude"),
    (["-c", "0"], "connections"),
])
def test_usage_errors_exit_2(args: list[str], words: str) -> None:
    r = support.invoke(["measure", "requests", "127.0.0.1:9", *args])
    assert r.exit_code == 2
    assert words in r.stderr


def test_refused_exit_1() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        r = support.run_netkit(["measure", "requests", f"127.0.0.1:{port}", "-n", "10"])
    assert r.exit_code == 1
    assert r.stderr == f"netkit: 127.0.0.1:{port}: connection refused\n"  # as every command words it


def test_server_process_killed_and_restarted_mid_run() -> None:
    import json
    import subprocess
    import time

    first = support.start_netkit_server("serve", "tcp", "--port", "0", "-q")
    port = first.port
    proc = subprocess.Popen(support.netkit_cmd("measure", "requests", f"127.0.0.1:{port}", "-c", "4", "-d", "2.5s",
                                               "--backoff", "100ms", "--max-backoff", "200ms", "--format", "json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env())
    second = None
    try:
        time.sleep(0.8)
        first.proc.kill()  # the kernel closes every connection of the dead process
        first.proc.communicate(timeout=10)
        second = support.start_netkit_server("serve", "tcp", "--port", str(port), "-q")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if second is not None:
            second.stop()
    assert proc.returncode == 0, err.decode()
    doc = json.loads(out)
    assert doc["drops"] >= 4 and doc["reconnects"] >= 4 and doc["requests"] > 0
    assert doc["intervals"][-1]["open_connections"] == 4 and doc["intervals"][-1]["requests"] > 0


def test_a_rate_the_generator_cannot_reach_is_said_once_and_does_not_collapse_it(echo) -> None:
    """-r 10M: the generator keeps sending what its connections carry (it once fell to ~100 req/s,
    drowned in per-request bookkeeping), the run ends on time, and one warning names the shortfall."""
    t0 = time.monotonic()
    res = support.run_netkit(["--format", "json", "measure", "requests", echo.addr, "-d", "1s", "-r", "10M"],
                             timeout=60)
    took = time.monotonic() - t0
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["sent_per_s"] > 2000, doc  # far below 10M, far above a collapse
    assert doc["unsent"] >= 0 and doc["sent"] >= doc["requests"] > 0
    warnings = [line for line in res.stderr.splitlines() if "requests/s sent of 10,000,000 asked" in line]
    assert len(warnings) == 1 and warnings[0].startswith("netkit: warning:"), res.stderr
    assert took < 1 + 5, f"took {took:.1f}s for -d 1s"
