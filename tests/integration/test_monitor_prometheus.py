"""A real Prometheus server scrapes ``netkit monitor`` on loopback; we read the values back through its API.

Needs Debian's ``prometheus`` package (``.ci/run`` installs it). The test runs the binary itself
on a free loopback port with a throw-away TSDB directory; the systemd service is not involved.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import support


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read().decode())
    except (OSError, ValueError):
        return None


@pytest.fixture
def endpoints() -> Iterator[tuple[str, str]]:
    """(an open port: netkit's echo server, a closed port: bound, never listening)."""
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    try:
        with support.netkit_server("serve", "tcp", "--port", "0") as server:
            yield server.addr, f"127.0.0.1:{closed.getsockname()[1]}"
    finally:
        closed.close()


def test_prometheus_scrapes_netkit_monitor(endpoints: tuple[str, str], tmp_path: Path) -> None:
    prometheus = support.require_tool("prometheus")
    open_t, closed_t = endpoints
    monitor = support.start_netkit_server("monitor", open_t, closed_t, "--interval", "0.5s", "--timeout", "100ms",
                                          "--listen", "127.0.0.1:0")
    prom: subprocess.Popen[bytes] | None = None
    try:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: netkit\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{monitor.port}']\n"
        )
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        prom = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=support.clean_env(),
        )
        log.close()
        api = f"http://127.0.0.1:{port}/api/v1/query?query="

        def query(expr: str) -> dict[str, float] | None:
            doc = http_json(api + urllib.parse.quote(expr))
            if prom is not None and prom.poll() is not None:
                raise AssertionError("prometheus exited:\n" + (tmp_path / "prometheus.log").read_text()[-2000:])
            if not doc or doc.get("status") != "success" or not doc["data"]["result"]:
                return None
            return {r["metric"].get("target", ""): float(r["value"][1]) for r in doc["data"]["result"]}

        success = support.wait_until(lambda: (lambda v: v if v and len(v) == 2 else None)(
            query('netkit_probe_success{job="netkit"}')), timeout=20, interval=0.2)
        assert success == {open_t: 1.0, closed_t: 0.0}
        assert query('up{job="netkit"}') == {"": 1.0}
        sent = query('netkit_packets_sent_total{job="netkit"}')
        assert sent is not None and sent[open_t] >= 3 and sent[closed_t] == 0
        hist = query('netkit_rtt_seconds_count{job="netkit"}')
        assert hist is not None and hist[open_t] == sent[open_t]
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(timeout=10)
        code, _out, err = monitor.stop(signal.SIGTERM)
    assert code == 0, err


def test_readme_prometheus_config_and_alert_rules_are_valid(tmp_path: Path) -> None:
    """The sample prometheus.yml and alert rules in the README's monitor section pass promtool."""
    import re
    import textwrap

    promtool = support.require_tool("promtool")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("## `netkit monitor`")
    end = readme.find("\n## ", start + 1)
    doc = readme[start:end if end > 0 else None]
    config, rules = (textwrap.dedent(b) for b in re.findall(r"```yaml\n(.*?)```", doc, re.S))
    (tmp_path / "prometheus.yml").write_text(config)
    (tmp_path / "netkit-alerts.yml").write_text(rules)
    res = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 5 rules found" in res.stdout
