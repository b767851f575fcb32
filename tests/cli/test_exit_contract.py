"""The CLI-wide contract, through real subprocesses: the same failure reads the same in every
command; signals end runs with what they have; a closed stdout is 141; option values parse
strictly (exit 2, one line); bytes options share one escape rule; -v is read one way.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support

UNRESOLVABLE = "no-such-host.invalid"


def _resolver_says() -> str:
    """What this host's resolver answers for the unresolvable name (the text varies by libc)."""
    try:
        socket.getaddrinfo(UNRESOLVABLE, 80)
    except socket.gaierror as exc:
        return str(exc.strerror)
    pytest.skip(f"{UNRESOLVABLE} resolves here")
    raise AssertionError  # pragma: no cover


@pytest.fixture(scope="module")
def refused_tcp_port() -> Iterator[int]:
    """A loopback port that answers a connect with RST: bound, never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture
def unreachable_udp_port() -> int:
    """A loopback UDP port with nothing bound: datagrams get ICMP port unreachable back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Every command that takes one target, with the options that keep a run short. "{t}" is HOST:PORT.
TCP_COMMANDS = {
    "send tcp": ["send", "tcp", "{t}", "x"],
    "latency tcp-connect": ["measure", "latency", "{t}", "-m", "tcp-connect", "-c", "2", "-i", "100ms"],
    "latency tcp-echo": ["measure", "latency", "{t}", "-m", "tcp-echo", "-c", "2", "-i", "100ms"],
    "throughput": ["measure", "throughput", "{t}", "-t", "1s"],
    "throughput iperf3": ["measure", "throughput", "{t}", "-t", "1s", "--iperf3"],
    "requests": ["measure", "requests", "{t}", "-n", "10"],
}
UDP_COMMANDS = {
    "send udp": ["send", "udp", "{t}", "x", "--wait", "1s"],
    "latency udp": ["measure", "latency", "{t}", "-m", "udp", "-c", "2", "-i", "100ms"],
    "loss": ["measure", "loss", "{t}", "-d", "1s", "-r", "100"],
    "throughput udp": ["measure", "throughput", "{t}", "-t", "1s", "--udp"],
}
ICMP_COMMAND = ["measure", "latency", "{t}", "-m", "icmp", "-c", "2", "-i", "100ms"]


def _args(template: list[str], target: str) -> list[str]:
    return [a.replace("{t}", target) for a in template]


def _one_line(res: support.CliResult) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


@pytest.mark.parametrize("name", [*TCP_COMMANDS, *UDP_COMMANDS])
def test_unresolvable_name_is_exit_1_with_one_wording(name: str) -> None:
    template = TCP_COMMANDS.get(name) or UDP_COMMANDS[name]
    res = support.run_netkit(_args(template, f"{UNRESOLVABLE}:7"), timeout=30)
    assert res.exit_code == 1, res.stderr
    assert _one_line(res) == f"netkit: {UNRESOLVABLE}:7: name not resolved ({_resolver_says()})"


def test_unresolvable_name_icmp_names_the_host() -> None:
    res = support.run_netkit(_args(ICMP_COMMAND, UNRESOLVABLE), timeout=30)
    assert res.exit_code == 1, res.stderr
    assert _one_line(res) == f"netkit: {UNRESOLVABLE}: name not resolved ({_resolver_says()})"


@pytest.mark.parametrize("name", list(TCP_COMMANDS))
def test_refused_port_is_exit_1_with_one_wording(name: str, refused_tcp_port: int) -> None:
    target = f"127.0.0.1:{refused_tcp_port}"
    res = support.run_netkit(_args(TCP_COMMANDS[name], target), timeout=30)
    assert res.exit_code == 1, res.stderr
    assert _one_line(res) == f"netkit: {target}: connection refused"


@pytest.mark.parametrize("name", list(UDP_COMMANDS))
def test_unreachable_udp_port_is_exit_1_with_one_wording(name: str, unreachable_udp_port: int) -> None:
    target = f"127.0.0.1:{unreachable_udp_port}"
    res = support.run_netkit(_args(UDP_COMMANDS[name], target), timeout=30)
    assert res.exit_code == 1, res.stderr
    assert _one_line(res) == f"netkit: {target}: port unreachable (nothing listening)"


def test_probe_and_monitor_rows_carry_the_same_reason(refused_tcp_port: int, tmp_path: Any) -> None:
    """Reports with a row per target show the reason beside the target, in the same words."""
    reason = f"name not resolved ({_resolver_says()})"
    refused = f"127.0.0.1:{refused_tcp_port}"
    res = support.run_netkit(["--format", "json", "probe", f"{UNRESOLVABLE}:7", refused], timeout=30)
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    errors = [t["error"] for t in res.json()["targets"]]
    assert errors == [reason, "connection refused"]
    for target, want in ((f"{UNRESOLVABLE}:7", reason), (refused, "connection refused")):
        res = support.run_netkit(["--format", "jsonl", "monitor", target, "--rounds", "1", "--interval", "1s",
                                  "--textfile", str(tmp_path / "netkit.prom")], timeout=30)
        rounds = [line for line in res.jsonl() if line["event"] == "round"]
        assert res.exit_code == 1 and rounds[0]["targets"][0]["error"] == want, res.stderr


# ----- Ctrl-C and other signals ------------------------------------------------------------------

def _established_to(pid: int, port: int) -> bool:
    import psutil

    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    # send tcp half-closes after its message (FIN_WAIT2) while the reply still streams in.
    return any(c.raddr and c.raddr[1] == port and c.status in ("ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2")
               for c in conns)


def test_ctrl_c_on_send_tcp_into_a_pipe_never_shows_a_traceback() -> None:
    """``netkit send tcp HOST:PORT x | wc -c`` against a source, Ctrl-C (SIGINT to the whole group).

    The reader dies with the writer, so replies are being written into a pipe that is closing while
    the loop is being stopped: the race showed "Task exception was never retrieved" in 2 runs of 4.
    """
    rounds = 16
    rng = random.Random(14)
    with support.netkit_server("serve", "tcp", "--port", "0", "--mode", "source") as srv:
        for _ in range(rounds):
            # One process group for the pipeline (a shell's job), apart from the test's own.
            writer = subprocess.Popen(support.netkit_cmd("send", "tcp", srv.addr, "x"), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env(),
                                      process_group=0, preexec_fn=support._preexec_default_sigint)
            assert writer.stdout is not None
            reader = subprocess.Popen(["wc", "-c"], stdin=writer.stdout, stdout=subprocess.DEVNULL,
                                      process_group=writer.pid, preexec_fn=support._preexec_default_sigint)
            writer.stdout.close()  # only wc holds the read end now
            support.wait_until(lambda w=writer: _established_to(w.pid, srv.port), timeout=20)
            time.sleep(rng.uniform(0, 0.2))  # land the signal at a different point of the stream each time
            os.killpg(writer.pid, signal.SIGINT)
            _, err = writer.communicate(timeout=20)
            reader.wait(timeout=20)
            text = err.decode(errors="replace")
            assert "Traceback" not in text and "exception was never retrieved" not in text, text
            assert writer.returncode in (130, 141), (writer.returncode, text)


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(support.netkit_cmd(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=support.clean_env(),
                            preexec_fn=support._preexec_default_sigint)


def test_sighup_ends_a_meter_with_its_summary() -> None:
    with support.netkit_server("serve", "tcp", "--port", "0") as srv:
        proc = _start(["--format", "json", "measure", "throughput", srv.addr, "-t", "30s"])
        support.wait_until(lambda: _established_to(proc.pid, srv.port), timeout=20)
        time.sleep(0.5)  # a little data first: the summary must count it
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    doc = json.loads(out)
    assert doc["interrupted"] is True and doc["summary"]["received_bytes"] > 0
    assert b"Traceback" not in err


def _connected_udp_to(pid: int, port: int) -> bool:
    import psutil

    try:
        return any(c.raddr and c.raddr[1] == port for c in psutil.Process(pid).net_connections(kind="udp"))
    except psutil.Error:
        return False


@pytest.mark.parametrize("command", ["latency", "loss"])
def test_latency_and_loss_json_say_when_a_signal_cut_the_run_short(command: str) -> None:
    with support.netkit_server("serve", "udp", "--port", "0", "--mode", "echo") as srv:
        args = ["--format", "json", "measure", command, srv.addr, "-d", "30s"]
        proc = _start(args + (["-m", "udp", "-i", "10ms"] if command == "latency" else []))
        support.wait_until(lambda: _connected_udp_to(proc.pid, srv.port), timeout=20)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        doc = json.loads(out)
        assert doc["interrupted"] is True, doc
        whole = support.run_netkit(["--format", "json", "measure", command, srv.addr, "-d", "200ms"])
    assert json.loads(whole.stdout)["interrupted"] is False, whole.stderr


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_sighup_and_sigterm_end_a_server_with_its_summary(sig: int) -> None:
    srv = support.start_netkit_server("serve", "tcp", "--port", "0", "--format", "json")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
        c.sendall(b"ping")
        assert c.recv(4) == b"ping"
    code, out, err = srv.stop(sig)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["stopped_by"] == signal.Signals(sig).name and summary["bytes_in"] == 4


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_send_udp_stopped_by_a_signal_prints_what_it_sent(sig: int) -> None:
    with support.netkit_server("serve", "udp", "--port", "0", "--mode", "show", "--format", "jsonl") as srv:
        proc = _start(["--format", "json", "send", "udp", srv.addr, "hi", "-c", "1000", "-i", "50ms",
                       "--wait", "1s"])
        support.wait_until(lambda: "datagram" in _peek_events(srv), timeout=20)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    doc = json.loads(out)
    assert doc["interrupted"] is True and 1 <= doc["datagrams_sent"] < 1000
    assert doc["sent_bytes"] == 2 * doc["datagrams_sent"]
    assert proc.returncode == (130 if sig == signal.SIGINT else 0), err
    assert b"Traceback" not in err


def _peek_events(srv: support.Server) -> str:
    """The server's stdout so far, without blocking (jsonl events arrive one line at a time)."""
    import select

    assert srv.proc.stdout is not None
    fd = srv.proc.stdout.fileno()
    chunks = []
    while select.select([fd], [], [], 0)[0]:
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    text = b"".join(chunks).decode(errors="replace")
    srv.ready_line += text  # keep what was read, for a failure message
    return srv.ready_line


# ----- a closed stdout -----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_a_closed_stdout_is_141_in_every_format(fmt: str) -> None:
    # 3,000 closed ports make a result far larger than a pipe holds, so the reader is gone before
    # the last of it is written: the exit status must say so whatever the format.
    cmd = " ".join(support.netkit_cmd("--format", fmt, "probe", "127.0.0.1:1-3000", "--timeout", "1s"))
    proc = subprocess.run(["bash", "-c", f"{cmd} | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}"],
                          capture_output=True, text=True, timeout=120, env=support.clean_env())
    assert proc.stdout.strip() == "141", proc.stderr
    assert proc.stderr == ""


# ----- option values -------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "option"), [
    (["measure", "loss", "127.0.0.1:9", "--max-loss", "nan"], "--max-loss"),
    (["measure", "loss", "127.0.0.1:9", "--max-loss", "inf"], "--max-loss"),
    (["measure", "latency", "127.0.0.1:9", "--max-loss", "nan"], "--max-loss"),
    (["measure", "latency", "127.0.0.1:9", "--max-loss", "-inf"], "--max-loss"),
    (["measure", "requests", "127.0.0.1:9", "--min-rps", "nan"], "--min-rps"),
    (["measure", "requests", "127.0.0.1:9", "--min-rps", "infinity"], "--min-rps"),
    (["probe", "127.0.0.1:9", "--tls", "--min-cert-days", "nan"], "--min-cert-days"),
    (["probe", "127.0.0.1:9", "--backoff-factor", "nan"], "--backoff-factor"),
    (["probe", "127.0.0.1:9", "--backoff-factor", "1e999"], "--backoff-factor"),
    (["measure", "throughput", "127.0.0.1:9", "--min-rate", "nan"], "--min-rate"),
    (["measure", "latency", "127.0.0.1:9", "--max-rtt", "inf"], "--max-rtt"),
    (["measure", "requests", "127.0.0.1:9", "--payload", "\\q"], "--payload"),
    (["measure", "requests", "127.0.0.1:9", "--payload", ""], "--payload"),
    (["probe", "127.0.0.1:9", "--send", "\\xZZ"], "--send"),
    (["serve", "tcp", "--mode", "reply", "--reply", "bad \\u escape"], "--reply"),
    (["probe", "--bogus", "127.0.0.1:9"], "--bogus"),
])
def test_every_bad_option_value_is_exit_2_in_one_line(args: list[str], option: str) -> None:
    res = support.run_netkit(args, timeout=30)
    assert res.exit_code == 2, res.stderr
    line, hint = _usage_error(res)
    assert line.startswith("netkit: ") and option in line
    path = []
    for word in args:  # the command path: the words before the first target or option
        if word.startswith("-") or ":" in word:
            break
        path.append(word)
    assert hint == f"Try 'netkit {' '.join(path)} --help' for help."


def _usage_error(res: support.CliResult) -> tuple[str, str]:
    """A usage error's two lines: ``netkit: <what was wrong>``, then where to read more."""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert lines[0].startswith("netkit: ") and lines[1].startswith("Try 'netkit")
    return lines[0], lines[1]


@pytest.mark.parametrize(("args", "line", "hint"), [
    (["latncy"], "netkit: no such command 'latncy'. Did you mean 'measure latency'?", "netkit"),
    (["latency"], "netkit: no such command 'latency'. Did you mean 'measure latency'?", "netkit"),
    (["measure", "latncy"], "netkit: no such command 'latncy'. Did you mean 'latency'?", "netkit measure"),
    (["prbe", "127.0.0.1:9"], "netkit: no such command 'prbe'. Did you mean 'probe'?", "netkit"),
    (["tcp"], "netkit: no such command 'tcp'. Did you mean 'send tcp' or 'serve tcp'?", "netkit"),
    (["info", "trafic"], "netkit: no such command 'trafic'. Did you mean 'traffic'?", "netkit info"),
    (["xyzzy"], "netkit: no such command 'xyzzy'.", "netkit"),
])
def test_an_unknown_command_gets_did_you_mean_and_the_help_hint(args: list[str], line: str, hint: str) -> None:
    res = support.run_netkit(args, timeout=30)
    assert res.exit_code == 2, res.stderr
    assert _usage_error(res) == (line, f"Try '{hint} --help' for help.")


@pytest.mark.parametrize(("args", "line"), [
    (["probe", "--tiemout", "1s", "127.0.0.1:9"], "netkit: no such option '--tiemout'. Did you mean '--timeout'?"),
    (["probe", "--retry", "3", "127.0.0.1:9"], "netkit: no such option '--retry'. Did you mean '--retries'?"),
    (["probe", "--bogus", "127.0.0.1:9"], "netkit: no such option '--bogus'."),  # not "--verbose"
])
def test_an_unknown_option_gets_only_close_suggestions(args: list[str], line: str) -> None:
    res = support.run_netkit(args, timeout=30)
    assert res.exit_code == 2
    assert _usage_error(res) == (line, "Try 'netkit probe --help' for help.")


def test_a_usage_error_inside_a_command_names_that_command_in_the_hint() -> None:
    res = support.run_netkit(["serve", "tcp", "--port", "70000"], timeout=30)
    assert res.exit_code == 2
    line, hint = _usage_error(res)
    assert "--port" in line and hint == "Try 'netkit serve tcp --help' for help."


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(data)
        return c.recv(100)


@pytest.mark.parametrize(("typed", "sent"), [
    ("hello\\n", b"hello\n"),
    ("\\xff\\xfe\\r\\n", b"\xff\xfe\r\n"),
    ("tab\\there \\\\ \\e", b"tab\there \\ \x1b"),
])
def test_serve_reply_reads_the_escapes_probe_and_requests_read(typed: str, sent: bytes) -> None:
    from netkit.cli.params import BYTES

    with support.netkit_server("serve", "tcp", "--port", "0", "--mode", "reply", "--reply", typed) as srv:
        assert _exchange(srv.port, b"x") == sent
    assert BYTES.convert(typed, None, None) == sent  # the type probe --send and requests --payload use


def test_serve_reply_takes_bytes_that_are_not_utf8_as_typed() -> None:
    # $'\xff\xfe' in a shell: argv bytes that are not UTF-8 (an internal error before).
    proc = subprocess.Popen([*support.netkit_cmd("serve", "tcp", "--port", "0", "--mode", "reply", "--reply"),
                             os.fsdecode(b"\xff\xfe")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=support.clean_env(), preexec_fn=support._preexec_default_sigint)
    assert proc.stderr is not None
    m = support.READY.search(proc.stderr.readline().decode())
    assert m, proc.communicate(timeout=10)
    srv = support.Server(proc, "127.0.0.1", int(m.group(2)), "")
    try:
        assert _exchange(srv.port, b"x") == b"\xff\xfe"
    finally:
        code, _, err = srv.stop()
    assert code == 0 and "internal error" not in err


def test_empty_send_udp_is_a_real_zero_length_datagram() -> None:
    with support.netkit_server("serve", "udp", "--port", "0", "--format", "jsonl") as srv:
        res = support.run_netkit(["--format", "json", "send", "udp", srv.addr], input=b"")
        support.wait_until(lambda: '"datagram"' in _peek_events(srv), timeout=10)
        _, out, _ = srv.stop()
    assert res.exit_code == 0, res.stderr
    assert res.json()["datagrams_sent"] == 1 and res.json()["sent_bytes"] == 0
    events = [json.loads(line) for line in (srv.ready_line + out).splitlines() if line.startswith("{")]
    datagrams = [e for e in events if e["event"] == "datagram"]
    assert [d["size"] for d in datagrams] == [0]


# ----- -v -----------------------------------------------------------------------------------------

BOOM = ("import sys\n"
        "import netkit.cli.send as send\n"
        "def boom(*a, **k):\n"
        "    raise RuntimeError('boom')\n"
        "send._payload = boom\n"
        "from netkit.cli.main import main\n"
        "main()\n")


@pytest.mark.parametrize(("args", "env", "traceback"), [
    ([], {}, False),
    (["-v"], {}, True),
    (["-vv"], {}, True),
    (["--verbose"], {}, True),
    ([], {"NETKIT_VERBOSE": "1"}, True),
    ([], {"NETKIT_VERBOSE": "true"}, True),
    ([], {"NETKIT_VERBOSE": "yes"}, True),
    ([], {"NETKIT_VERBOSE": "on"}, True),
    ([], {"NETKIT_VERBOSE": "false"}, False),
    ([], {"NETKIT_VERBOSE": "off"}, False),
    ([], {"NETKIT_VERBOSE": "0"}, False),
    ([], {"NETKIT_SEND_TCP_VERBOSE": "yes"}, True),
    (["LEAF-v"], {}, True),
])
def test_verbose_shows_the_traceback_of_an_internal_error_however_it_is_given(
        args: list[str], env: dict[str, str], traceback: bool) -> None:
    leaf = ["-v"] if args == ["LEAF-v"] else []
    root = [] if leaf else args
    argv = [*root, "send", "tcp", "127.0.0.1:9", "x", *leaf]
    proc = subprocess.run([sys.executable, "-c", BOOM, *argv], capture_output=True, text=True, timeout=30,
                          env=support.clean_env(**env))
    assert proc.returncode == 3
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("netkit: internal error: RuntimeError: boom")
    assert ("Traceback" in proc.stderr) is traceback, proc.stderr
    assert ("-v shows detail" in last) is not traceback, last  # no pointer to -v when -v is on


@pytest.mark.parametrize("value", ["bogus", "-1", "2x"])
def test_a_verbose_env_var_that_is_no_count_is_a_usage_error(value: str) -> None:
    res = support.run_netkit(["info", "interfaces"], env=support.clean_env(NETKIT_VERBOSE=value), timeout=30)
    assert res.exit_code == 2
    line, _ = _usage_error(res)
    assert "--verbose" in line and f"{value!r} in NETKIT_VERBOSE" in line


@pytest.mark.parametrize(("value", "count"), [("true", 1), ("Yes", 1), ("ON", 1), ("no", 0), ("off", 0),
                                              ("false", 0), ("0", 0), ("3", 3)])
def test_verbose_env_var_reads_booleans_and_counts(value: str, count: int) -> None:
    from netkit.cli.context import VERBOSITY

    assert VERBOSITY.convert(value, None, None) == count


def test_ctrl_c_while_send_tcp_waits_for_stdin_exits_at_once() -> None:
    """stdin that stays open and silent (a terminal nobody types into): Ctrl-C must still end it.

    The reading thread is blocked in a read that never returns; neither the loop's executor
    shutdown nor the interpreter's exit may wait for it or trip over the stdin buffer's lock.
    """
    import pty

    typist, terminal = pty.openpty()
    try:
        with support.netkit_server("serve", "tcp", "--port", "0") as srv:
            proc = subprocess.Popen(support.netkit_cmd("send", "tcp", srv.addr, "-"), stdin=terminal,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env(),
                                    preexec_fn=support._preexec_default_sigint)
            os.write(typist, b"hello\n")  # then nothing more, and no EOF
            support.wait_until(lambda: _established_to(proc.pid, srv.port), timeout=20)
            time.sleep(0.3)  # the reply is back and the reader is blocked again
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
    finally:
        os.close(typist)
        os.close(terminal)
    assert proc.returncode == 130, err
    assert out == b"hello\n" and b"Fatal" not in err and b"Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_info_traffic_stopped_by_a_signal_prints_its_report(sig: int) -> None:
    proc = _start(["--format", "jsonl", "info", "traffic", "-i", "100ms"])
    assert proc.stdout is not None
    first = proc.stdout.readline()  # one interval measured: the run is under way
    assert json.loads(first)["seq"] == 1
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err  # no --count: a signal is the normal end
    assert b"Traceback" not in err
    assert all(json.loads(line)["interface"] for line in out.splitlines())  # no line cut by the signal


@pytest.mark.parametrize(("args", "line", "hint"), [
    (["probe", "db:x"], "netkit: invalid target 'db:x': invalid port 'x': not a number", "netkit probe"),
    (["probe", "127.0.0.1:22", "db"], "netkit: invalid target 'db': no port (write HOST:PORT)", "netkit probe"),
    (["--format", "json", "probe", "http://127.0.0.1:8080"],
     "netkit: invalid target 'http://127.0.0.1:8080': a URL is not a target; give HOST:PORT, e.g. 127.0.0.1:8080",
     "netkit probe"),
    (["probe"], "netkit: no targets: give HOST:PORT arguments, '-' or --targets-file", "netkit probe"),
    (["measure", "latency", "db:99999"], "netkit: invalid target 'db:99999': invalid port '99999': must be 1-65535",
     "netkit measure latency"),
    (["measure", "latency", "-m", "icmp", "db:x"], "netkit: invalid target 'db:x': invalid port 'x': not a number",
     "netkit measure latency"),
    (["measure", "loss", "db"], "netkit: invalid target 'db': no port (write HOST:PORT)", "netkit measure loss"),
    (["info", "traffic", "--interface", "no-such-if0", "-c", "1"], None, "netkit info traffic"),
    # a listening port may be 0 (a free one), and the message says so
    (["serve", "responsiveness", "--port", "70000"],
     "netkit: Invalid value for '--port' / '-p': invalid port '70000': must be 0-65535 (0: a free one)",
     "netkit serve responsiveness"),
])
def test_a_bad_target_argument_is_a_usage_error_with_the_help_hint(args: list[str], line: str | None,
                                                                     hint: str) -> None:
    # Bad input on the command line reads as Click's own usage errors do: the reason, then the help.
    res = support.invoke(args)
    assert res.exit_code == 2, res.stderr
    got_line, got_hint = _usage_error(res)
    if line is not None:
        assert got_line == line
    assert got_hint == f"Try '{hint} --help' for help."


def test_a_bad_line_of_a_targets_file_names_the_line_without_the_help_hint(tmp_path: Path) -> None:
    # The file is what to fix, not the command line: one line, with the file's name and line number.
    listed = tmp_path / "targets.txt"
    listed.write_text("127.0.0.1:22\n# a comment\nbad line\n")
    res = support.invoke(["probe", "--targets-file", str(listed)])
    assert res.exit_code == 2
    assert res.stderr == f"netkit: {listed}:3: invalid target 'bad': no port (write HOST:PORT)\n"


@pytest.mark.parametrize(("args", "words"), [
    (["measure", "loss", "127.0.0.1:9", "-r", "1e9"], "invalid number '1e9': must be at most 10,000,000"),
    (["probe", "127.0.0.1:9", "--retries", "2000000"], "invalid number '2000000': must be at most 1,000,000"),
    (["probe", "127.0.0.1:9", "--backoff-factor", "0.5"], "invalid number '0.5': must be at least 1"),
])
def test_an_option_bound_reads_with_separators_never_in_e_notation(args: list[str], words: str) -> None:
    res = support.invoke(args)
    assert res.exit_code == 2
    line, _hint = _usage_error(res)
    assert line.endswith(words) and "e+" not in line


@pytest.mark.parametrize(("args", "option", "hint"), [
    (["measure", "latency", "127.0.0.1:9", "--count"], "--count", "netkit measure latency"),
    (["probe", "127.0.0.1:9", "--timeout"], "--timeout", "netkit probe"),
    (["info", "traffic", "-i"], "-i", "netkit info traffic"),
    (["--format"], "--format", "netkit"),
])
def test_an_option_without_its_value_gets_the_help_hint_too(args: list[str], option: str, hint: str) -> None:
    # Click's parser raises this one before any context exists: the hint came out missing.
    res = support.invoke(args)
    assert res.exit_code == 2
    line, got_hint = _usage_error(res)
    assert option in line and "requires an argument" in line
    assert got_hint == f"Try '{hint} --help' for help."
