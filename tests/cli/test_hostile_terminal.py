"""Hostile bytes from peers never reach the user's terminal as anything but inert text.

A peer sends terminal escape sequences (OSC window title, clear screen, colours, the one-byte C1
CSI), Rich markup (``[bold]x[/bold]``, ``oops [/]``, which raises MarkupError when parsed),
control characters and bidi overrides. netkit shows such bytes in: ``serve udp`` datagram
previews, ``send tcp --format json`` replies, ``probe --expect`` mismatch errors, ``probe --tls``
certificate fields, and ``info connections`` process names. Each is run twice: with pipes (no
ESC byte at all may appear) and under a pseudo-terminal with colour on (Rich may colour its own
output, but none of the peer's sequences may appear, and the markup must show literally).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import support

Record = Callable[[str, object], None]

# What a hostile peer sends. Each forbidden sequence below must never appear in netkit's output.
HOSTILE = ("\x1b]0;PWNED\x07\x1b[2J\x1b[38;5;199mRED \u009b31m [bold]x[/bold] oops [/] \u202eevil\u202c "
           "bell\x07 bs\x08 nul\x00 [link=file:///etc/passwd]click[/link] end")
HOSTILE_BYTES = HOSTILE.encode() + b" raw\x9b1m\xff"
FORBIDDEN = [b"\x1b]0;PWNED", b"\x1b[2J", b"\x1b[38;5;199m", "\u009b".encode(), b"\x9b1m", b"\x07", b"\x08",
             b"\x00", "\u202e".encode(), b"\x1b]8;"]
LITERAL_MARKUP = [b"[bold]x[/bold]", b"oops [/]"]
COLS = 400


def check_inert(output: bytes, *, tty: bool, expect_markup: bool = True) -> None:
    """No peer escape reaches the output; markup shows literally; nothing raised MarkupError."""
    for seq in FORBIDDEN:
        assert seq not in output, f"peer sequence {seq!r} reached the output: {output[-1500:]!r}"
    if not tty:
        assert b"\x1b" not in output, f"an ESC byte reached piped output: {output[-1500:]!r}"
    assert b"MarkupError" not in output and b"Traceback" not in output, output[-2000:]
    if expect_markup:
        for lit in LITERAL_MARKUP:
            assert lit in output, f"{lit!r} not shown literally in {output[-1500:]!r}"


def pty_env() -> dict[str, str]:
    env = support.clean_env(TERM="xterm-256color", COLUMNS=str(COLS), LINES="50")
    env.pop("NO_COLOR", None)
    return env


class PtyProc:
    """A netkit subprocess whose stdout and stderr are one pseudo-terminal (what a person sees)."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLS, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=pty_env(),
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                                     close_fds=True)
        os.close(slave)
        self.buf = b""

    def read_until(self, needle: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while needle not in self.buf and time.monotonic() < deadline:
            self._pump(0.05)
        return needle in self.buf

    def _pump(self, wait: float) -> bool:
        r, _, _ = select.select([self.master], [], [], wait)
        if not r:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.buf += data
        return True

    def finish(self, timeout: float = 15) -> tuple[int, bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = self._pump(0.05)
            if self.proc.poll() is not None and not alive:
                break
            if self.proc.poll() is not None:
                while self._pump(0.05) and time.monotonic() < deadline:
                    pass
                break
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait(5)
        os.close(self.master)
        return code, self.buf


def run_pty(args: list[str], timeout: float = 30) -> tuple[int, bytes]:
    p = PtyProc(support.netkit_cmd(*args))
    return p.finish(timeout)


def run_pipes(args: list[str], timeout: float = 30) -> tuple[int, bytes]:
    r = subprocess.run(support.netkit_cmd(*args), capture_output=True, timeout=timeout, env=support.clean_env(),
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def hostile_tcp_peer(banner: bytes = HOSTILE_BYTES) -> contextlib.AbstractContextManager[int]:
    """Answers every connection with the hostile bytes, half-closes, drains, then closes."""

    def answer(c: socket.socket) -> None:
        c.settimeout(1)
        c.sendall(banner)
        c.shutdown(socket.SHUT_WR)
        while c.recv(4096):
            pass

    return support.tcp_peer(answer)


MODES = [pytest.param(False, id="pipes"), pytest.param(True, id="pty")]


# ----- serve udp: datagram previews -------------------------------------------------------------

@pytest.mark.parametrize("tty", MODES)
def test_hostile_serve_udp_preview(tty: bool, record_property: Record) -> None:
    args = ["serve", "udp", "--port", "0", "--preview", "1000"]
    if tty:
        p = PtyProc(support.netkit_cmd(*args))
        assert p.read_until(b"listening on", 15), p.buf
        port = int(p.buf.split(b"listening on ")[1].split(b"\r")[0].split(b"\n")[0].rsplit(b":", 1)[1])
    else:
        server = support.start_netkit_server(*args)
        port = server.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(HOSTILE_BYTES, ("127.0.0.1", port))
    if tty:
        assert p.read_until(b"end", 10), p.buf
        p.proc.send_signal(signal.SIGINT)
        code, out = p.finish()
    else:
        assert server.proc.stdout is not None
        ready, _, _ = select.select([server.proc.stdout], [], [], 10)  # the datagram's line, flushed
        assert ready, "no line for the datagram"
        first = server.proc.stdout.readline().decode(errors="replace")
        code, stdout, stderr = server.stop()
        out = (first + stdout + stderr).encode()
        assert "datagrams" in stdout
    record_property("held", f"serve udp (show), output to {'a terminal' if tty else 'pipes'}")
    record_property("injected", "a datagram of escapes, markup, control chars, bidi, invalid UTF-8")
    record_property("result", f"exit {code}; preview inert")
    assert code == 0
    check_inert(out, tty=tty)


# ----- send tcp: the reply --------------------------------------------------------------------------

@pytest.mark.parametrize("tty", MODES)
def test_hostile_send_tcp_json_reply(tty: bool, record_property: Record) -> None:
    with hostile_tcp_peer() as port:
        args = ["--format", "json", "send", "tcp", "--wait", "1s", f"127.0.0.1:{port}", "hi"]
        code, out = run_pty(args) if tty else run_pipes(args)
    record_property("held", "send tcp --format json")
    record_property("injected", "hostile reply")
    record_property("result", f"exit {code}; reply escaped in JSON")
    assert code == 0, out
    check_inert(out, tty=tty)
    if not tty:
        doc = json.loads(out[: out.rindex(b"}") + 1])
        assert "\\x1b" in doc["reply"] and "[bold]x[/bold]" in doc["reply"]


def test_hostile_send_tcp_raw_reply_to_terminal(record_property: Record) -> None:
    """In table format the reply goes raw to a pipe (binary safe), but a terminal must get it escaped."""
    with hostile_tcp_peer() as port:
        code, out = run_pty(["send", "tcp", "--wait", "1s", f"127.0.0.1:{port}", "hi"])
        _, piped = run_pipes(["send", "tcp", "--wait", "1s", f"127.0.0.1:{port}", "hi"])
    record_property("held", "send tcp, table format, stdout a terminal")
    record_property("injected", "hostile reply")
    assert HOSTILE_BYTES in piped, "piped output stays binary-safe (like nc)"
    assert code == 0
    check_inert(out, tty=True)


# ----- probe: banners and certificate fields ----------------------------------------------------

@pytest.mark.parametrize("tty", MODES)
def test_hostile_probe_banner_mismatch(tty: bool, record_property: Record) -> None:
    with hostile_tcp_peer() as port:
        args = ["probe", "--expect", "^SSH-", "--timeout", "1s", f"127.0.0.1:{port}"]
        code, out = run_pty(args) if tty else run_pipes(args)
        jcode, jout = run_pipes(["--format", "json", *args])
    record_property("held", "probe --expect ^SSH- (table and json)")
    record_property("injected", "hostile banner")
    record_property("result", f"exit {code}; state mismatch; banner shown escaped")
    assert code == 1 and jcode == 1
    check_inert(out, tty=tty, expect_markup=False)  # the table may cut the banner; it must not interpret it
    check_inert(jout, tty=False, expect_markup=False)
    assert json.loads(jout)["targets"][0]["state"] == "mismatch"


def _hostile_cert(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate whose subject and issuer fields carry the hostile text."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "\x1b]0;PWNED\x07[bold]x[/bold]"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "oops [/] \x1b[2J\u202eevil"),
    ])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "hostile.pem", tmp / "hostile.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("tty", MODES)
def test_hostile_probe_tls_certificate_fields(tty: bool, tmp_path: Path, record_property: Record) -> None:
    cert, key = _hostile_cert(tmp_path)
    with support.netkit_server("serve", "tcp", "--tls", "--cert", str(cert), "--key", str(key),
                               "--port", "0") as server:
        args = ["-v", "probe", "--tls", "--cafile", str(cert), "--timeout", "2s", f"localhost:{server.port}"]
        code, out = run_pty(args) if tty else run_pipes(args)
        jcode, jout = run_pipes(["--format", "json", "probe", "--tls", "--cafile", str(cert), "--timeout", "2s",
                                 f"localhost:{server.port}"])
    record_property("held", "probe --tls against a certificate with hostile subject/issuer")
    record_property("injected", "escapes and markup in CN and O")
    record_property("result", f"exit {code}; subject shown inert")
    assert code == 0 and jcode == 0, out[-1500:]
    check_inert(out, tty=tty)  # the TLS table (-v) shows subject and issuer: literally, escaped
    assert b"PWNED" in out
    check_inert(jout, tty=False, expect_markup=False)
    tls = json.loads(jout)["targets"][0]["tls"]
    assert "[bold]x[/bold]" in json.dumps(tls)


# ----- info connections: process names ----------------------------------------------------------

@pytest.mark.parametrize("tty", MODES)
def test_hostile_info_process_name(tty: bool, record_property: Record) -> None:
    """A local process may name itself anything (prctl PR_SET_NAME): the table shows it inert."""
    comm = "\x1b[2J[bold]x\x07"  # 15 bytes at most
    code = (
        "import ctypes, socket, sys, time\n"
        "libc = ctypes.CDLL(None)\n"
        f"libc.prctl(15, ctypes.c_char_p({comm.encode()!r}), 0, 0, 0)\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
        "print(s.getsockname()[1], flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        args = ["info", "connections", "--port", str(port)]
        rc, out = run_pty(args) if tty else run_pipes(args)
        jrc, jout = run_pipes(["--format", "json", *args])
    finally:
        child.kill()
        child.wait(5)
    record_property("held", "info connections (table and json)")
    record_property("injected", "a process named ESC[2J[bold]x BEL")
    record_property("result", f"exit {rc}; name shown inert")
    assert rc == 0 and jrc == 0, out[-1500:]
    check_inert(out, tty=tty, expect_markup=False)
    assert b"[bold]x" in out
    assert b"\x1b[2J" not in jout


@pytest.mark.parametrize("tty", MODES)
def test_hostile_info_interface_name(tty: bool, record_property: Record) -> None:
    """Interface names may hold ESC and brackets: ``info interfaces`` shows them inert (own namespace)."""
    support.require_root_netns()
    ns = f"nkhostile-{os.getpid()}-{int(time.monotonic_ns() % 10**6)}"
    ifname = "\x1b[2J[bold]x"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        made = subprocess.run(["ip", "-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", "nkpeer0"],
                              capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"the kernel refused the interface name: {made.stderr.decode(errors='replace')}")
        for dev in (ifname, "nkpeer0"):
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True, capture_output=True)
        args = ["info", "interfaces"]
        prefix = ["ip", "netns", "exec", ns]
        if tty:
            p = PtyProc([*prefix, *support.netkit_cmd(*args)])
            rc, out = p.finish(30)
        else:
            r = subprocess.run([*prefix, *support.netkit_cmd(*args)], capture_output=True, timeout=30,
                               env=support.clean_env(), stdin=subprocess.DEVNULL)
            rc, out = r.returncode, r.stdout + r.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    record_property("held", "info interfaces in a namespace")
    record_property("injected", "an interface named ESC[2J[bold]x")
    record_property("result", f"exit {rc}; name shown inert")
    assert rc == 0, out[-1500:]
    check_inert(out, tty=tty, expect_markup=False)
    assert b"[bold]x" in out


def test_hostile_probe_tls_json_fields_escaped(tmp_path: Path) -> None:
    from netkit.core.escape import is_safe

    cert, key = _hostile_cert(tmp_path)
    with support.netkit_server("serve", "tcp", "--tls", "--cert", str(cert), "--key", str(key),
                               "--port", "0") as server:
        r = support.run_netkit(["--format", "json", "probe", "--tls", "--cafile", str(cert), "--timeout", "2s",
                                f"localhost:{server.port}"])
    tls = r.json()["targets"][0]["tls"]
    assert is_safe(tls["subject"]) and is_safe(tls["issuer"]), tls


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_hostile_machine_formats_carry_no_escape(fmt: str, record_property: Record) -> None:
    """csv and jsonl are printed as they are: the banner inside them must not carry a raw ESC."""
    with hostile_tcp_peer() as port:
        code, out = run_pipes(["--format", fmt, "probe", "--expect", "^SSH-", "--timeout", "1s",
                               f"127.0.0.1:{port}"])
    record_property("held", f"probe --expect --format {fmt}")
    record_property("injected", "hostile banner")
    record_property("result", f"exit {code}; no raw control byte")
    assert code == 1
    check_inert(out, tty=False, expect_markup=False)


def hostile_udp_peer() -> contextlib.AbstractContextManager[int]:
    """Answers every datagram with the hostile bytes."""
    return support.udp_peer(lambda _data: HOSTILE_BYTES)


@pytest.mark.parametrize("tty", MODES)
def test_hostile_send_udp_json_replies(tty: bool, record_property: Record) -> None:
    with hostile_udp_peer() as port:
        args = ["--format", "json", "send", "udp", "--wait", "500ms", f"127.0.0.1:{port}", "hi"]
        code, out = run_pty(args) if tty else run_pipes(args)
    record_property("held", "send udp --wait --format json")
    record_property("injected", "hostile datagram reply")
    record_property("result", f"exit {code}; replies escaped in JSON")
    assert code == 0, out[-1500:]
    check_inert(out, tty=tty)
