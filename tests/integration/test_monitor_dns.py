"""``netkit monitor`` with ``dns`` targets against dnsmasq on loopback: /metrics carries
blackbox_exporter's dns names (``probe_dns_lookup_time_seconds``, ``probe_dns_answer_rrs``,
``probe_dns_query_succeeded``) and netkit's own; a failed check is a ``mismatch`` round; a real
Prometheus reads the lookup time back; a bad dns config is exit 2 naming the key."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns_peers
import pytest
import support
from prometheus_client.parser import text_string_to_metric_families

from netkit.io.tls import server_context


@pytest.fixture(scope="module")
def server() -> Iterator[dns_peers.Dnsmasq]:
    try:
        with dns_peers.dnsmasq() as d:
            yield d
    except dns_peers.DnsmasqUnavailable as e:
        pytest.skip(str(e))


def config(server: dns_peers.Dnsmasq, silent_port: int, dot_port: int, cafile: str) -> str:
    return f"""
interval = "500ms"
timeout = "300ms"
listen = "127.0.0.1:0"

[[targets]]
name = "a"
target = "{server.server}"
method = "dns"
query_name = "a.test"
expect = "198\\\\.18\\\\.0\\\\.7"

[[targets]]
name = "big"
target = "{server.server}"
method = "dns"
query_name = "big.test"
query_type = "TXT"

[[targets]]
name = "nx"
target = "{server.server}"
method = "dns"
query_name = "nx.test"

[[targets]]
name = "dot"
target = "127.0.0.1:{dot_port}"
method = "dns"
query_name = "m.test"
query_type = "MX"
transport = "tls"
cafile = "{cafile}"
tls_name = "localhost"
expect = "10 mail\\\\.m\\\\.test\\\\.$"

[[targets]]
name = "silent"
target = "127.0.0.1:{silent_port}"
method = "dns"
query_name = "a.test"
"""


def scrape(address: str) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + (f"{{rcode={s.labels['rcode']}}}" if "rcode" in s.labels else "")
            out[(key, s.labels.get("target", ""))] = s.value
    return out


def test_monitor_dns_metrics_and_prometheus(server: dns_peers.Dnsmasq, tmp_path: Path) -> None:
    cert = tmp_path / "ca.pem"
    tls = server_context(keep_cert_at=cert)
    with support.udp_peer(lambda _q: None) as silent, \
            support.tcp_peer(dns_peers.dot_relay(tls.context, server.port)) as dot:
        path = tmp_path / "monitor.toml"
        path.write_text(config(server, silent, dot, str(cert)))
        monitor = support.start_netkit_server("--format", "jsonl", "monitor", "--config", str(path))
        prom: subprocess.Popen[bytes] | None = None
        try:
            values = support.wait_until(
                lambda: (lambda v: v if v.get(("netkit_monitor_rounds_total", "silent"), 0) >= 2 else None)(
                    scrape(monitor.addr)), timeout=10, interval=0.1)
            assert values[("probe_dns_query_succeeded", "a")] == 1
            assert values[("netkit_probe_success", "a")] == 1
            assert values[("probe_dns_answer_rrs", "a")] == 1
            assert 0 < values[("probe_dns_lookup_time_seconds", "a")] < 0.3
            assert values[("netkit_dns_rcode{rcode=NOERROR}", "a")] == 1
            assert values[("netkit_dns_truncated_total", "big")] >= 2
            assert values[("netkit_probe_success", "dot")] == 1 and values[("probe_dns_answer_rrs", "dot")] == 1
            assert values[("probe_dns_query_succeeded", "big")] == 1
            assert values[("probe_dns_query_succeeded", "nx")] == 1  # answered...
            assert values[("netkit_probe_success", "nx")] == 0  # ...but the rcode check failed
            assert values[("netkit_dns_rcode{rcode=NXDOMAIN}", "nx")] == 1
            assert values[("netkit_dns_check_failed_total", "nx")] >= 2
            assert values[("probe_dns_query_succeeded", "silent")] == 0
            assert ("probe_dns_lookup_time_seconds", "silent") not in values
            assert values[("netkit_packets_lost_total", "silent")] >= 2

            prometheus = support.require_tool("prometheus")
            cfg = tmp_path / "prometheus.yml"
            cfg.write_text("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: netkit\n"
                           "    scrape_interval: 1s\n    scrape_timeout: 900ms\n"
                           f"    static_configs:\n      - targets: ['{monitor.addr}']\n")
            port = dns_peers.free_port()
            prom = subprocess.Popen([prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                     f"--web.listen-address=127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=support.clean_env())
            api = f"http://127.0.0.1:{port}/api/v1/query?query="

            def read_back() -> dict[str, float] | None:
                try:
                    with urllib.request.urlopen(api + urllib.parse.quote("probe_dns_lookup_time_seconds"),
                                                timeout=2) as resp:
                        doc = json.loads(resp.read().decode())
                except (OSError, ValueError):
                    return None
                got = {r["metric"]["target"]: float(r["value"][1]) for r in doc["data"]["result"]}
                return got if {"a", "big", "nx"} <= set(got) else None

            got = support.wait_until(read_back, timeout=20, interval=0.2)
            assert all(0 < v < 0.3 for v in got.values())
            assert "silent" not in got
        finally:
            if prom is not None:
                prom.terminate()
                prom.wait(10)
            _code, out, _err = monitor.stop()
    rounds = [json.loads(line) for line in out.splitlines() if line.startswith('{"event": "round"')]
    nx = [t for r in rounds for t in r["targets"] if t["target"] == "nx"]
    assert nx and nx[0]["state"] == "mismatch" and nx[0]["error"] == "rcode NXDOMAIN (expected NOERROR)"
    assert nx[0]["dns"] == {"rcode": "NXDOMAIN", "answer_rrs": 0, "truncated": False,
                            "check_failed": "rcode NXDOMAIN (expected NOERROR)"}


@pytest.mark.parametrize(("extra", "message"), [
    ('method = "dns"', "targets[0].query_name: a dns target needs query_name"),
    ('method = "dns"\nquery_name = "a.test"\nquery_type = "BOGUS"', "targets[0].query_type: one of A, AAAA"),
    ('method = "dns"\nquery_name = "a.test"\nexpect = "("', "targets[0].expect: not a regular expression"),
    ('method = "tcp-connect"\nquery_name = "a.test"', "targets[0].query_name: applies to method dns only"),
    ('method = "dns"\nquery_name = "a.test"\ncafile = "x.pem"', 'targets[0].cafile: applies to transport = "tls"'),
])
def test_bad_dns_config_is_exit_2_naming_the_key(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(f'[[targets]]\ntarget = "127.0.0.1:53"\n{extra}\n')
    res = support.invoke(["monitor", "--config", str(path), "--rounds", "1"])
    assert res.exit_code == 2 and message in res.stderr, res.stderr
