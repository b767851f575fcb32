"""``netkit monitor`` command line: usage errors (exit 2) name the option or key; bind failure is exit 3."""

from __future__ import annotations

import socket
from pathlib import Path

import support


def test_help_lists_the_options() -> None:
    res = support.invoke(["monitor", "--help"])
    assert res.exit_code == 0
    for opt in ("--interval", "--method", "--listen", "--textfile", "--config", "--rounds", "--packets",
                "--retries", "--format"):
        assert opt in res.stdout


def test_no_targets_is_a_usage_error() -> None:
    res = support.invoke(["monitor"])
    assert res.exit_code == 2 and "no targets" in res.stderr
    # a command-line mistake reads as every usage error: the reason, then where to read more
    assert res.stderr.splitlines()[1:] == ["Try 'netkit monitor --help' for help."]
    res = support.invoke(["monitor", "127.0.0.1"])
    assert res.stderr.splitlines()[1:] == ["Try 'netkit monitor --help' for help."]


def test_bad_listen_names_the_option() -> None:
    res = support.invoke(["monitor", "127.0.0.1:22", "--listen", "nowhere"])
    assert res.exit_code == 2 and "--listen" in res.stderr


def test_bad_method_and_target() -> None:
    assert support.invoke(["monitor", "127.0.0.1:22", "--method", "http"]).exit_code == 2
    res = support.invoke(["monitor", "127.0.0.1"])
    assert res.exit_code == 2 and "no port" in res.stderr


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    res = support.invoke(["monitor", "--config", str(missing)])
    assert res.exit_code == 2 and f"{missing}: no such file" in res.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[targets]]\ntarget = "127.0.0.1:22"\ninterval = "fast"\n')
    res = support.invoke(["monitor", "--config", str(bad)])
    assert res.exit_code == 2
    assert res.stderr.strip().startswith(f"netkit: {bad}: targets[0].interval: invalid duration")
    assert len(res.stderr.strip().splitlines()) == 1


def test_timeout_not_shorter_than_interval() -> None:
    res = support.invoke(["monitor", "127.0.0.1:22", "--interval", "1s", "--timeout", "2s"])
    assert res.exit_code == 2 and "--timeout: 2.00s must be shorter than the interval" in res.stderr


def test_address_in_use_is_a_runtime_error() -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        res = support.run_netkit(["monitor", "127.0.0.1:1", "--listen", f"127.0.0.1:{port}", "--rounds", "1"],
                                 timeout=30)
    finally:
        busy.close()
    assert res.exit_code == 3
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr and "Traceback" not in res.stderr


def test_unwritable_textfile_is_a_runtime_error(tmp_path: Path) -> None:
    res = support.run_netkit(["monitor", "127.0.0.1:1", "--textfile", str(tmp_path / "no" / "dir" / "x.prom"),
                              "--rounds", "1"], timeout=30)
    assert res.exit_code == 3 and "cannot write" in res.stderr


def test_a_round_that_cannot_hold_its_packets_is_refused_at_load() -> None:
    # 10 packets 20 ms apart plus the 50 ms timeout need 230 ms; a 200 ms interval's round has 180.
    res = support.invoke(["monitor", "127.0.0.1:22", "--interval", "200ms", "--packets", "10"])
    assert res.exit_code == 2
    line, hint = res.stderr.strip().splitlines()  # the reason, then the "Try" line every usage error has
    assert hint == "Try 'netkit monitor --help' for help."
    assert "10 packets 20ms apart plus the 50ms timeout take 230ms: more than the round's 180ms" in line
    res = support.invoke(["monitor", "127.0.0.1:22", "--interval", "1s", "--packet-interval", "300ms",
                          "--timeout", "500ms"])
    assert res.exit_code == 2 and res.stderr.startswith("netkit: --packet-interval: 3 packets 300ms apart")


def test_short_intervals_send_every_packet() -> None:
    # 200 ms and 250 ms rounds used to send 0 and 1 of 3 packets (a Ctrl-C grace was taken out of
    # the round); each round must send all 3, and all 3 are answered on loopback.
    with support.netkit_server("-q", "serve", "udp", "--mode", "echo", "--port", "0") as refl, \
            support.netkit_server("-q", "serve", "tcp", "--port", "0") as echo:
        for method, target in (("udp", refl.addr), ("tcp-connect", echo.addr)):
            for interval in ("200ms", "250ms"):
                res = support.run_netkit(["--format", "jsonl", "monitor", target, "--method", method, "--interval",
                                          interval, "--rounds", "3", "--listen", "127.0.0.1:0"], timeout=30)
                assert res.exit_code == 0, res.stderr
                rounds = [r for r in res.jsonl() if r.get("event") != "summary"]
                assert len(rounds) == 3
                sent = [(t["sent"], t["received"]) for r in rounds for t in r["targets"]]
                assert sent == [(3, 3)] * 3, (method, interval, sent)
                assert "warning" not in res.stderr


def test_status_lines_fit_70_columns_and_name_sighup_only_with_a_config() -> None:
    res = support.run_netkit(["monitor", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--rounds", "1",
                              "--timeout", "0.2s"], timeout=30)
    status = [line for line in res.stderr.splitlines() if line.startswith("netkit monitor:")]
    assert any("listening on 127.0.0.1:" in line and line.endswith("(/metrics)") for line in status), status
    assert "netkit monitor: 1 target; SIGTERM stops" in status  # no --config: SIGHUP has nothing to re-read
    assert all(len(line) <= 70 for line in status), status
