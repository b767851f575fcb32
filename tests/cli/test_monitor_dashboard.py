"""On a terminal, ``netkit monitor`` draws a live dashboard on stderr (here: a pseudo-terminal)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import support


def _run_on_a_terminal(columns: int, *extra: str) -> tuple[int | None, str, str, str]:
    """Two monitor rounds with stderr on a pseudo-terminal COLUMNS wide: (status, screen, stdout, target)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    target = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        status, screen, out = support.netkit_on_a_terminal(
            "monitor", target, "--interval", "0.5s", "--timeout", "100ms", "--rounds", "2",
            "--listen", "127.0.0.1:0", "--no-color", *extra, columns=columns, stdout_too=False, timeout=20)
    finally:
        listener.close()
    return status, screen, out, target


def test_dashboard_on_a_terminal_and_results_stay_on_stdout() -> None:
    returncode, screen, text, target = _run_on_a_terminal(120)
    assert returncode == 0
    assert "RTTs" in screen and "loss % and up over the last 10 rounds" in screen and target in screen
    assert "2/2" in screen  # up rounds over the window
    # stdout is a pipe: plain per-round lines and the summary, no dashboard
    assert "RTTs" not in text and f"{target} tcp-connect open" in text



def test_dashboard_keeps_target_and_method_whole_at_80_columns() -> None:
    returncode, screen, _, target = _run_on_a_terminal(80, "--packets", "5")  # 10 RTTs: more than fit
    assert returncode == 0
    # the names tell the rows apart: the sparkline and the error give way, never these
    assert f"{target}  tcp-connect  open" in screen
    assert "…" not in screen  # the sparkline shows the newest RTTs that fit, not the oldest cut short


def _tmux(*args: str) -> str:
    import subprocess

    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10, check=True).stdout


def _screen_showing(session: str, *needles: str) -> str | None:
    screen = _tmux("capture-pane", "-p", "-t", session)
    return screen if all(n in screen for n in needles) else None


def test_ctrl_c_leaves_a_clean_screen_at_70_columns(tmp_path: Any) -> None:
    """Ctrl-C in a real terminal (tmux, 70 columns): the dashboard is erased, the totals title shows
    once, and the target names were never cut while the dashboard ran."""
    import os
    import shlex
    import shutil
    import subprocess
    import time

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    target = f"127.0.0.1:{listener.getsockname()[1]}"
    session = f"netkit-test-{os.getpid()}"
    cmd = " ".join(shlex.quote(a) for a in support.netkit_cmd(
        "monitor", target, "127.0.0.1:1", "--interval", "300ms", "--timeout", "100ms", "--listen", "127.0.0.1:0",
        "--no-color"))
    # The pane's size, not the size a tmux server started from pytest inherited (COLUMNS=80).
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in support.clean_env().items() if k in ("PATH", "PYTHONPATH"))
    try:
        _tmux("new-session", "-d", "-s", session, "-x", "70", "-y", "30",
              f"env -u COLUMNS -u LINES {env} {cmd}; sleep 30")
        live = support.wait_until(lambda: _screen_showing(session, "loss % and up", "2/2"), timeout=15,
                                  interval=0.1)
        assert target in live and "127.0.0.1:1 " in live and "closed" in live and "…" not in live
        _tmux("send-keys", "-t", session, "C-c")
        support.wait_until(lambda: _screen_showing(session, "totals since start"), timeout=15, interval=0.1)
        time.sleep(0.2)
        final = _tmux("capture-pane", "-p", "-t", session)
        assert "loss % and up" not in final  # the live dashboard was erased
        assert final.count("netkit monitor: totals since start") == 1
        assert target in final
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=10)
        listener.close()
