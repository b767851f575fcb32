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
