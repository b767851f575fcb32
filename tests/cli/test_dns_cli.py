"""``netkit measure dns`` on the command line: usage errors (exit 2) with one line, no traceback; no
server to ask (exit 3); Ctrl-C prints the summary of what was measured and exits 130."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import support


@pytest.mark.parametrize(("args", "message"), [
    (["a.test", "-s", "dns.example"], "give an IP address"),
    (["a.test", "-s", "127.0.0.1:0"], "not within 1..65535"),
    (["a.test", "-s", "127.0.0.1", "--expect", "("], "missing )"),
    (["a.test", "-s", "127.0.0.1", "--expect-rcode", "BOGUS"], "unknown rcode"),
    (["a..test", "-s", "127.0.0.1"], "not a DNS name"),
    (["a.test", "-s", "127.0.0.1", "-t", "AXFR"], "AXFR"),
    (["a.test", "-s", "127.0.0.1", "--edns-size", "100"], "--edns-size"),
    (["a.test", "b.test", "-s", "127.0.0.1", "-c", "60000"], "at most 100,000 queries"),
    (["a.test", "--tls", "--https", "https://127.0.0.1/dns-query"], "exclude each other"),
])
def test_usage_errors(args: list[str], message: str) -> None:
    res = support.invoke(["measure", "dns", *args])
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr


def test_no_nameserver_is_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\n")
    monkeypatch.setattr("netkit.cli.measure_dns.RESOLV_CONF", str(conf))
    res = support.invoke(["measure", "dns", "a.test"])
    assert res.exit_code == 3 and "no nameserver line" in res.stderr and "give --server" in res.stderr


def test_ctrl_c_prints_the_summary_and_exits_130() -> None:
    with support.udp_peer(lambda _q: None) as port:
        proc = subprocess.Popen(
            support.netkit_cmd("--format", "jsonl", "measure", "dns", "a.test", "-s", f"127.0.0.1:{port}",
                               "-c", "1000", "-i", "0", "-W", "100ms"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env(),
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "query" and first["outcome"] == "timeout"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    summary = json.loads(out.decode().splitlines()[-1])
    assert summary["event"] == "summary" and summary["interrupted"] is True
    assert summary["rows"][0]["sent"] >= 1 and b"Traceback" not in err
