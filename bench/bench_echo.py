"""Echo request/response rate: 64-byte ping-pong, the same C load client against every server.

Servers: ``netkit serve tcp`` (100 connections, 5 s) against a minimal C epoll echo server (the
machine's limit), and against what users run today, ``socat ... fork EXEC:cat`` and
``ncat -l -k --exec /bin/cat``, with 10 connections for 10 s since they fork a process per
connection (netkit is run again at 10 connections for that comparison).

The C sources live next to this file; they are compiled with ``cc -O2`` into a cache directory
(``load_client()`` and ``c_echo_server()`` are reused by later benchmarks).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import HERE, Row, netkit_argv, wait_port

BUILD = Path(os.environ.get("NETKIT_BENCH_BUILD", Path(tempfile.gettempdir()) / "netkit-bench-build"))
SIZE = 64


def compile_c(name: str) -> Path:
    """Compile ``bench/<name>.c`` (once per source change) and return the binary's path."""
    src = HERE / f"{name}.c"
    BUILD.mkdir(parents=True, exist_ok=True)
    out = BUILD / name
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("no C compiler (cc) found")
        # Build beside the target and rename: other benchmarks may run this binary meanwhile.
        tmp = BUILD / f".{name}.{os.getpid()}"
        subprocess.run([cc, "-O2", "-Wall", "-o", str(tmp), str(src)], check=True)
        os.replace(tmp, out)
    return out


def load_client() -> Path:
    return compile_c("echo_load")


def c_echo_server() -> Path:
    return compile_c("echo_epoll")


def run_load(port: int, conns: int, seconds: float, host: str = "127.0.0.1") -> float:
    """Run the C load client; return requests per second."""
    proc = subprocess.run([str(load_client()), host, str(port), str(conns), str(SIZE), str(seconds)],
                          capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"req_per_s=([0-9.]+)", proc.stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"load client failed: {proc.stdout.strip()} {proc.stderr.strip()}")
    return float(m.group(1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Spawned:
    """A server process in its own session (so forked children are stopped with it)."""

    def __init__(self, argv: list[str], ready_port: int | None = None) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        if ready_port is not None:
            self.port = ready_port
            wait_port("127.0.0.1", ready_port)
        else:
            assert self.proc.stderr is not None
            deadline = time.monotonic() + 10
            self.port = 0
            while time.monotonic() < deadline:
                line = self.proc.stderr.readline().decode(errors="replace")
                m = re.search(r"listening on .*:(\d+)$", line.strip())
                if m:
                    self.port = int(m.group(1))
                    break
                if not line:
                    break
            if not self.port:
                self.stop()
                raise RuntimeError(f"{argv[0]} did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # forked children (socat, ncat)
        except ProcessLookupError:
            pass


def measure(argv: list[str], conns: int, seconds: float, fixed_port: bool = False) -> float:
    port = free_port() if fixed_port else None
    argv = [a.replace("{port}", str(port)) for a in argv]
    server = Spawned(argv, ready_port=port)
    try:
        return run_load(server.port, conns, seconds)
    finally:
        server.stop()


NETKIT = [*netkit_argv("serve", "tcp", "--port", "0", "--max-conns", "0")]


ROUNDS = int(os.environ.get("NETKIT_BENCH_ROUNDS", "3"))


def echo_100_conns() -> list[Row]:
    """netkit against the C epoll server: 100 connections, 5 s each.

    The two servers alternate for ROUNDS rounds (C, netkit, C, netkit, ...) and the medians are
    reported, with each round's ratio in the note: on a shared 2-core machine, neighbouring runs
    see similar background load, so the per-round ratios show how much of a gap is noise.
    """
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        return [Row("echo 64B x100 conns 5s: netkit vs C epoll", None, None, "req/s",
                    "skipped: no C compiler (cc) for the load client and the C server")]
    c_runs: list[float] = []
    nk_runs: list[float] = []
    for _ in range(ROUNDS):
        c_runs.append(measure([str(c_echo_server()), "0"], 100, 5))
        nk_runs.append(measure(NETKIT, 100, 5))
    ratios = ", ".join(f"{n / c:.2f}" for n, c in zip(nk_runs, c_runs, strict=True))
    return [Row("echo 64B x100 conns 5s: netkit vs C epoll", statistics.median(nk_runs),
                statistics.median(c_runs), "req/s",
                f"target ratio >= 0.8; median of {ROUNDS} alternating runs; per-round ratios {ratios}")]


def echo_forking_tools() -> list[Row]:
    """netkit against socat and ncat (fork per connection): 10 connections, 10 s each."""
    rows: list[Row] = []
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        return [Row("echo 64B x10 conns 10s: netkit vs socat/ncat", None, None, "req/s",
                    "skipped: no C compiler (cc) for the load client")]
    nk10 = measure(NETKIT, 10, 10)
    socat = shutil.which("socat")
    if socat:
        ref = measure([socat, "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", "EXEC:cat"], 10, 10,
                      fixed_port=True)
        rows.append(Row("echo 64B x10 conns 10s: netkit vs socat fork EXEC:cat", nk10, ref, "req/s"))
    else:
        rows.append(Row("echo 64B x10 conns 10s: netkit vs socat", nk10, None, "req/s", "skipped: socat missing"))
    ncat = shutil.which("ncat")
    if ncat:
        ref = measure([ncat, "-l", "127.0.0.1", "{port}", "-k", "--exec", "/bin/cat"], 10, 10, fixed_port=True)
        rows.append(Row("echo 64B x10 conns 10s: netkit vs ncat -k --exec cat", nk10, ref, "req/s"))
    else:
        rows.append(Row("echo 64B x10 conns 10s: netkit vs ncat", nk10, None, "req/s", "skipped: ncat missing"))
    return rows


CASES = [echo_100_conns, echo_forking_tools]
