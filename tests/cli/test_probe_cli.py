"""``netkit probe`` end to end: formats, filters, exit codes, wait and repeat modes, range scans."""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import support

FIELDS = ["target", "host", "port", "address", "state", "attempts", "connect_ms", "resolve_ms", "elapsed_ms",
          "error", "tls"]


@contextmanager
def ports() -> Iterator[tuple[int, int]]:
    """(an open port, a refused port), both held by this test so no one else can take them."""
    up = socket.socket()
    up.bind(("127.0.0.1", 0))
    up.listen(1024)
    down = socket.socket()
    down.bind(("127.0.0.1", 0))
    try:
        yield up.getsockname()[1], down.getsockname()[1]
    finally:
        up.close()
        down.close()


def test_json_schema_exactly() -> None:
    with ports() as (up, down):
        r = support.invoke(["probe", f"127.0.0.1:{up}", f"localhost:{up}", f"127.0.0.1:{down}", "--format", "json"])
    assert r.exit_code == 1, r.stderr
    doc = r.json()
    assert list(doc) == ["targets", "summary"]
    assert [list(t) for t in doc["targets"]] == [FIELDS] * 3
    assert list(doc["summary"]) == ["total", "open", "failed", "success_rate"]
    first, second, third = doc["targets"]
    assert first["state"] == "open" and first["target"] == f"127.0.0.1:{up}" and first["port"] == up
    assert first["tls"] is None and first["error"] is None and first["resolve_ms"] is None
    assert second["host"] == "localhost" and isinstance(second["resolve_ms"], float)
    assert third["state"] == "closed" and third["error"] == "connection refused" and third["connect_ms"] is None
    assert doc["summary"] == {"total": 3, "open": 2, "failed": 1, "success_rate": pytest.approx(2 / 3, abs=1e-5)}


def test_exit_codes_any_and_quiet() -> None:
    with ports() as (up, down):
        assert support.invoke(["probe", f"127.0.0.1:{up}"]).exit_code == 0
        both = [f"127.0.0.1:{up}", f"127.0.0.1:{down}"]
        assert support.invoke(["probe", *both]).exit_code == 1
        assert support.invoke(["probe", *both, "--any"]).exit_code == 0
        assert support.invoke(["probe", f"127.0.0.1:{down}", "--any"]).exit_code == 1
        q = support.invoke(["probe", *both, "-q"])
    assert q.exit_code == 1 and q.stdout == "" and q.stderr == ""


@pytest.mark.parametrize("args", [
    ["probe"],
    ["probe", "nohost"],
    ["probe", "127.0.0.1:70000"],
    ["probe", "127.0.0.1:80", "--expect", "("],
    ["probe", "127.0.0.1:80", "--udp", "--tls"],
    ["probe", "127.0.0.1:80", "-4", "-6"],
    ["probe", "127.0.0.1:80", "--min-cert-days", "3"],
    ["probe", "127.0.0.1:80", "--wait", "--repeat", "2"],
    ["probe", "127.0.0.1:80", "--timeout", "0"],
    ["probe", "--targets-file", "/nonexistent/targets"],
])
def test_bad_input_exits_2(args: list[str]) -> None:
    r = support.invoke(args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr


def test_jsonl_csv_and_only() -> None:
    with ports() as (up, down):
        spec = f"127.0.0.1:{up},{down}"
        jl = support.invoke(["probe", spec, "--format", "jsonl"])
        cs = support.invoke(["probe", spec, "--format", "csv"])
        only_open = support.invoke(["probe", spec, "--only", "open", "--format", "json"])
        only_failed = support.invoke(["probe", spec, "--only", "failed", "--format", "jsonl"])
        table = support.invoke(["probe", spec, "--only", "failed", "--no-color"])
    lines = jl.jsonl()
    assert sorted(x["port"] for x in lines) == sorted([up, down]) and all(list(x) == FIELDS for x in lines)
    rows = list(csv.DictReader(io.StringIO(cs.stdout)))
    assert list(rows[0]) == FIELDS and [r["state"] for r in rows] == ["open", "closed"]
    doc = only_open.json()
    assert [t["port"] for t in doc["targets"]] == [up] and doc["summary"]["total"] == 2
    assert [x["port"] for x in only_failed.jsonl()] == [down]
    assert "closed" in table.stdout and f":{up} " not in table.stdout
    for word in ("target", "address", "state", "attempts", "connect", "total", "error"):
        assert word in table.stdout


def test_targets_file_stdin_and_input_order(tmp_path: Path) -> None:
    with ports() as (up, down):
        f = tmp_path / "targets"
        f.write_text(f"# services\n127.0.0.1:{down}  # not there\n\n[::1]:{down}\n127.0.0.1:{up}\n")
        r = support.invoke(["probe", "--targets-file", str(f), "--format", "json"])
        s = support.invoke(["probe", "-", f"127.0.0.1:{up}", "--format", "json"],
                           input=f"127.0.0.1:{down}\n# comment\n")
    assert [t["target"] for t in r.json()["targets"]] == [f"127.0.0.1:{down}", f"[::1]:{down}", f"127.0.0.1:{up}"]
    assert [t["state"] for t in s.json()["targets"]] == ["closed", "open"]


def test_scan_engine_and_asyncio_agree_in_order() -> None:
    """Many targets take the fast loop; the asyncio prober gives the same states in the same order."""
    with ports() as (up, down):
        targets = [f"127.0.0.1:{up if i % 5 == 0 else down}" for i in range(150)]
        fast = support.invoke(["probe", *targets, "--format", "json"]).json()["targets"]
        slow = support.invoke(["probe", *targets, "--format", "json", "--engine", "async"]).json()["targets"]
    assert [t["state"] for t in fast] == [t["state"] for t in slow] == [
        "open" if i % 5 == 0 else "closed" for i in range(150)]
    assert [list(t) for t in fast] == [FIELDS] * 150


def test_scan_threads_stream_whole_jsonl_lines() -> None:
    """Several scan threads share stdout: every jsonl line must still be one whole object."""
    with ports() as (up, down):
        targets = [f"127.0.0.1:{up if i % 7 == 0 else down}" for i in range(300)]
        r = support.invoke(["probe", *targets, "--format", "jsonl", "--scan-threads", "3"])
    lines = r.jsonl()
    assert len(lines) == 300
    assert sum(1 for x in lines if x["state"] == "open") == len(range(0, 300, 7))


@pytest.mark.parametrize("engine", ["async", "scan"])
def test_retries_count_attempts(engine: str) -> None:
    with ports() as (_up, down):
        r = support.invoke(["probe", f"127.0.0.1:{down}", "--retries", "2", "--backoff", "10ms", "--format", "json",
                            "--engine", engine])
    t = r.json()["targets"][0]
    assert t["attempts"] == 3 and t["state"] == "closed"
    assert t["elapsed_ms"] >= 30  # 10 ms + 20 ms of backoff, never less


def test_repeat_reports_success_rate() -> None:
    with ports() as (up, down):
        r = support.invoke(["probe", f"127.0.0.1:{up}", f"127.0.0.1:{down}", "--repeat", "3", "--interval", "50ms",
                            "--format", "json"])
        t = support.invoke(["probe", f"127.0.0.1:{up}", "--repeat", "2", "--interval", "10ms"])
    doc = r.json()
    up_t, down_t = doc["targets"]
    assert (up_t["rounds"], up_t["opens"], up_t["success_rate"]) == (3, 3, 1.0)
    assert (down_t["rounds"], down_t["opens"], down_t["success_rate"]) == (3, 0, 0.0)
    assert doc["summary"]["success_rate"] == 0.5
    assert r.exit_code == 1
    assert t.exit_code == 0 and "2/2" in t.stdout and "100 %" in t.stdout
    assert t.stdout.splitlines()[-1] == "1 target, 2/2 rounds: 1 open, 0 failed; success 100 %"


def test_wait_exits_as_soon_as_the_listener_is_up() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    up = threading.Event()
    listening_at: list[float] = []

    def start() -> None:
        sock.listen(8)
        listening_at.append(time.monotonic())
        up.set()

    timer = threading.Timer(1.0, start)
    try:
        proc = subprocess.Popen(support.netkit_cmd("probe", "--wait", "--deadline", "20s", "--max-backoff", "200ms",
                                                   f"127.0.0.1:{port}"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env())
        timer.start()
        out, err = proc.communicate(timeout=30)
        ended = time.monotonic()
        assert up.is_set()
    finally:
        timer.cancel()
        sock.close()
    assert proc.returncode == 0, err
    assert b"waiting" in err and b"1/1 up" in err
    assert b"open" in out
    # As soon as: within the backoff cap (0.2 s) of the listener appearing, plus exit time on a busy machine;
    # far from the 20 s deadline.
    assert ended - listening_at[0] < 0.2 + 2.0


def test_wait_any_ends_when_one_is_up() -> None:
    with ports() as (up, down):
        t0 = time.monotonic()
        r = support.invoke(["probe", "--wait", "--any", "--deadline", "20s", f"127.0.0.1:{down}",
                            f"127.0.0.1:{up}", "--format", "json"])
        took = time.monotonic() - t0
    assert r.exit_code == 0, r.stderr
    first, second = r.json()["targets"]
    assert second["state"] == "open"
    # The refused port's first attempt usually ends before the open one answers; on a loaded machine
    # the open one can win, and the other is then cut "before an answer".
    assert first["state"] in ("closed", "timeout")
    assert "--any" in first["error"]
    assert took < 5


def test_sigint_prints_what_was_found_and_exits_130() -> None:
    import signal

    with ports() as (up, down):
        proc = subprocess.Popen(
            support.netkit_cmd("probe", "--wait", "--deadline", "30s", f"127.0.0.1:{up}", f"127.0.0.1:{down}",
                               "--format", "json"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env(),
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert proc.stderr is not None
        support.wait_until(lambda: b"1/2 up" in proc.stderr.readline(), timeout=10)
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    doc = json.loads(out)
    assert doc["targets"][0]["state"] == "open"


def test_wait_gives_up_at_the_deadline() -> None:
    with ports() as (up, down):
        t0 = time.monotonic()
        r = support.run_netkit(["probe", "--wait", "--deadline", "1s", f"127.0.0.1:{up}", f"127.0.0.1:{down}",
                                "--format", "json"])
        took = time.monotonic() - t0
    assert r.exit_code == 1
    states = [t["state"] for t in r.json()["targets"]]
    assert states == ["open", "closed"]
    assert r.json()["targets"][1]["attempts"] >= 2
    assert took < 1 + 4.0  # the deadline plus start-up on a shared machine
    assert "waiting: 1/2 up" in r.stderr


@pytest.mark.root
def test_full_range_scan_in_a_private_namespace() -> None:
    """All 65535 ports, inside ``unshare -n`` with listeners of its own (ports fixed: the namespace is ours)."""
    support.require_root_netns()
    inner = (
        "import socket, subprocess, sys, json\n"
        "ls = []\n"
        "for p in (22, 8080, 45000):\n"
        "    s = socket.socket(); s.bind(('127.0.0.1', p)); s.listen(64); ls.append(s)\n"
        "full = subprocess.run([sys.executable, '-m', 'netkit', 'probe', '127.0.0.1:1-65535', '--only', 'open',"
        " '--format', 'json'], capture_output=True, text=True)\n"
        "part = subprocess.run([sys.executable, '-m', 'netkit', 'probe', '127.0.0.1:1-3000,44990-45010', '--only',"
        " 'open', '--format', 'json', '--engine', 'async'], capture_output=True, text=True)\n"
        "print(json.dumps([full.returncode, full.stdout, part.returncode, part.stdout, full.stderr + part.stderr]))\n"
    )
    proc = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1"', sys.executable,
                           inner], capture_output=True, text=True, timeout=60, env=support.clean_env())
    assert proc.returncode == 0, proc.stderr
    full_rc, full_out, part_rc, part_out, errs = json.loads(proc.stdout)
    assert full_rc == 1 and part_rc == 1, errs
    full, part = json.loads(full_out), json.loads(part_out)
    assert [t["port"] for t in full["targets"]] == [22, 8080, 45000]
    assert full["summary"] == {"total": 65535, "open": 3, "failed": 65532, "success_rate": pytest.approx(3 / 65535,
                                                                                                          abs=1e-6)}
    assert [t["port"] for t in part["targets"]] == [22, 45000]


def test_hostile_banner_is_shown_inert() -> None:
    """A banner with markup and terminal escapes appears as inert text in the table and JSON."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(10)
    port = srv.getsockname()[1]
    evil = b"[bold red]x[/] oops [/]\x1b[31mRED\x07\n"

    def serve() -> None:
        for _ in range(2):
            try:
                conn, _addr = srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(evil)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        table = support.invoke(["probe", f"127.0.0.1:{port}", "--expect", "^SSH-", "--timeout", "1s"])
        js = support.invoke(["probe", f"127.0.0.1:{port}", "--expect", "^SSH-", "--timeout", "1s",
                             "--format", "json"])
    finally:
        srv.close()
        th.join(5)
    assert table.exit_code == 1 and "mismatch" in table.stdout
    assert "[bold red]x[/]" in table.stdout and "\x1b" not in table.stdout and "\\x1b" in table.stdout
    err = js.json()["targets"][0]["error"]
    assert "\x1b" not in err and "[bold red]" in err


@pytest.mark.root
@pytest.mark.parametrize("engine", ["async", "scan"])
def test_self_connect_is_never_open(engine: str) -> None:
    """A one-port ephemeral range in a private namespace forces source port == destination port."""
    support.require_root_netns()
    script = ('ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range="40000 40000" && '
              'exec "$0" -m netkit probe 127.0.0.1:40000 --format json --engine "$1"')
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script, sys.executable, engine], capture_output=True,
                          text=True, timeout=30, env=support.clean_env())
    assert proc.returncode == 1, proc.stderr
    t = json.loads(proc.stdout)["targets"][0]
    assert t["state"] == "closed" and t["error"].startswith("self-connect")


def test_large_tables_are_plain_aligned_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import netkit.render.probe as probe_render

    monkeypatch.setattr(probe_render, "PLAIN_TABLE_ROWS", 1)
    with ports() as (up, down):
        r = support.invoke(["probe", f"127.0.0.1:{up},{down}", "localhost:1"])
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["target", "address", "state", "attempts", "connect", "resolve", "total", "error"]
    assert lines[1].split()[:3] == [f"127.0.0.1:{up}", "127.0.0.1", "open"]
    assert lines[2].split()[2] == "closed" and lines[2].endswith("connection refused")
    assert lines[-1] == "3 targets: 1 open, 2 failed"
    assert all(line == line.rstrip() for line in lines)


def test_80_column_terminal_keeps_targets_and_errors_whole() -> None:
    """At 80 columns Rich cut every target to '127.0.0.…' and the error to 'connecti…'."""
    with ports() as (up, down):
        _, screen, _ = support.netkit_on_a_terminal("probe", f"127.0.0.1:{down}", f"127.0.0.1:{up}")
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "")
    assert "…" not in text, text
    assert f"127.0.0.1:{up}" in text and f"127.0.0.1:{down}" in text, text
    assert "connection" in text and "refused" in text
    assert max(len(line) for line in text.splitlines()) <= 80, text


def test_bad_lines_name_the_file_and_line_and_urls_get_a_hint(tmp_path: Path) -> None:
    f = tmp_path / "targets.txt"
    f.write_text("127.0.0.1:22\n# a comment\n\nhttp://localhost:8080/health\n")
    r = support.invoke(["probe", "--targets-file", str(f)])
    assert r.exit_code == 2 and r.stdout == ""
    assert f"{f}:4: invalid target 'http://localhost:8080/health': a URL is not a target; give HOST:PORT, " \
           "e.g. localhost:8080" in r.stderr
    url = support.invoke(["probe", "https://example.test"])
    assert url.exit_code == 2 and "IPv6" not in url.stderr and "e.g. example.test:443" in url.stderr
    piped = support.invoke(["probe", "-"], input="127.0.0.1:1\nnohost\n")
    assert piped.exit_code == 2 and "stdin:2: invalid target 'nohost': no port" in piped.stderr


def test_silent_udp_port_is_open_filtered_not_up() -> None:
    """Exit status and JSON unchanged (open|filtered passes); the summary line says what it is."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        table = support.invoke(["probe", "--udp", target, "--timeout", "200ms"])
        js = support.invoke(["probe", "--udp", target, "--timeout", "200ms", "--format", "json"])
    finally:
        silent.close()
    assert table.exit_code == 0 and js.exit_code == 0
    assert table.stdout.splitlines()[-1] == "1 target: 0 open, 1 open|filtered (no reply), 0 failed"
    assert "up" not in table.stdout.splitlines()[-1]
    assert js.json()["summary"] == {"total": 1, "open": 0, "failed": 0, "success_rate": 1.0}


def test_repeat_off_a_terminal_logs_every_round_including_the_last() -> None:
    with ports() as (up, _down):
        r = support.invoke(["probe", f"127.0.0.1:{up}", "--repeat", "3", "--interval", "10ms"])
    assert r.exit_code == 0
    assert [line for line in r.stderr.splitlines() if line.startswith("round")] == [
        "round 1/3: 1/1 up", "round 2/3: 1/1 up", "round 3/3: 1/1 up"]
    assert r.stdout.splitlines()[-1] == "1 target, 3/3 rounds: 1 open, 0 failed; success 100 %"


def _screen_text(screen: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "")


def test_retries_show_progress_on_a_terminal() -> None:
    """``--retries`` on a failing target: the terminal shows what is going on long before the end."""
    with ports() as (_up, down):
        code, screen, _ = support.netkit_on_a_terminal("probe", f"127.0.0.1:{down}", "--retries", "2",
                                                       "--backoff", "700ms", "--backoff-factor", "1")
    text = _screen_text(screen)
    assert code == 1
    assert "probing: 0/1 done, 0 up" in text
    assert f"attempt 1 of 3 failed: 127.0.0.1:{down} closed, connection refused; retrying" in text
    assert text.rstrip().splitlines()[-1] == "1 target: 0 open, 1 failed"


def test_repeat_rounds_on_the_live_line_not_as_new_lines() -> None:
    with ports() as (up, _down):
        code, screen, _ = support.netkit_on_a_terminal("probe", f"127.0.0.1:{up}", "--repeat", "4",
                                                       "--interval", "300ms")
    text = _screen_text(screen)
    assert code == 0
    assert "round 2/4: 1/1 done" in text
    assert "round 1/4: 1/1 up" not in text  # the log lines are for a pipe
    assert text.rstrip().splitlines()[-1] == "1 target, 4/4 rounds: 1 open, 0 failed; success 100 %"


def test_retries_leave_a_name_that_does_not_resolve_as_the_help_says() -> None:
    """``--retries 2`` on a name that does not resolve makes one attempt (the README's table said so,
    ``--help`` did not)."""
    res = support.invoke(["probe", "no-such-host.invalid:80", "--retries", "2", "--backoff", "10ms",
                          "--format", "json"])
    assert res.exit_code == 1
    assert [(t["state"], t["attempts"]) for t in res.json()["targets"]] == [("dns-error", 1)]
    helped = support.invoke(["probe", "--help"]).stdout
    assert "a dns-error only with --wait" in " ".join(helped.split())
