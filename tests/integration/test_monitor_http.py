"""``netkit monitor`` with http targets against nginx: the blackbox-named metrics on /metrics, read back
through prometheus_client's parser and through a real Prometheus (when installed)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import support
from prometheus_client.parser import text_string_to_metric_families

from tests.nginx_http import SLOW_S, NginxHttp, NginxUnavailable, nginx_http


@pytest.fixture(scope="module")
def srv() -> Iterator[NginxHttp]:
    try:
        with nginx_http() as s:
            yield s
    except NginxUnavailable as exc:
        pytest.skip(str(exc))


def _scrape(address: str) -> dict[tuple[str, str, str], float]:
    """``{(sample name, target, phase-or-check): value}``."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str, str], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, s.labels.get("target", ""), s.labels.get("phase", s.labels.get("check", "")))] = s.value
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_monitor_http_metrics(srv: NginxHttp, tmp_path: Path) -> None:
    slow, missing = srv.https + "/slow", srv.http + "/missing"
    config = tmp_path / "monitor.toml"
    config.write_text(
        'interval = "1s"\n'
        f'[[targets]]\nurl = "{slow}"\ninsecure = true\ntimeout = "800ms"\nexpect_body = "^ok"\nmin_cert_days = 0.5\n'
        f'[[targets]]\nurl = "{missing}"\nname = "missing"\n')
    mon = support.start_netkit_server("monitor", "--config", str(config), "--listen", "127.0.0.1:0")
    prom: subprocess.Popen[bytes] | None = None
    try:
        where = f"{mon.host}:{mon.port}"
        v = support.wait_until(
            lambda: (lambda d: d if d.get(("netkit_monitor_rounds_total", slow, ""), 0) >= 1
                     and d.get(("netkit_monitor_rounds_total", "missing", ""), 0) >= 1 else None)(_scrape(where)),
            timeout=10, interval=0.1)
        assert v[("netkit_probe_success", slow, "")] == 1.0
        assert v[("probe_http_status_code", slow, "")] == 200
        assert v[("probe_http_content_length", slow, "")] == 3
        assert v[("probe_http_version", slow, "")] == 2.0
        assert v[("probe_http_ssl", slow, "")] == 1.0
        assert SLOW_S <= v[("probe_http_duration_seconds", slow, "processing")] < SLOW_S + 0.02
        assert v[("probe_http_duration_seconds", slow, "connect")] > 0
        assert v[("probe_http_duration_seconds", slow, "tls")] > 0
        assert 0.9 * 86400 < v[("probe_ssl_earliest_cert_expiry", slow, "")] - time.time() <= 86400
        assert v[("probe_failed_due_to_regex", slow, "")] == 0
        assert v[("netkit_probe_success", "missing", "")] == 0.0
        assert v[("probe_http_status_code", "missing", "")] == 404
        assert v[("probe_http_ssl", "missing", "")] == 0.0
        assert v[("netkit_http_check_failed", "missing", "expect_status")] == 1.0
        assert v[("netkit_http_check_failed", "missing", "request")] == 0.0

        prometheus = shutil.which("prometheus")
        if prometheus is None:
            return
        pcfg = tmp_path / "prometheus.yml"
        pcfg.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n  - job_name: netkit\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n"
            f"    static_configs:\n      - targets: ['{where}']\n")
        port = _free_port()
        prom = subprocess.Popen([prometheus, f"--config.file={pcfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=support.clean_env())

        def query(expr: str) -> dict[str, float] | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query="
                                            + urllib.parse.quote(expr), timeout=2) as resp:
                    doc = json.loads(resp.read().decode())
            except (OSError, ValueError):
                return None
            res = doc.get("data", {}).get("result") if doc.get("status") == "success" else None
            return {r["metric"].get("target", ""): float(r["value"][1]) for r in res} if res else None

        codes = support.wait_until(lambda: (lambda q: q if q and len(q) == 2 else None)(
            query('probe_http_status_code{job="netkit"}')), timeout=20, interval=0.2)
        assert codes == {slow: 200.0, "missing": 404.0}
        proc = query('probe_http_duration_seconds{job="netkit",phase="processing"}')
        assert proc is not None and proc[slow] >= SLOW_S
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(timeout=10)
        code, _out, err = mon.stop(signal.SIGTERM)
    assert code == 0, err
