"""Golden text of ``netkit selftest``'s table at 80 columns and piped (hand-made rows), and the
``--only`` validation a user meets first."""

from __future__ import annotations

from pathlib import Path

import pytest
import support
from golden_support import golden_pair

from netkit.core.selftest_models import CheckResult
from netkit.render.output import Output
from netkit.render.selftest import banner, selftest_table
from netkit.selftest.runner import check_names

CHECKS = [
    CheckResult("tcp echo", True, "1.85 Gbit/s", "64 MiB echoed intact"),
    CheckResult("udp echo", True, "20/20 replies", "payloads intact"),
    CheckResult("tls", True, "TLSv1.3", "ephemeral self-signed certificate, handshake and echo"),
    CheckResult("latency udp", True, "20/20 replies, p50 52 us", "netkit reflector, per-direction loss 0/0"),
    CheckResult("latency icmp", True, "", "icmp needs root or net.ipv4.ping_group_range", skipped=True),
    CheckResult("trace udp", True, "1 hop, 5/5 replies, p50 0.063 ms",
                "no privilege: answers from the udp socket's error queue"),
    CheckResult("throughput tcp", False, "0 bit/s", "server refused the session: connection reset by peer"),
    CheckResult("monitor /metrics", True, "4,951 bytes scraped", "success open=1 closed=0, packets sent=3 lost=0"),
]


def test_selftest_table(monkeypatch: pytest.MonkeyPatch) -> None:
    def draw(out: Output) -> None:
        out.print(selftest_table(CHECKS, width=out.width))

    tty, piped = golden_pair(monkeypatch, "selftest", draw)
    assert tty.count("netkit selftest") == 1
    for c in CHECKS:
        assert c.check in tty and c.result in tty
    assert piped.splitlines()[1].split() == ["check", "result", "figure", "detail"]


def test_check_names_are_the_modules() -> None:
    names = check_names()
    assert names == sorted(names) and {"tcp", "udp", "monitor", "latency"} <= set(names)
    assert banner(("udp",)) == "netkit selftest: running udp against netkit's own servers on 127.0.0.1"


def test_only_names_are_validated_and_listed_in_help() -> None:
    r = support.invoke(["selftest", "--only", "bogus"])
    assert r.exit_code == 2 and r.stdout == ""
    assert "bogus" in r.stderr and all(name in r.stderr for name in check_names())
    r = support.invoke(["selftest", "--help"])
    assert r.exit_code == 0 and all(name in r.stdout for name in check_names())


def test_selftest_says_its_banner_once_and_prints_the_table() -> None:
    r = support.invoke(["selftest", "--only", "udp"])
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count("netkit selftest") == 1 and r.stdout.count("netkit selftest") == 1
    assert r.stdout.splitlines()[0] == "netkit selftest" and "udp echo" in r.stdout


def test_on_a_terminal_the_banner_shows_once(tmp_path: Path) -> None:
    """In a real terminal (tmux, 80 columns) the final screen says "netkit selftest" once."""
    import os
    import shlex
    import shutil
    import subprocess

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    session = f"netkit-selftest-{os.getpid()}"
    done = tmp_path / "done"
    cmd = " ".join(shlex.quote(a) for a in support.netkit_cmd("selftest", "--only", "udp", "--no-color"))
    # The pane's size, not the size a tmux server started from pytest inherited (COLUMNS=80).
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in support.clean_env().items() if k in ("PATH", "PYTHONPATH"))

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                              timeout=10, check=True).stdout

    try:
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "30",
                        f"env -u COLUMNS -u LINES {env} {cmd}; touch {shlex.quote(str(done))}; sleep 30"],
                       check=True, timeout=10)
        support.wait_until(done.exists, timeout=60, interval=0.1)
        final = screen()
        assert final.count("netkit selftest") == 1, final
        assert "udp echo" in final and "pass" in final
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=10)


def test_tcp_checks_read_as_every_table_does() -> None:
    """No Python repr ('Message received') in a human column; times and rates through core.units."""
    import re

    r = support.invoke(["--format", "json", "selftest", "--only", "tcp"])
    assert r.exit_code == 0, r.stderr
    rows = {c["check"]: c for c in r.json()["checks"]}
    reply = rows["tcp reply"]
    assert re.fullmatch(r"\d+\.\d{3} ms|\d[\d,.]* ms", reply["figure"]), reply
    assert reply["detail"].startswith('reply "Message received", connect '), reply
    assert re.search(r"connect \d+\.\d{3} ms$", reply["detail"]), reply
    assert re.search(r"\d+(\.\d+)? [kMGT]?bit/s$", rows["tcp echo integrity"]["figure"]), rows


@pytest.mark.parametrize(("typed", "hint"), [("tcp-echo", "'tcp'"), ("thro", "'throughput'"), ("ltency", "'latency'")])
def test_a_mistyped_check_gets_a_did_you_mean(typed: str, hint: str) -> None:
    r = support.invoke(["selftest", "--only", typed])
    assert r.exit_code == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("netkit: ") and lines[0].endswith(f"Did you mean {hint}?")
    assert lines[1] == "Try 'netkit selftest --help' for help."


def test_help_says_the_exit_status_and_shows_examples() -> None:
    r = support.invoke(["selftest", "--help"])
    assert r.exit_code == 0
    assert "Exit status: 0 no check failed, 1 a check failed" in r.stdout
    assert "netkit selftest --only tcp --only throughput" in r.stdout
