"""A mesh of three monitors on loopback, scraped by a real Prometheus with the generated config.

Hosts a, b, c are 127.0.0.1, .2 and .3: each runs an echo reflector and a monitor whose config
is the mesh file's document for that host (``mesh_config.monitor_document``: what
``netkit monitor --mesh`` runs). ``netkit mesh prometheus --write`` gives Prometheus its config
and rules; ``netkit mesh matrix`` reads the six pairs back through the HTTP API and from the
monitors' /metrics.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support

from netkit.core.mesh_config import monitor_document, parse_mesh

HOSTS = {"a": "127.0.0.1", "b": "127.0.0.2", "c": "127.0.0.3"}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def to_toml(doc: dict[str, Any]) -> str:
    """The monitor document as TOML (top-level keys, then each [[targets]] table)."""
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items() if k != "targets"]
    for target in doc.get("targets", []):
        lines += ["", "[[targets]]", *(f"{k} = {toml_value(v)}" for k, v in target.items())]
    return "\n".join(lines) + "\n"


def port_free_everywhere(kind: int) -> int:
    """A port free on all three addresses (a reflector or monitor binds each on its own)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as first:
            first.bind((HOSTS["a"], 0))
            port = first.getsockname()[1]
            try:
                for address in list(HOSTS.values())[1:]:
                    with socket.socket(socket.AF_INET, kind) as other:
                        other.bind((address, port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free on 127.0.0.1-3")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def running_mesh(tmp_path: Path) -> Iterator[Path]:
    """Reflectors and monitors of mesh "lab" on 127.0.0.1-3; yields the mesh file."""
    reflector_port = port_free_everywhere(socket.SOCK_DGRAM)
    metrics_port = port_free_everywhere(socket.SOCK_STREAM)
    mesh_file = tmp_path / "mesh.toml"
    mesh_file.write_text(
        f'name = "lab"\ninterval = "500ms"\ntimeout = "100ms"\npackets = 2\npacket_interval = "20ms"\n'
        f"metrics_port = {metrics_port}\nreflector_port = {reflector_port}\n"
        + "".join(f'\n[[hosts]]\nname = "{n}"\naddress = "{a}"\nlabels = {{ site = "site-{n}" }}\n'
                  for n, a in HOSTS.items())
        + '\n[[probes]]\nmethod = "udp"\n')
    mesh = parse_mesh(mesh_file.read_text())
    servers: list[support.Server] = []
    try:
        for name, address in HOSTS.items():
            servers.append(support.start_netkit_server("serve", "udp", "--mode", "echo", "--host", address,
                                                       "--port", str(reflector_port), "-q"))
            config = tmp_path / f"monitor-{name}.toml"
            config.write_text(to_toml(monitor_document(mesh, name)))
            servers.append(support.start_netkit_server("monitor", "--config", str(config), "--format", "jsonl"))
        yield mesh_file
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.proc.kill()
            server.proc.communicate(timeout=10)


def metrics_urls(mesh_file: Path) -> list[str]:
    mesh = parse_mesh(mesh_file.read_text())
    return [f"http://{mesh.metrics_address(h)}/metrics" for h in mesh.hosts]


def test_matrix_from_monitors_metrics(running_mesh: Path) -> None:
    """Without Prometheus: the six pairs, read from the three monitors' /metrics."""
    def six_answered() -> list[dict[str, Any]] | None:
        res = support.run_netkit(["--format", "json", "mesh", "matrix", "--metrics", *metrics_urls(running_mesh)],
                                 timeout=20)
        if res.exit_code != 0:
            return None
        pairs = res.json()
        return pairs if len(pairs) == 6 and all(p["rtt_samples"] > 0 for p in pairs) else None

    pairs = support.wait_until(six_answered, timeout=10, interval=0.2)
    assert pairs, "the monitors' /metrics never showed six answered pairs"
    assert {(p["source"], p["target"]) for p in pairs} == {(s, t) for s in HOSTS for t in HOSTS if s != t}
    for p in pairs:
        assert (p["mesh"], p["method"], p["window_s"]) == ("lab", "udp", None)
        assert p["lost"] == 0 and p["loss_pct"] == 0.0 and p["sent"] >= 2
        assert 0 < p["rtt_mean_ms"] < 100
    table = support.run_netkit(["mesh", "matrix", "--metrics", *metrics_urls(running_mesh)], timeout=20)
    assert table.exit_code == 0, table.stderr
    assert "0.0 %" in table.stdout and " ms" in table.stdout


def test_prometheus_scrapes_the_mesh_with_the_generated_config(running_mesh: Path, tmp_path: Path) -> None:
    prometheus = support.require_tool("prometheus")
    promdir = tmp_path / "prometheus"
    written = support.run_netkit(["mesh", "prometheus", str(running_mesh), "--write", str(promdir),
                                  "--scrape-interval", "500ms", "--window", "1m"])
    assert written.exit_code == 0, written.stderr
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        prom = subprocess.Popen(
            [prometheus, f"--config.file={promdir / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=support.clean_env())
    url = f"http://127.0.0.1:{port}"
    try:
        def six_pairs() -> support.CliResult | None:
            if prom.poll() is not None:
                raise AssertionError("prometheus exited:\n" + log_path.read_text()[-2000:])
            res = support.run_netkit(["--format", "json", "mesh", "matrix", "--prometheus", url, "--window", "1m",
                                      "--max-loss", "0"], timeout=20)
            if res.exit_code != 0:
                return None
            pairs = res.json()
            return res if len(pairs) == 6 and all(p["rtt_samples"] > 0 for p in pairs) else None

        res = support.wait_until(six_pairs, timeout=20, interval=0.3)
        assert res, "Prometheus never gave six measured pairs:\n" + log_path.read_text()[-2000:]
        pairs = res.json()
        assert {(p["source"], p["target"]) for p in pairs} == {(s, t) for s in HOSTS for t in HOSTS if s != t}
        for p in pairs:
            assert (p["mesh"], p["method"], p["window_s"]) == ("lab", "udp", 60.0)
            assert p["loss_pct"] == 0.0 and p["sent"] > 0
            assert 0 < p["rtt_mean_ms"] < 100
        table = support.run_netkit(["mesh", "matrix", "--prometheus", url, "--window", "1m"], timeout=20)
        assert table.exit_code == 0, table.stderr
        assert "mesh lab, udp probes" in table.stdout and "0.0 %" in table.stdout
        # The scrape's per-host label arrived (the host's own, from the mesh file) and the monitors'
        # source label kept its name: no exported_source.
        with urllib.request.urlopen(f"{url}/api/v1/query?query=netkit_probe_success", timeout=5) as answer:
            doc = json.loads(answer.read())
        labels = [r["metric"] for r in doc["data"]["result"]]
        assert labels and all(m["site"] == f"site-{m['source']}" and "exported_source" not in m for m in labels)
    finally:
        prom.send_signal(signal.SIGTERM)
        try:
            prom.wait(timeout=10)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait(timeout=10)
