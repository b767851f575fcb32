"""Safe defaults: servers bind loopback and say so when exposed; TLS clients verify unless told not to.

Binding all addresses is tried only inside a private network namespace (``unshare -n``), so the
test exposes nothing on this machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import support

Record = Callable[[str, object], None]


@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_hostile_servers_bind_loopback_by_default(kind: str) -> None:
    server = support.start_netkit_server("serve", kind, "--port", "0")
    try:
        assert server.host == "127.0.0.1"
        assert "warning" not in server.ready_line.lower()
    finally:
        code, _, err = server.stop()
    assert code == 0, err


def _serve_in_private_netns(kind: str, host: str) -> str:
    """Start ``serve KIND --host HOST`` inside ``unshare -n`` and return its stderr up to the ready line."""
    support.require_root_netns()
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    script = f"ip link set lo up; exec {sys.executable} -m netkit serve {kind} --host '{host}' --port 0"
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c", script], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=support.clean_env())
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            line = proc.stderr.readline().decode(errors="replace")
            if not line:
                break
            seen.append(line)
            if support.READY.search(line):
                # a warning may come just before or just after the ready line: read what is there
                import select

                while select.select([proc.stderr], [], [], 0.5)[0]:
                    more = proc.stderr.readline().decode(errors="replace")
                    if not more:
                        break
                    seen.append(more)
                break
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    text = "".join(seen)
    assert support.READY.search(text), text
    return text


@pytest.mark.parametrize(("kind", "host"), [("tcp", "0.0.0.0"), ("tcp", "::"), ("udp", "0.0.0.0")])
def test_hostile_servers_warn_when_bound_to_all_addresses(kind: str, host: str, record_property: Record) -> None:
    text = _serve_in_private_netns(kind, host)
    record_property("held", f"serve {kind} --host {host} (inside unshare -n)")
    record_property("injected", "-")
    record_property("result", text.strip().replace("\n", " | ")[:120])
    warning = [ln for ln in text.splitlines() if "warning" in ln.lower()]
    assert warning, f"no warning at start: {text!r}"
    assert any("all" in ln.lower() or host in ln for ln in warning), warning


# ----- TLS: verification on by default ------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_server() -> Iterator[support.Server]:
    """``serve tcp --tls`` with its ephemeral self-signed certificate: not trusted by anyone."""
    with support.netkit_server("serve", "tcp", "--tls", "--port", "0") as server:
        yield server


def test_hostile_send_tls_verifies_by_default(tls_server: support.Server, record_property: Record) -> None:
    r = support.run_netkit(["send", "tcp", "--tls", "--timeout", "3s", "--wait", "1s", tls_server.addr, "hi"])
    record_property("held", "send tcp --tls against a self-signed certificate")
    record_property("injected", "an untrusted certificate")
    record_property("result", f"exit {r.exit_code}: {r.stderr.strip()[:100]}")
    assert r.exit_code == 1, r.stderr
    assert "verif" in r.stderr.lower() or "certificate" in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_hostile_probe_tls_verifies_by_default(tls_server: support.Server) -> None:
    r = support.run_netkit(["--format", "json", "probe", "--tls", "--timeout", "3s", tls_server.addr])
    assert r.exit_code == 1, r.stderr
    t = r.json()["targets"][0]
    assert t["state"] == "tls-error"
    assert "verif" in (t["error"] or "").lower() or "certificate" in (t["error"] or "").lower(), t


@pytest.mark.parametrize("command", [["send", "tcp", "--tls", "--insecure", "--timeout", "3s", "--wait", "1s"],
                                     ["probe", "--tls", "--insecure", "--timeout", "3s"]], ids=["send", "probe"])
def test_hostile_insecure_is_explicit_and_warned(tls_server: support.Server, command: list[str],
                                                 record_property: Record) -> None:
    args = [*command, tls_server.addr] + (["hi"] if command[0] == "send" else [])
    r = support.run_netkit(args)
    record_property("held", f"{' '.join(command[:2 if command[0] == 'send' else 1])} --tls --insecure")
    record_property("injected", "an untrusted certificate, verification turned off")
    record_property("result", f"exit {r.exit_code}; stderr: {r.stderr.strip()[:100]}")
    assert r.exit_code == 0, r.stderr
    warn = [ln for ln in r.stderr.splitlines() if "warning" in ln.lower()]
    assert warn, f"--insecure must print a warning: {r.stderr!r}"
    assert any("verif" in ln.lower() or "insecure" in ln.lower() for ln in warn), warn
    q = support.run_netkit(["-q", *args])
    assert q.exit_code == 0
    assert "warning" in q.stderr.lower(), "the --insecure warning is shown even with -q"


def _self_signed(tmp, name: str = "localhost"):  # type: ignore[no-untyped-def]
    """A self-signed certificate for ``name`` (it is its own CA: pass it as --cafile)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem, key_pem = tmp / "cert.pem", tmp / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert_pem, key_pem


def test_hostile_cafile_trusted_without_warning(tmp_path, record_property: Record) -> None:
    cert_pem, key_pem = _self_signed(tmp_path)
    with support.netkit_server("serve", "tcp", "--tls", "--cert", str(cert_pem), "--key", str(key_pem),
                               "--port", "0") as server:
        r = support.run_netkit(["send", "tcp", "--tls", "--cafile", str(cert_pem), "--timeout", "3s", "--wait", "1s",
                                f"localhost:{server.port}", "hi"])
        wrong = support.run_netkit(["send", "tcp", "--tls", "--cafile", str(cert_pem), "--server-name",
                                    "other.test", "--timeout", "3s", "--wait", "1s", f"localhost:{server.port}", "hi"])
    record_property("held", "send tcp --tls --cafile with the trusted certificate; and a wrong --server-name")
    record_property("injected", "a hostname mismatch")
    record_property("result", f"trusted: exit {r.exit_code}; wrong name: exit {wrong.exit_code}: "
                              f"{wrong.stderr.strip()[:80]}")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "hi"
    assert "warning" not in r.stderr.lower()
    assert wrong.exit_code == 1, wrong.stderr
    assert "Traceback" not in wrong.stderr
