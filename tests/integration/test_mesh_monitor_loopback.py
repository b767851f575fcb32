"""``netkit monitor --mesh`` on loopback: hosts 127.0.0.1-3, each with a keyed reflector and a monitor.

Loopback holds every 127/8 address, so one mesh file with one metrics port and one reflector port
serves three hosts on one machine, as it would on three.
"""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import support
from prometheus_client.parser import text_string_to_metric_families

KEY = "loopback-mesh-secret-4f1c"


def mesh_text(hosts: dict[str, str], *, metrics_port: int, reflector_port: int, extra: str = "") -> str:
    lines = ['name = "loop"', f"metrics_port = {metrics_port}", f"reflector_port = {reflector_port}",
             'key_file = "mesh.key"', extra]
    for name, address in hosts.items():
        lines += ["[[hosts]]", f'name = "{name}"', f'address = "{address}"']
    return "\n".join(lines) + "\n"


@contextmanager
def started(*commands: tuple[str, ...]) -> Iterator[list[support.Server]]:
    """Start netkit processes side by side (each waits for its "listening on" line); kill them after."""
    with ExitStack() as stack, ThreadPoolExecutor(len(commands)) as pool:
        futures = [pool.submit(support.start_netkit_server, *cmd) for cmd in commands]
        servers = []
        for f in futures:
            server = f.result()
            stack.callback(_kill, server)
            servers.append(server)
        yield servers


def _kill(server: support.Server) -> None:
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.communicate(timeout=10)


def reflector(address: str, port: int, key_file: Path) -> tuple[str, ...]:
    return ("--format", "json", "serve", "udp", "--mode", "echo", "--host", address, "--port", str(port),
            "--key-file", str(key_file))


def scrape(address: str) -> tuple[str, list[tuple[str, dict[str, str], float]]]:
    """/metrics text and its samples (name, labels, value), through prometheus_client's parser."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]
    return text, samples


def pair_values(samples: list[tuple[str, dict[str, str], float]], name: str) -> dict[tuple[str, str], float]:
    return {(labels["source"], labels["target"]): value for n, labels, value in samples if n == name}


def rounds_done(address: str, n: int) -> list[tuple[str, dict[str, str], float]] | None:
    _text, samples = scrape(address)
    rounds = pair_values(samples, "netkit_monitor_rounds_total")
    return samples if rounds and all(v >= n for v in rounds.values()) else None


def test_three_host_mesh_measures_six_pairs_and_a_sighup_removes_a_host(tmp_path: Path) -> None:
    (tmp_path / "mesh.key").write_text(KEY + "\n")
    metrics_port = support.free_tcp_port("0.0.0.0")  # free on every loopback address
    reflector_port = support.free_tcp_port("0.0.0.0")
    hosts = {"a": "127.0.0.1", "b": "127.0.0.2", "c": "127.0.0.3"}
    mesh = tmp_path / "mesh.toml"
    # a long timeout within the 0.5 s rounds: a busy test machine delays, it does not lose
    slack = 'timeout = "300ms"\npacket_interval = "20ms"'
    mesh.write_text(mesh_text(hosts, metrics_port=metrics_port, reflector_port=reflector_port, extra=slack))

    with started(*(reflector(addr, reflector_port, tmp_path / "mesh.key") for addr in hosts.values())), \
            started(*(("monitor", "--mesh", str(mesh), "--self", name, "--interval", "0.5s") for name in hosts)) \
            as monitors:
        where = {name: f"{addr}:{metrics_port}" for name, addr in hosts.items()}
        assert [m.host for m in monitors] == list(hosts.values())  # each on its own address, the mesh's port
        pairs: dict[str, dict[tuple[str, str], float]] = {}
        for name in hosts:
            samples = support.wait_until(lambda n=name: rounds_done(where[n], 2), timeout=10, interval=0.1)
            # every series the monitor exports carries its source and the mesh
            assert all(labels.get("source") == name and labels.get("mesh") == "loop" for _n, labels, _v in samples)
            for metric in ("netkit_packets_sent_total", "netkit_packets_lost_total", "netkit_probe_success",
                           "netkit_monitor_rounds_total", "netkit_probe_attempts_total"):
                pairs.setdefault(metric, {}).update(pair_values(samples, metric))
        six = {(s, t) for s in hosts for t in hosts if s != t}
        assert set(pairs["netkit_packets_sent_total"]) == six
        for pair in six:
            rounds = pairs["netkit_monitor_rounds_total"][pair]
            assert pairs["netkit_probe_success"][pair] == 1.0, pair
            assert pairs["netkit_packets_lost_total"][pair] == 0, pair
            # a keyed udp round is its latency packets (3, fewer if a busy machine made it start
            # late), one attempt: no unsigned reachability packet
            assert 0 < pairs["netkit_packets_sent_total"][pair] <= 3 * rounds, pair
            assert pairs["netkit_probe_attempts_total"][pair] == rounds, pair

        # c leaves the mesh: an edit and SIGHUP to the others
        mesh.write_text(mesh_text({"a": hosts["a"], "b": hosts["b"]}, metrics_port=metrics_port,
                                  reflector_port=reflector_port, extra=slack))
        for m in monitors:
            m.proc.send_signal(signal.SIGHUP)  # c's own reload fails: it is no longer in the file

        def reloaded(name: str, targets: set[str], gauge: float) -> bool:
            _text, samples = scrape(where[name])
            last_reload = [v for n, _l, v in samples if n == "netkit_monitor_config_last_reload_successful"]
            now = {labels["target"] for n, labels, _v in samples if n == "netkit_packets_sent_total"}
            return last_reload == [gauge] and now == targets

        support.wait_until(lambda: reloaded("a", {"b"}, 1.0), timeout=5, interval=0.05)
        support.wait_until(lambda: reloaded("b", {"a"}, 1.0), timeout=5, interval=0.05)
        support.wait_until(lambda: reloaded("c", {"a", "b"}, 0.0), timeout=5, interval=0.05)
        text, _samples = scrape(where["a"])
        assert KEY not in text

        stopped = [m.stop(signal.SIGTERM) for m in monitors]
    for code, out, err in stopped:
        assert code == 0, err
        assert "Traceback" not in err and KEY not in err and KEY not in out
    assert "reloaded: 1 target (0 added, 1 removed)" in stopped[0][2]
    assert f"reload failed, keeping the previous config: {mesh}: --self 'c' is not a host of mesh 'loop' " \
           "(hosts: a, b)" in stopped[2][2]


def test_every_packet_counted_and_a_wrong_key_is_total_loss(tmp_path: Path) -> None:
    (tmp_path / "mesh.key").write_text(KEY + "\n")
    (tmp_path / "other.key").write_text("not-the-mesh-key\n")
    metrics_port = support.free_tcp_port("0.0.0.0")
    reflector_port = support.free_tcp_port("0.0.0.0")
    mesh = tmp_path / "mesh.toml"
    mesh.write_text(mesh_text({"x": "127.0.0.4", "y": "127.0.0.5", "z": "127.0.0.6"}, metrics_port=metrics_port,
                              reflector_port=reflector_port,
                              extra='interval = "0.3s"\ntimeout = "200ms"\npacket_interval = "20ms"'))
    with started(reflector("127.0.0.5", reflector_port, tmp_path / "mesh.key"),
                 reflector("127.0.0.6", reflector_port, tmp_path / "other.key")) as (keyed, wrong):
        run = support.run_netkit(["--format", "json", "monitor", "--mesh", str(mesh), "--self", "x", "--rounds", "3"],
                                 timeout=30)
        y_stats = json.loads(keyed.stop()[1])
        z_stats = json.loads(wrong.stop()[1])
    assert run.exit_code == 1, run.stderr  # z failed its last round
    totals = {t["target"]: t for t in run.json()["targets"]}
    y, z = totals["y"], totals["z"]
    assert (y["rounds"], y["lost"], y["success"]) == (3, 0, True)
    assert (z["rounds"], z["lost"], z["success"], z["loss_pct"]) == (3, z["sent"], False, 100.0)
    assert 3 <= y["sent"] <= 9 and 3 <= z["sent"] <= 9  # 3 per round (a late-starting round sends fewer)
    # what the reflectors saw is exactly what the monitor counted: no uncounted packet
    assert (y_stats["datagrams"], y_stats["datagrams_out"]) == (y["sent"], y["sent"])
    assert (z_stats["datagrams"], z_stats["datagrams_out"], z_stats["reflector"]["rejected_by_key"]) == (
        z["sent"], 0, z["sent"])
    assert KEY not in run.stdout + run.stderr


def test_mesh_usage_errors_exit_2(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.toml"
    mesh.write_text(mesh_text({"a": "127.0.0.1", "b": "127.0.0.2"}, metrics_port=9464, reflector_port=8000))
    res = support.invoke(["monitor", "--mesh", str(mesh), "--self", "nosuch"])
    assert res.exit_code == 2
    assert res.stderr == f"netkit: {mesh}: --self 'nosuch' is not a host of mesh 'loop' (hosts: a, b)\n"
    res = support.invoke(["monitor", "--mesh", str(mesh), "--self", "a", "--config", str(mesh)])
    assert res.exit_code == 2 and "give either --mesh or --config, not both" in res.stderr
    res = support.invoke(["monitor", "--mesh", str(mesh), "--self", "a", "127.0.0.1:22"])
    assert res.exit_code == 2 and "give no TARGET arguments" in res.stderr
    res = support.invoke(["monitor", "--mesh", str(mesh)])
    assert res.exit_code == 2 and "--mesh needs --self NAME" in res.stderr
    mesh.write_text(mesh.read_text().replace('key_file = "mesh.key"', 'key_file = "absent.key"'))
    res = support.invoke(["monitor", "--mesh", str(mesh), "--self", "a"])
    assert res.exit_code == 2
    assert res.stderr == f"netkit: {mesh}: key_file: cannot read {tmp_path}/absent.key: No such file or directory\n"


def test_rounds_share_one_session(tmp_path: Path) -> None:
    """A reflector remembers each session for minutes: the monitor's rounds go on in one session
    (a minute long) rather than a new one per round, so a reflector serving one session at a time
    answers every round, and a mesh of hundreds of hosts stays far inside its session table."""
    (tmp_path / "mesh.key").write_text(KEY + "\n")
    metrics_port = support.free_tcp_port("0.0.0.0")
    reflector_port = support.free_tcp_port("0.0.0.0")
    mesh = tmp_path / "mesh.toml"
    mesh.write_text(mesh_text({"x": "127.0.0.7", "y": "127.0.0.8"}, metrics_port=metrics_port,
                              reflector_port=reflector_port,
                              extra='interval = "0.3s"\ntimeout = "200ms"\npacket_interval = "20ms"'))
    with started((*reflector("127.0.0.8", reflector_port, tmp_path / "mesh.key"), "--max-sessions", "1")) as (y,):
        run = support.run_netkit(["--format", "json", "monitor", "--mesh", str(mesh), "--self", "x", "--rounds", "4"],
                                 timeout=30)
        stats = json.loads(y.stop()[1])
    assert run.exit_code == 0, run.stderr
    total = {t["target"]: t for t in run.json()["targets"]}["y"]
    assert (total["rounds"], total["lost"], total["success"]) == (4, 0, True), total
    assert stats["datagrams_out"] == total["sent"], stats


def test_udp_sessions_renew_after_a_minute_and_reserve_numbers() -> None:
    from netkit.core.monitor_models import MonitorMethod
    from netkit.io.measure.monitor import SESSION_REUSE_NS, UdpSessions

    book, key = UdpSessions(), ("y", MonitorMethod.UDP)
    first = book.take(key, 5, 0, keyed=True)
    second = book.take(key, 5, SESSION_REUSE_NS - 1, keyed=True)
    assert (second.session, first.next_seq, second.next_seq) == (first.session, 0, 5)
    renewed = book.take(key, 5, SESSION_REUSE_NS, keyed=True)
    assert renewed.session != first.session and renewed.next_seq == 0
    book.keep_only(set())
    assert book.take(key, 5, SESSION_REUSE_NS + 1, keyed=True).session != renewed.session
