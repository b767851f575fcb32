"""On a terminal, ``netkit monitor`` draws a live dashboard on stderr (here: a pseudo-terminal)."""

from __future__ import annotations

import socket

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
