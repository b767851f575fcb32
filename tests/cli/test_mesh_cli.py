"""``netkit mesh prometheus`` and ``netkit mesh matrix``: files promtool accepts, alerts that fire for
the right pair, the matrix from a stand-in Prometheus, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import support

MESH = """
name = "lab"
interval = "1s"
timeout = "200ms"

[[hosts]]
name = "a"
address = "198.18.0.1"
labels = { site = "fra" }

[[hosts]]
name = "b"
address = "198.18.0.2"

[[probes]]
method = "udp"

[[probes]]
method = "trace"
interval = "30s"
"""


@pytest.fixture
def mesh_file(tmp_path: Path) -> Path:
    path = tmp_path / "mesh.toml"
    path.write_text(MESH)
    return path


def test_written_config_and_rules_pass_promtool(mesh_file: Path, tmp_path: Path) -> None:
    promtool = support.require_tool("promtool")
    res = support.invoke(["mesh", "prometheus", str(mesh_file), "--write", str(tmp_path / "out")])
    assert res.exit_code == 0, res.stderr
    check = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path / "out",
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout  # 2 records, 5 alerts (a trace probe: the path's too)
    printed = support.invoke(["mesh", "prometheus", str(mesh_file)])
    assert printed.stdout == (tmp_path / "out" / "prometheus.yml").read_text()
    rules = support.invoke(["mesh", "prometheus", str(mesh_file), "--rules"])
    assert rules.stdout == (tmp_path / "out" / "netkit-mesh-rules.yml").read_text()
    rules_path = tmp_path / "rules.yml"
    rules_path.write_text(rules.stdout)
    check = subprocess.run([promtool, "check", "rules", str(rules_path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def series(metric: str, source: str, target: str, values: str) -> str:
    labels = f'mesh="lab",source="{source}",target="{target}",method="udp",instance="x:9464",job="netkit_mesh_lab"'
    return f"      - series: '{metric}{{{labels}}}'\n        values: '{values}'\n"


def test_loss_alert_fires_for_the_lossy_pair_only(mesh_file: Path, tmp_path: Path) -> None:
    """promtool test rules: a->b loses 20 % of its packets, b->a none; only a->b alerts."""
    promtool = support.require_tool("promtool")
    res = support.invoke(["mesh", "prometheus", str(mesh_file), "--rules", "--max-loss", "5"])
    assert res.exit_code == 0, res.stderr
    (tmp_path / "rules.yml").write_text(res.stdout)
    summary = "a to b (udp, mesh lab): 20.0 % of packets lost over 5m"
    description = ("More than 5 % of the probes from source to target went unanswered over the last 5m, "
                   "for 2m30s on end.")
    (tmp_path / "test.yml").write_text(
        "rule_files: [rules.yml]\nevaluation_interval: 15s\ntests:\n  - interval: 15s\n    input_series:\n"
        + series("netkit_packets_sent_total", "a", "b", "0+15x60")
        + series("netkit_packets_lost_total", "a", "b", "0+3x60")
        + series("netkit_packets_sent_total", "b", "a", "0+15x60")
        + series("netkit_packets_lost_total", "b", "a", "0+0x60")
        + "    alert_rule_test:\n"
        + "      - eval_time: 2m\n        alertname: NetkitMeshLoss\n        exp_alerts: []\n"  # not yet held
        + "      - eval_time: 10m\n        alertname: NetkitMeshLoss\n        exp_alerts:\n"
        + "          - exp_labels: {severity: warning, mesh: lab, source: a, target: b, method: udp}\n"
        + f"            exp_annotations:\n              summary: {json.dumps(summary)}\n"
        + f"              description: {json.dumps(description)}\n")
    check = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def test_prometheus_bad_input_exits_2(mesh_file: Path, tmp_path: Path) -> None:
    missing = support.invoke(["mesh", "prometheus", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and missing.stderr.startswith("netkit: ") and "no such file" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[hosts]]\nname = "a"\naddress = "198.18.0.1"\n')
    res = support.invoke(["mesh", "prometheus", str(bad)])
    assert res.exit_code == 2 and "bad.toml: hosts: a mesh needs at least two hosts" in res.stderr
    res = support.invoke(["mesh", "prometheus", str(mesh_file), "--rules", "--window", "5s"])
    assert res.exit_code == 2 and "--window: 5s holds fewer than two scrapes" in res.stderr


# ----- the matrix, from a stand-in Prometheus ---------------------------------------------------------
def fake_answers(hosts: list[str], lossy: tuple[str, str] | None = None) -> Callable[[str], list[dict]]:
    """Prometheus' samples for each of netkit mesh matrix's queries: every pair sends 100, one loses 30."""
    def pair_samples(value: Callable[[str, str], float]) -> list[dict]:
        return [{"metric": {"mesh": "lab", "source": s, "target": t, "method": "udp"}, "value": [0, str(value(s, t))]}
                for s in hosts for t in hosts if s != t]

    def answer(query: str) -> list[dict]:
        if query.startswith("count by"):
            return [{"metric": {"mesh": "lab", "method": "udp"}, "value": [0, "1"]}]
        if "netkit_packets_sent_total" in query:
            return pair_samples(lambda s, t: 100.0)
        if "netkit_packets_lost_total" in query:
            return pair_samples(lambda s, t: 30.0 if (s, t) == lossy else 0.0)
        if "netkit_rtt_seconds_sum" in query:
            return pair_samples(lambda s, t: 0.0125 * (70.0 if (s, t) == lossy else 100.0))
        if "netkit_rtt_seconds_count" in query:
            return pair_samples(lambda s, t: 70.0 if (s, t) == lossy else 100.0)
        if "netkit_probe_success" in query:
            return pair_samples(lambda s, t: 1.0)
        raise AssertionError(query)
    return answer


@pytest.fixture
def fake_prometheus() -> Iterator[Callable[[Callable[[str], list[dict]]], str]]:
    """A loopback HTTP server answering /api/v1/query from a function of the query; yields a starter."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[str], list[dict]]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/api/v1/query":
                    self.send_error(404)
                    return
                query = urllib.parse.parse_qs(url.query)["query"][0]
                body = json.dumps({"status": "success", "data": {"resultType": "vector",
                                                                 "result": answer(query)}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_matrix_table_json_csv_and_max_loss(fake_prometheus: Callable[..., str]) -> None:
    url = fake_prometheus(fake_answers(["a", "b", "c"], lossy=("b", "c")))
    table = support.invoke(["mesh", "matrix", "--prometheus", url])
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "mesh lab, udp probes: loss and mean RTT over the last 5m00s (Prometheus)"
    assert max(len(line) for line in lines) <= 80
    assert re.search(r"^b\s+0\.0 %\s+·\s+30\.0 %$", table.stdout, re.M), table.stdout
    assert re.search(r"^\s+12\.5 ms\s+12\.5 ms$", table.stdout, re.M), table.stdout

    as_json = support.invoke(["--format", "json", "mesh", "matrix", "--prometheus", url, "--window", "1h"])
    pairs = as_json.json()
    assert len(pairs) == 6
    bc = next(p for p in pairs if (p["source"], p["target"]) == ("b", "c"))
    assert bc == {"mesh": "lab", "source": "b", "target": "c", "method": "udp", "window_s": 3600.0, "sent": 100,
                  "lost": 30, "loss_pct": 30.0, "rtt_mean_ms": 12.5, "rtt_samples": 70, "reachable": True}
    csv = support.invoke(["--format", "csv", "mesh", "matrix", "--prometheus", url])
    assert csv.stdout.splitlines()[0] == ("mesh,source,target,method,window_s,sent,lost,loss_pct,rtt_mean_ms,"
                                          "rtt_samples,reachable")
    assert len(csv.stdout.splitlines()) == 7

    over = support.invoke(["mesh", "matrix", "--prometheus", url, "--max-loss", "10"])
    assert over.exit_code == 1
    assert over.stderr == "netkit: 1 of 6 pairs lose more than 10 % or are unreachable: b->c 30.0 %\n"
    assert support.invoke(["mesh", "matrix", "--prometheus", url, "--max-loss", "30"]).exit_code == 0


def test_a_wide_mesh_is_one_row_per_pair_worst_first(fake_prometheus: Callable[..., str]) -> None:
    hosts = [f"host-{n:02d}" for n in range(10)]
    url = fake_prometheus(fake_answers(hosts, lossy=("host-07", "host-03")))
    res = support.invoke(["mesh", "matrix", "--prometheus", url])
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "10 hosts: too wide for a matrix, one row per pair, worst first" in lines[1]
    assert max(len(line) for line in lines) <= 80
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["source", "target"])
    assert lines[header + 1].split() == ["host-07", "host-03", "30.0", "%", "30", "100", "12.5", "ms"]
    assert len(lines) == header + 1 + 90


def test_matrix_exit_codes(fake_prometheus: Callable[..., str], tmp_path: Path) -> None:
    neither = support.invoke(["mesh", "matrix"])
    assert neither.exit_code == 2 and "give --prometheus URL or --metrics URL" in neither.stderr
    scheme = support.invoke(["mesh", "matrix", "--prometheus", "ftp://127.0.0.1/"])
    assert scheme.exit_code == 2 and "expected an http:// or https:// URL" in scheme.stderr
    closed = support.free_tcp_port()
    refused = support.invoke(["mesh", "matrix", "--prometheus", f"http://127.0.0.1:{closed}"])
    assert refused.exit_code == 3
    assert refused.stderr == f"netkit: cannot reach http://127.0.0.1:{closed}: Connection refused\n"
    empty = fake_prometheus(lambda query: [])
    nothing = support.invoke(["mesh", "matrix", "--prometheus", empty])
    assert nothing.exit_code == 3 and "no netkit mesh series" in nothing.stderr
    wrong_method = support.invoke(["mesh", "matrix", "--prometheus", fake_prometheus(fake_answers(["a", "b"])),
                                   "--method", "icmp"])
    assert wrong_method.exit_code == 2 and "has no such probe (it has: udp)" in wrong_method.stderr


def test_matrix_on_an_80_column_terminal(fake_prometheus: Callable[..., str]) -> None:
    """On a terminal: 3 hosts as a matrix, 10 as a list of pairs; no line wider than the screen."""
    for hosts, expected in ((["a", "b", "c"], "rows: source, columns: target"),
                            ([f"host-{n:02d}" for n in range(10)], "10 hosts: too wide for a matrix")):
        url = fake_prometheus(fake_answers(hosts, lossy=(hosts[1], hosts[0])))
        code, screen, _ = support.netkit_on_a_terminal("mesh", "matrix", "--prometheus", url, columns=80)
        assert code == 0, screen
        lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "").splitlines()
        assert expected in screen and max(len(line) for line in lines) <= 80, screen


def rtt_series(source: str, target: str, before_ms: float, after_ms: float) -> str:
    """60 minutes at ``before_ms``, then 30 at ``after_ms``: 15 answers every 15 s."""
    step_before, step_after = 15 * before_ms / 1000, 15 * after_ms / 1000
    at_switch = 240 * step_before
    return (series("netkit_rtt_seconds_count", source, target, "0+15x360")
            + series("netkit_rtt_seconds_sum", source, target,
                     f"0+{step_before:g}x240 {at_switch + step_after:g}+{step_after:g}x119"))


def test_rtt_alert_needs_both_the_baseline_factor_and_the_floor(mesh_file: Path, tmp_path: Path) -> None:
    """a->b goes from 1 ms to 10 ms: alert. b->a goes from 50 us to 500 us, ten times too, but stays
    under the 5 ms floor: no alert."""
    promtool = support.require_tool("promtool")
    res = support.invoke(["mesh", "prometheus", str(mesh_file), "--rules"])
    assert res.exit_code == 0, res.stderr
    (tmp_path / "rules.yml").write_text(res.stdout)
    summary = "a to b (udp, mesh lab): mean RTT 10ms over 5m, above 2x its 1d mean"
    description = ("The mean round-trip time over 5m is above 2 times its mean over the last 1d and above 5 ms: "
                   "the floor keeps paths of microseconds (loopback, a LAN), whose RTT doubles on any scheduling "
                   "hiccup, from alerting.")
    (tmp_path / "test.yml").write_text(
        "rule_files: [rules.yml]\nevaluation_interval: 15s\ntests:\n  - interval: 15s\n    input_series:\n"
        + rtt_series("a", "b", 1.0, 10.0) + rtt_series("b", "a", 0.05, 0.5)
        + "    alert_rule_test:\n"
        + "      - eval_time: 55m\n        alertname: NetkitMeshRttAboveBaseline\n        exp_alerts: []\n"
        + "      - eval_time: 90m\n        alertname: NetkitMeshRttAboveBaseline\n        exp_alerts:\n"
        + "          - exp_labels: {severity: warning, mesh: lab, source: a, target: b, method: udp}\n"
        + f"            exp_annotations:\n              summary: {json.dumps(summary)}\n"
        + f"              description: {json.dumps(description)}\n")
    check = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
