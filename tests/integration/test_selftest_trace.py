"""``netkit selftest --only trace``: the loopback path is one hop, traced without privilege."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import support


def test_trace_row_on_loopback() -> None:
    res = support.run_netkit(["--format", "json", "selftest", "--only", "trace"], timeout=60)
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)["checks"]
    assert [r["check"] for r in rows] == ["trace udp"]
    row = rows[0]
    if not sys.platform.startswith("linux"):
        assert row["result"] == "skip"
        return
    assert row["result"] == "pass" and row["figure"].startswith("1 hop, 5/5 replies"), row


def test_trace_row_as_nobody() -> None:
    """The udp method needs no privilege: the same row passes as nobody."""
    if not support.is_root() or shutil.which("setpriv") is None:
        pytest.skip("needs root (to drop to nobody) and setpriv")
    proc = subprocess.run(
        ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
         *support.netkit_cmd("selftest", "--only", "trace")],
        capture_output=True, text=True, timeout=60, env=support.clean_env(HOME="/tmp"), cwd="/",
    )
    if proc.returncode != 0 and "Permission denied" in proc.stderr:
        pytest.skip(f"nobody cannot read this checkout: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    assert "trace udp  pass    1 hop, 5/5 replies" in proc.stdout, proc.stdout
