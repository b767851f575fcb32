"""Golden text of ``netkit selftest``'s table at 80 columns and piped (hand-made rows), and the
``--only`` validation a user meets first."""

from __future__ import annotations

import pytest
import support
from system_golden import golden_pair

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
