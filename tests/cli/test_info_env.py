"""The scripting section's promises about ``NETKIT_*`` variables, checked on ``netkit info``."""

from __future__ import annotations

import json

import support


def test_command_option_from_the_environment() -> None:
    r = support.invoke(["info", "traffic", "-c", "1", "-i", "50ms", "--format", "jsonl"],
                       env={"NETKIT_INFO_TRAFFIC_INTERFACE": "lo"})
    assert r.exit_code == 0, r.stderr
    assert [row["interface"] for row in r.jsonl()] == ["lo"]


def test_command_line_wins_over_the_environment() -> None:
    r = support.invoke(["info", "traffic", "-c", "1", "-i", "50ms", "--format", "jsonl", "--interface", "lo"],
                       env={"NETKIT_INFO_TRAFFIC_INTERFACE": "no-such-if0"})
    assert r.exit_code == 0, r.stderr


def test_quiet_from_the_environment() -> None:
    r = support.invoke(["info", "interfaces"], env={"NETKIT_QUIET": "1"})
    assert r.exit_code == 0 and r.stdout == ""


def test_global_format_from_the_environment() -> None:
    r = support.invoke(["info", "interfaces"], env={"NETKIT_FORMAT": "json"})
    assert r.exit_code == 0
    assert "interfaces" in json.loads(r.stdout)
