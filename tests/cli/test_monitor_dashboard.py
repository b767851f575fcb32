"""On a terminal, ``netkit monitor`` draws a live dashboard on stderr (here: a pseudo-terminal)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time

import support


def _run_on_a_terminal(columns: int, *extra: str) -> tuple[int | None, str, str, str]:
    """Two monitor rounds with stderr on a pseudo-terminal COLUMNS wide: (status, screen, stdout, target)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    target = f"127.0.0.1:{listener.getsockname()[1]}"
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            support.netkit_cmd("monitor", target, "--interval", "0.5s", "--timeout", "100ms", "--rounds", "2",
                               "--listen", "127.0.0.1:0", "--no-color", *extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
            env=support.clean_env(COLUMNS=str(columns), TERM="xterm"),
        )
        os.close(slave)
        slave = -1
        chunks: list[bytes] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        out, _ = proc.communicate(timeout=10)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
        listener.close()
    return proc.returncode, b"".join(chunks).decode(errors="replace"), out.decode(), target


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
