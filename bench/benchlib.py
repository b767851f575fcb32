"""Shared pieces for bench/ cases: the Row type, the printer, process helpers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@dataclass
class Row:
    """One line of the report. ``ratio`` is netkit / reference (or its inverse where stated)."""

    case: str
    netkit: float | None
    reference: float | None
    unit: str
    note: str = ""
    ratio_of: str = "netkit/reference"

    @property
    def ratio(self) -> float | None:
        if self.netkit is None or not self.reference:
            return None
        return self.netkit / self.reference


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def print_rows(rows: list[Row]) -> None:
    print("case, netkit, reference, ratio, unit, note")
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        print(f"{r.case}, {fmt(r.netkit)}, {fmt(r.reference)}, {ratio}, {r.unit}, {r.note}")


def netkit_argv(*args: str) -> list[str]:
    """The installed entry point when present (what users run), else ``python -m netkit``."""
    exe = shutil.which("netkit", path=os.path.dirname(sys.executable)) or None
    return [exe, *args] if exe else [sys.executable, "-m", "netkit", *args]


def start_server(argv: list[str], ready: str = "listening on", timeout: float = 10.0) -> tuple[subprocess.Popen, str]:
    """Start a server and wait for a line containing ``ready`` on stderr; return (proc, line)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode(errors="replace")
        if not line:
            break
        if ready in line:
            return proc, line.strip()
    proc.kill()
    raise RuntimeError(f"{argv[0]} did not become ready")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_port(host: str, port: int, timeout: float = 5.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{host}:{port} did not open")
