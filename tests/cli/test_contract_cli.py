"""The output contract, checked through real subprocesses and the CliRunner.

Exit codes, one-line errors without traceback, ``| head -1`` ending quietly, ``--version``
loading nothing heavy, NETKIT_FORMAT, the ready line and the Ctrl-C summary.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest
import support

HEAVY = ("rich", "asyncio", "psutil")


def test_version_imports_neither_rich_nor_asyncio_nor_psutil() -> None:
    code = (
        "import sys\n"
        "from netkit.cli.main import run\n"
        "rc = run(['--version'])\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print('HEAVY=' + ','.join(heavy), 'RC=' + str(rc))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                          env=support.clean_env())
    assert "netkit " in proc.stdout
    assert "HEAVY= RC=0" in proc.stdout, proc.stdout


def test_version_importtime_lists_no_heavy_module() -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "netkit", "--version"],
                          capture_output=True, text=True, timeout=30, env=support.clean_env())
    assert proc.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert not imported & set(HEAVY), imported & set(HEAVY)


@pytest.mark.parametrize("args", [
    ["--help"], ["serve", "--help"], ["serve", "tcp", "--help"], ["serve", "udp", "--help"],
    ["send", "--help"], ["send", "tcp", "--help"], ["send", "udp", "--help"], ["selftest", "--help"],
])
def test_help_everywhere(args: list[str]) -> None:
    res = support.invoke(args)
    assert res.exit_code == 0
    assert "Usage:" in res.stdout


@pytest.mark.parametrize(("args", "names"), [
    (["send", "tcp", "127.0.0.1:99999", "x"], "TARGET"),
    (["send", "tcp", "bad_host!:80", "x"], "TARGET"),
    (["send", "tcp", "127.0.0.1:80", "x", "--wait", "5parsecs"], "--wait"),
    (["send", "udp", "127.0.0.1:80", "x", "--count", "-1"], "--count"),
    (["send", "udp", "127.0.0.1:80", "x", "--interval", "soon"], "--interval"),
    (["serve", "tcp", "--port", "70000"], "--port"),
    (["serve", "tcp", "--idle-timeout", "-3s"], "--idle-timeout"),
    (["serve", "tcp", "--cert", "x.pem"], "--cert"),
])
def test_bad_input_is_usage_error_naming_the_argument(args: list[str], names: str) -> None:
    res = support.invoke(args)
    assert res.exit_code == 2, res.stderr
    assert "Traceback" not in res.stderr
    # One line that says what was wrong, one that says where to read more.
    first, hint = res.stderr.strip().splitlines()
    assert first.startswith("netkit: ") and names in first
    assert hint == f"Try 'netkit {args[0]} {args[1]} --help' for help."


def test_durations_in_every_spelling_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    from netkit.core.send_models import TcpSendResult
    from netkit.io.clients import tcp_client
    seen: list[tuple[float, float]] = []

    def fake_send(config: Any, data: Any, **_: Any) -> TcpSendResult:
        seen.append((config.wait, config.timeout))
        return TcpSendResult(target="127.0.0.1:9", sent_bytes=1, received_bytes=0, connect_ms=0.1,
                             elapsed_ms=0.2, reply="")

    # The spelling is what is under test, not a peer: the command gets exactly these seconds.
    monkeypatch.setattr(tcp_client, "send_tcp_sync", fake_send)
    for wait, seconds in (("250ms", 0.25), ("2s", 2.0), ("1m", 60.0), ("1.5s", 1.5)):
        res = support.invoke(["send", "tcp", "127.0.0.1:9", "x", "--wait", wait, "--timeout", "250ms",
                              "--format", "json"])
        assert res.exit_code == 0, res.stderr
        assert seen[-1] == (seconds, 0.25)
        assert res.json()["sent_bytes"] == 1


def test_connection_refused_is_exit_1_one_line() -> None:
    with socket.socket() as s:  # a port nobody listens on: bound but not listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        res = support.run_netkit(["send", "tcp", f"127.0.0.1:{port}", "x"])
    assert res.exit_code == 1
    assert res.stderr.strip() == f"netkit: 127.0.0.1:{port}: connection refused"


def test_name_not_resolved_is_exit_1_one_line() -> None:
    res = support.run_netkit(["send", "tcp", "no-such-host.invalid:80", "x"])
    assert res.exit_code == 1
    assert "name not resolved" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_bind_failure_is_exit_3_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = support.run_netkit(["serve", "tcp", "--port", str(port)], timeout=20)
    assert res.exit_code == 3
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netkit: cannot listen on 127.0.0.1:"), res.stderr


def test_udp_bind_failure_is_exit_3() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        for mode in ("show", "echo"):
            res = support.run_netkit(["serve", "udp", "--port", str(port), "--mode", mode], timeout=20)
            assert res.exit_code == 3, res.stderr
            assert "Traceback" not in res.stderr and "cannot listen" in res.stderr


def test_head_1_ends_quietly() -> None:
    with support.netkit_server("serve", "tcp", "--port", "0", "--mode", "source") as srv:
        cmd = f"{sys.executable} -m netkit send tcp 127.0.0.1:{srv.port} x --wait 1s | head -c 100 >/dev/null"
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=30,
                              env=support.clean_env())
    assert proc.stderr == ""
    assert proc.returncode in (0, 141)
    proc = subprocess.run(["bash", "-c", f"{sys.executable} -m netkit --help | head -1"], capture_output=True,
                          text=True, timeout=30, env=support.clean_env())
    assert proc.stderr == "" and proc.stdout.startswith("Usage:")


def test_serve_jsonl_into_head_1_stops_quietly() -> None:
    proc = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} -m netkit serve tcp --port 0 --format jsonl | head -1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env(),
    )
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    m = support.READY.search(line)
    assert m, line
    port = int(m.group(2))
    # Once head has gone, the next event written into the pipe fails: the server leaves quietly.
    # Connect until that happens (head may still be starting when the first events are written).
    def gone() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
        except OSError:
            pass
        return proc.poll() is not None

    support.wait_until(gone, timeout=20, interval=0.05)
    out, err = proc.communicate(timeout=15)
    assert json.loads(out.decode())["event"] == "listening"
    assert b"Traceback" not in err and b"Broken pipe" not in err


def test_netkit_format_env_var() -> None:
    with support.netkit_server("serve", "tcp", "--port", "0") as srv:
        res = support.run_netkit(["send", "tcp", srv.addr, "hi"], env=support.clean_env(NETKIT_FORMAT="json"))
        srv.stop()
    assert res.exit_code == 0
    assert res.json()["reply"] == "hi"


def test_ready_line_exactly_once_and_jsonl_listening_event() -> None:
    srv = support.start_netkit_server("serve", "tcp", "--port", "0", "--format", "jsonl")
    code, out, err = srv.stop()
    assert code == 0
    assert err.count("listening on") == 1
    assert f"listening on 127.0.0.1:{srv.port}" in err
    first = json.loads(out.splitlines()[0])
    assert first == {"event": "listening", "time": first["time"], "host": "127.0.0.1", "port": srv.port}


def test_ready_line_ipv6_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 unavailable")
    srv = support.start_netkit_server("serve", "udp", "--host", "::1", "--port", "0")
    _, _, err = srv.stop()
    assert f"listening on [::1]:{srv.port}" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_prints_summary_and_exits_0(sig: int) -> None:
    with support.netkit_server("serve", "tcp", "--port", "0", "--format", "json") as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
            c.sendall(b"abcd")
            assert c.recv(4) == b"abcd"
            code, out, err = srv.stop(sig)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["connections"] == 1 and summary["peak_concurrent"] == 1
    assert summary["bytes_in"] == 4 and summary["bytes_out"] == 4
    assert summary["stopped_by"] == signal.Signals(sig).name
    assert set(summary["limits_hit"]) == {"max_conns", "idle_timeout", "max_bytes", "max_request", "amplification"}
    assert "Traceback" not in err


def test_interrupt_summary_table_on_stdout() -> None:
    with support.netkit_server("serve", "udp", "--port", "0") as srv:
        code, out, err = srv.stop()
    assert code == 0
    assert "datagrams" in out and "senders" in out
    assert "Traceback" not in err and "Aborted" not in err


def test_environment_cannot_turn_runs_into_help_or_version() -> None:
    """NETKIT_HELP / NETKIT_VERSION must not hijack every invocation through auto envvars."""
    env = support.clean_env(NETKIT_HELP="1", NETKIT_VERSION="1", NETKIT_PROBE_HELP="1")
    r = support.run_netkit(["probe", "--help"], env=env)
    assert r.exit_code == 0 and "Usage:" in r.stdout  # an explicit --help still works
    r = support.run_netkit(["--format", "json", "probe", "--timeout", "1s", "127.0.0.1:1"], env=env)
    assert "Usage:" not in r.stdout and "netkit 0.1.0" not in r.stdout
    assert r.json()["targets"][0]["state"] == "closed"


def test_per_command_format_from_the_environment() -> None:
    env = support.clean_env(NETKIT_PROBE_FORMAT="json")
    r = support.run_netkit(["probe", "--timeout", "1s", "127.0.0.1:1"], env=env)
    assert r.json()["summary"]["failed"] == 1
