"""On a terminal, ``netkit monitor`` draws a live dashboard on stderr (here: a pseudo-terminal)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time

import support


def test_dashboard_on_a_terminal_and_results_stay_on_stdout() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    target = f"127.0.0.1:{listener.getsockname()[1]}"
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            support.netkit_cmd("monitor", target, "--interval", "0.5s", "--timeout", "100ms", "--rounds", "2",
                               "--listen", "127.0.0.1:0", "--no-color"),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
            env=support.clean_env(COLUMNS="120", TERM="xterm"),
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
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "recent RTTs" in screen and "loss % (window)" in screen and target in screen
    assert "2/2" in screen  # up rounds over the window
    # stdout is a pipe: plain per-round lines and the summary, no dashboard
    text = out.decode()
    assert "recent RTTs" not in text and f"{target} tcp-connect open" in text

