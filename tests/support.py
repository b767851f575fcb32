"""Helpers shared by the test suite (import as ``import support``).

Nothing here sleeps and hopes: waits poll a condition until a deadline.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

READY = re.compile(r"listening on (\[?[0-9a-fA-F:.]+\]?|[^\s:]+):(\d+)")


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01,
               what: str | None = None) -> Any:
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes (then fail, naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not met within {timeout}s")
        time.sleep(interval)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def require_tool(name: str) -> str:
    import pytest  # here, not at the top: bench/ imports this module (through netns_chain) without pytest

    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def require_root_netns() -> None:
    import pytest

    if not is_root():
        pytest.skip("needs root for network namespaces")
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.skip("needs iproute2 and unshare")


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for TCP and UDP alike right now, for tools that cannot bind port 0 (iperf3,
    whose UDP tests listen on the same number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(family) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
            with socket.socket(family, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((host, port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free for both TCP and UDP")


def tcp_listening(port: int, proc_net_tcp: str | None = None) -> bool:
    """Does a socket listen on TCP ``port``? Read from the kernel's table (``/proc/net/tcp`` text,
    this namespace's by default), not by connecting: ``iperf3 --one-off`` takes a probe as its client."""
    if proc_net_tcp is None:
        with open("/proc/net/tcp") as f:
            proc_net_tcp = f.read()
    hexport = f":{port:04X} "
    return any(hexport in line and line.split()[3] == "0A" for line in proc_net_tcp.splitlines()[1:])


@contextmanager
def iperf3_one_off(host: str = "127.0.0.1") -> Iterator[tuple[int, Callable[[], dict[str, Any]]]]:
    """A real ``iperf3 -s -J --one-off`` on a free loopback port: yields (port, report), where
    ``report()`` waits for the server to finish its one test and returns its JSON ``end`` object."""
    require_tool("iperf3")
    port = free_tcp_port(host)
    proc = subprocess.Popen(["iperf3", "-s", "-J", "--one-off", "-B", host, "-p", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def report() -> dict[str, Any]:
        out, _ = proc.communicate(timeout=15)
        doc = json.loads(out)
        assert "error" not in doc, doc.get("error")
        return doc["end"]  # type: ignore[no-any-return]

    try:
        wait_until(lambda: tcp_listening(port), timeout=5)
        yield port, report
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def netkit_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "netkit", *args]


def clean_env(**extra: str) -> dict[str, str]:
    # Not PYTHONDONTWRITEBYTECODE: every netkit a test starts would compile netkit from source again.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NETKIT_") and k not in ("FORCE_COLOR", "PYTHONDONTWRITEBYTECODE")}
    env.update(extra)
    return env


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    ready_line: str

    @property
    def addr(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> tuple[int, str, str]:
        """Signal the server and return (exit status, stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(errors="replace"), self.ready_line + err.decode(errors="replace")


def _preexec_default_sigint() -> None:
    # Background jobs of a non-interactive shell ignore SIGINT, and children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_netkit_server(*args: str, timeout: float = 10.0, env: dict[str, str] | None = None,
                        prefix: Sequence[str] = ()) -> Server:
    """Start ``netkit <args>`` and wait for its ``listening on HOST:PORT`` line on stderr.

    ``prefix`` runs it under another command, e.g. ``("ip", "netns", "exec", NS)``.
    """
    proc = subprocess.Popen(
        [*prefix, *netkit_cmd(*args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env or clean_env(),
        preexec_fn=_preexec_default_sigint,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode(errors="replace")
        if not line:
            break
        seen.append(line)
        m = READY.search(line)
        if m:
            host = m.group(1).strip("[]")
            return Server(proc, host, int(m.group(2)), "".join(seen))
    proc.kill()
    _, err = proc.communicate()
    raise AssertionError(f"server did not become ready: {''.join(seen)}{err.decode(errors='replace')}")


@contextmanager
def netkit_server(*args: str, **kw: Any) -> Iterator[Server]:
    server = start_netkit_server(*args, **kw)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate(timeout=10)


def netkit_on_a_terminal(*args: str, columns: int = 80, stdout_too: bool = True,
                         timeout: float = 30.0) -> tuple[int | None, str, str]:
    """``netkit ARGS`` with stderr (and, with ``stdout_too``, stdout) on a pseudo-terminal
    ``columns`` wide: (exit status, what the terminal showed, what went to a piped stdout)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(netkit_cmd(*args), stdin=subprocess.DEVNULL,
                                stdout=slave if stdout_too else subprocess.PIPE, stderr=slave,
                                env=clean_env(COLUMNS=str(columns), LINES="40", TERM="xterm"))
        os.close(slave)
        slave = -1
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
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
    return proc.returncode, b"".join(chunks).decode(errors="replace"), (out or b"").decode(errors="replace")


def stop_summary(server: Server) -> dict[str, Any]:
    """Stop a ``--format json`` server with SIGINT: it must exit 0 without a traceback; its summary."""
    code, out, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err
    return json.loads(out)  # type: ignore[no-any-return]


def server_rss_mb(server: Server) -> float:
    """The server process's resident memory in MiB."""
    import psutil

    return psutil.Process(server.proc.pid).memory_info().rss / (1 << 20)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    # The child's own peak resident set in KiB, when the runner measured it (run_netkit_measured).
    peak_rss_kib: int | None = None

    def json(self) -> Any:
        return json.loads(self.stdout)

    def jsonl(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def run_netkit(args: Sequence[str], input: str | bytes | None = None, timeout: float = 60.0,
               env: dict[str, str] | None = None) -> CliResult:
    """Run netkit as a real subprocess and return its exit status and both streams."""
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        netkit_cmd(*args), input=data, capture_output=True, timeout=timeout, env=env or clean_env(),
        stdin=None if data is not None else subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))


#: Runs a command and writes its own peak resident set (KiB) to argv[1]; its exit status is the command's.
_PEAK_RSS_WRAPPER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_netkit_measured(args: Sequence[str], timeout: float = 60.0) -> CliResult:
    """Run netkit as a real subprocess and also report that child's own peak resident memory.

    Linux starts a process's peak RSS at its parent's when it forks and execs, so a child of this
    test process (hundreds of MB in a long xdist worker) would show the worker's size. A small Python
    in between launches netkit and reads netkit's own peak with wait4."""
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as peak:
        proc = subprocess.Popen([sys.executable, "-c", _PEAK_RSS_WRAPPER, peak.name, *netkit_cmd(*args)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=clean_env(), start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        text = peak.read().strip()
        return CliResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                         peak_rss_kib=int(text) if text else None)


def invoke(args: Sequence[str], input: str | bytes | None = None, env: dict[str, str] | None = None) -> CliResult:
    """Run netkit in-process through Click's CliRunner, with netkit's own exit-code mapping."""
    from click.testing import CliRunner

    from netkit.cli import main as main_mod

    runner = CliRunner()

    class _Shim:
        # CliRunner calls cli.main(...); route through run() for netkit's error mapping.
        name = "netkit"

        def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **_: Any) -> None:
            sys.exit(main_mod.run(list(args or []), prog_name=prog_name or "netkit"))

    result = runner.invoke(_Shim(), list(args), input=input, env=env, catch_exceptions=False)  # type: ignore[arg-type]
    return CliResult(result.exit_code, result.stdout, result.stderr)


def open_fds() -> set[int]:
    """File descriptors of this process (for leak checks)."""
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def inet_sockets() -> list[Any]:
    import psutil

    return psutil.Process().net_connections(kind="inet")


def recv_exact(c: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from ``c``; ConnectionError if the peer closes first."""
    data = b""
    while len(data) < n:
        chunk = c.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"the peer closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_request_head(c: socket.socket, buf: bytearray | None = None) -> bytes | None:
    """One HTTP request head (through its blank line) read from ``c``; None if the peer closed
    first. Bytes read past it stay in ``buf`` for the next call (a keep-alive peer)."""
    buf = bytearray() if buf is None else buf
    while b"\r\n\r\n" not in buf:
        chunk = c.recv(4096)
        if not chunk:
            return None
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end])
    del buf[:end]
    return head


@contextmanager
def tcp_peer(handler: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback TCP listener that runs ``handler`` on each accepted connection in a thread.

    Yields the port. For peers that misbehave on purpose (resets, floods, hostile banners).
    """
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)
    lst.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = lst.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(5)

            def run(c: socket.socket = conn) -> None:
                try:
                    handler(c)
                except OSError:
                    pass
                finally:
                    c.close()

            threading.Thread(target=run, daemon=True).start()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        yield lst.getsockname()[1]
    finally:
        stop.set()
        th.join(5)
        lst.close()


@contextmanager
def udp_server(handle: Callable[[socket.socket, bytes, tuple[str, int]], None],
               poll_s: float = 0.2) -> Iterator[int]:
    """A loopback UDP server calling ``handle(sock, datagram, addr)`` for each datagram; its port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(poll_s)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = s.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            handle(s, data, addr)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        yield s.getsockname()[1]
    finally:
        stop.set()
        th.join(5)
        s.close()


@contextmanager
def udp_peer(answer: Callable[[bytes], bytes | None]) -> Iterator[int]:
    """A loopback UDP peer that replies ``answer(datagram)`` (None: stay silent)."""

    def reply(sock: socket.socket, data: bytes, addr: tuple[str, int]) -> None:
        out = answer(data)
        if out is not None:
            try:
                sock.sendto(out, addr)
            except OSError:
                pass

    with udp_server(reply) as port:
        yield port


@dataclass
class NetnsPair:
    """Two namespaces joined by a veth pair: clients in ``a``, servers in ``b`` (addresses in 198.18.0.0/15)."""

    a: str  # client namespace
    b: str  # server namespace
    ip_a: str
    ip_b: str
    veth_a: str
    veth_b: str

    def run(self, ns: str, *argv: str, input: str | None = None, check: bool = True) -> str:
        r = subprocess.run(["ip", "netns", "exec", ns, *argv], input=input, capture_output=True, text=True,
                           timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"{argv}: {r.stderr}")
        return r.stdout

    def netkit(self, *args: str, timeout: float = 60) -> tuple[CliResult, float]:
        """Run netkit in namespace A; return the result and the wall time it took."""
        t0 = time.monotonic()
        p = subprocess.run(["ip", "netns", "exec", self.a, *netkit_cmd(*args)], capture_output=True,
                           timeout=timeout, env=clean_env(), stdin=subprocess.DEVNULL)
        took = time.monotonic() - t0
        return CliResult(p.returncode, p.stdout.decode(errors="replace"),
                                 p.stderr.decode(errors="replace")), took

    def popen_netkit(self, ns: str, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", ns, *netkit_cmd(*args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=clean_env())

    def server(self, *args: str) -> Server:
        """``netkit ARGS`` in namespace B, waiting for its ready line."""
        return start_netkit_server(*args, timeout=15, prefix=("ip", "netns", "exec", self.b))

    @contextmanager
    def iperf3(self, *extra: str, port: int = 5201) -> Iterator[int]:
        """``iperf3 -s`` in namespace B on ``port`` (nothing else listens in a fresh namespace);
        yields the port once the kernel's table shows it listening."""
        require_tool("iperf3")
        proc = subprocess.Popen(["ip", "netns", "exec", self.b, "iperf3", "-s", *extra, "-B", self.ip_b,
                                 "-p", str(port)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: tcp_listening(port, self.run(self.b, "cat", "/proc/net/tcp")), timeout=10)
            yield port
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)

    def nft(self, ruleset: str) -> None:
        self.run(self.b, "nft", "-f", "-", input=ruleset)

    def nft_dropped(self) -> int:
        """Packets dropped by the counters of namespace B's ruleset."""
        out = self.run(self.b, "nft", "list", "ruleset")
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", out))


@contextmanager
def netns_pair(ping_group_a: bool = True) -> Iterator[NetnsPair]:
    """Make a fresh namespace pair (unique names, RFC 2544 test addresses); delete it, and kill what ran inside."""
    require_root_netns()
    tag = uuid.uuid4().hex[:6]
    a, b = f"nk-a-{os.getpid()}-{tag}", f"nk-b-{os.getpid()}-{tag}"
    va, vb = f"nka{tag}", f"nkb{tag}"
    octet = int(tag[:4], 16) % 250 + 1
    third = 18 + int(tag[4:], 16) % 2
    ip_a, ip_b = f"198.{third}.{octet}.1", f"198.{third}.{octet}.2"
    created: list[str] = []
    try:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
            created.append(ns)
        subprocess.run(["ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b],
                       check=True, capture_output=True)
        for ns, dev, ip in ((a, va, ip_a), (b, vb, ip_b)):
            for cmd in (["addr", "add", f"{ip}/24", "dev", dev], ["link", "set", dev, "up"],
                        ["link", "set", "lo", "up"]):
                subprocess.run(["ip", "-n", ns, *cmd], check=True, capture_output=True)
        if ping_group_a:
            # ICMP datagram sockets for every group, inside A only (the meter's unprivileged path).
            subprocess.run(["ip", "netns", "exec", a, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"],
                           capture_output=True)
        yield NetnsPair(a, b, ip_a, ip_b, va, vb)
    finally:
        for ns in created:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
