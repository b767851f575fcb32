"""``netkit measure throughput`` as users run it: formats, exit codes, usage errors."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
import support

ISSUE_TOP = ["protocol", "streams", "reverse", "duration_s", "intervals", "summary", "counted_by"]
ISSUE_INTERVAL = ["start_s", "end_s", "bytes", "bits_per_second"]
ISSUE_SUMMARY = ["sent_bytes", "received_bytes", "sent_bits_per_second", "received_bits_per_second",
                 "retransmits", "cpu_percent"]


@pytest.fixture(scope="module")
def server():
    with support.netkit_server("serve", "tcp", "--port", "0") as srv:
        yield srv


def test_json_schema(server):
    r = support.run_netkit(["measure", "throughput", server.addr, "-t", "0.6s", "-i", "0.3s", "-P", "2",
                            "--format", "json"])
    assert r.exit_code == 0, r.stderr
    d = r.json()
    assert list(d)[: len(ISSUE_TOP)] == ISSUE_TOP
    assert d["protocol"] == "tcp" and d["streams"] == 2 and d["reverse"] is False and d["duration_s"] == 0.6
    assert d["counted_by"] == "receiver"
    assert len(d["intervals"]) == 2
    for row in d["intervals"]:
        assert list(row)[:4] == ISSUE_INTERVAL
    assert list(d["summary"])[: len(ISSUE_SUMMARY)] == ISSUE_SUMMARY
    assert d["summary"]["received_bytes"] == d["summary"]["sent_bytes"] > 0


def test_jsonl_streams_intervals_then_summary(server):
    r = support.run_netkit(["--format", "jsonl", "measure", "throughput", server.addr, "-t", "0.6s", "-i", "0.2s",
                            "--reverse"])
    assert r.exit_code == 0, r.stderr
    lines = r.jsonl()
    assert [ln["event"] for ln in lines] == ["interval"] * 3 + ["summary"]
    assert lines[-1]["reverse"] is True and "intervals" not in lines[-1]


def test_table_and_min_rate_check(server):
    r = support.run_netkit(["measure", "throughput", server.addr, "-t", "0.5s", "--min-rate", "1T"])
    assert r.exit_code == 1
    assert "below --min-rate" in r.stderr
    assert "SUM" in r.stdout and "counted by receiver" in r.stdout
    ok = support.run_netkit(["measure", "throughput", server.addr, "-t", "0.3s", "--min-rate", "1M", "-q"])
    assert ok.exit_code == 0 and ok.stdout == ""


def test_csv(server):
    r = support.run_netkit(["measure", "throughput", server.addr, "-t", "0.4s", "-i", "0.2s", "--format", "csv"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "kind,start_s,end_s,bytes,bits_per_second,omitted"
    assert [ln.split(",")[0] for ln in lines[1:]] == ["interval", "interval", "summary"]


@pytest.mark.parametrize("args", [
    ["--reverse", "--bidir"],
    ["--rate", "10M"],
    ["--iperf3", "--plain"],
    ["-t", "0"],
    ["-P", "0"],
    ["-l", "0"],
])
def test_usage_errors(args):
    r = support.invoke(["measure", "throughput", "127.0.0.1:9", *args])
    assert r.exit_code == 2


def test_refused_is_exit_1():
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connect is refused
        r = support.run_netkit(["measure", "throughput", f"127.0.0.1:{port}", "-t", "0.2s"])
    assert r.exit_code == 1
    assert "refused" in r.stderr and "Traceback" not in r.stderr


def test_sigint_prints_summary_and_exits_130(server):
    proc = subprocess.Popen(support.netkit_cmd("--format", "jsonl", "measure", "throughput", server.addr,
                                               "-t", "30s", "-i", "0.2s"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # an interval has been measured: now interrupt
    assert first["event"] == "interval"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    last = json.loads(out.strip().splitlines()[-1])
    assert last["event"] == "summary" and last["interrupted"] is True
    assert last["summary"]["received_bytes"] > 0


class _TTY(__import__("io").StringIO):
    def isatty(self) -> bool:
        return True


def test_live_view_on_a_terminal_and_plain_lines_off_it():
    from netkit.core.throughput_models import SEND, interval_row
    from netkit.render.output import Output
    from netkit.render.throughput import ThroughputView, interval_lines

    row = interval_row(0, 500_000_000, [(0, SEND, 1_000_000), (1, SEND, 3_000_000)])
    out = Output(format="table", stdout=__import__("io").StringIO(), stderr=_TTY())
    assert out.live_ok
    with ThroughputView(out, 1.0, multi=True) as view:
        view.progress(0.25)
        view.interval(row)
    assert "Mbit/s" in out.stderr.getvalue()  # the live view drew the interval on stderr
    assert out.stdout.getvalue() == ""  # and nothing went to stdout while running
    lines = interval_lines(row, multi=True)
    assert len(lines) == 3 and lines[-1].startswith("[SUM") and "64.0 Mbit/s" in lines[-1]


def test_min_rate_is_in_the_json_thresholds_and_decides_the_exit(server):
    low = support.run_netkit(["measure", "throughput", server.addr, "-t", "0.4s", "--min-rate", "900G",
                              "--format", "json"])
    assert low.exit_code == 1, low.stderr
    th = low.json()["thresholds"]
    assert th["min_rate_bps"] == 900e9 and th["passed"] is False
    assert len(th["failed"]) == 1 and "below --min-rate 900 Gbit/s" in th["failed"][0]
    assert low.stderr.strip().splitlines() == [f"netkit: check failed: {th['failed'][0]}"]
    ok = support.run_netkit(["measure", "throughput", server.addr, "-t", "0.3s", "--min-rate", "1M",
                             "--format", "json"])
    assert ok.exit_code == 0, ok.stderr
    assert ok.json()["thresholds"] == {"min_rate_bps": 1e6, "passed": True, "failed": []}
    none = support.run_netkit(["measure", "throughput", server.addr, "-t", "0.3s", "--format", "json"])
    assert none.json()["thresholds"] == {"min_rate_bps": None, "passed": True, "failed": []}


def test_bidir_prints_and_writes_each_direction_apart(server):
    r = support.run_netkit(["measure", "throughput", server.addr, "-t", "0.6s", "-i", "0.3s", "--bidir"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.count("[SUM send]") == 2 and r.stdout.count("[SUM recv]") == 2
    assert "[SUM     ]" not in r.stdout
    j = support.run_netkit(["measure", "throughput", server.addr, "-t", "0.6s", "-i", "0.3s", "--bidir",
                            "--format", "json"]).json()
    s = j["summary"]
    assert s["tx"]["direction"] == "send" and s["rx"]["direction"] == "recv"
    assert s["tx"]["received_bytes"] + s["rx"]["received_bytes"] == s["received_bytes"]
    for row in j["intervals"]:
        assert row["tx_bytes"] + row["rx_bytes"] == row["bytes"]


def test_omit_intervals_restart_at_zero_in_jsonl(server):
    r = support.run_netkit(["--format", "jsonl", "measure", "throughput", server.addr, "-t", "0.6s", "-i", "0.3s",
                            "-O", "0.3s"])
    assert r.exit_code == 0, r.stderr
    rows = [(ln["start_s"], ln["end_s"], ln["omitted"]) for ln in r.jsonl() if ln["event"] == "interval"]
    assert [(s, o) for s, _, o in rows] == [(0.0, True), (0.0, False), (0.3, False)]
    summary = r.jsonl()[-1]["summary"]
    assert summary["sent_bytes"] >= summary["received_bytes"] > 0


def test_tls_server_closing_at_once_is_named_not_only_the_key():
    # A user pointing measure throughput at serve tcp --tls: the hint must not send them after a key only.
    with support.netkit_server("serve", "tcp", "--port", "0", "--tls") as srv:
        res = support.run_netkit(["measure", "throughput", srv.addr, "-t", "1"])
    assert res.exit_code == 1
    assert res.stderr.startswith("netkit: ") and len(res.stderr.strip().splitlines()) == 1
    assert "TLS server" in res.stderr and "--key" in res.stderr


def test_rate_without_udp_says_the_reason_once():
    r = support.invoke(["measure", "throughput", "127.0.0.1:9", "-b", "10M"])
    assert r.exit_code == 2
    assert r.stderr.splitlines() == ["netkit: -b/--rate paces UDP only: add --udp",
                                     "Try 'netkit measure throughput --help' for help."]
