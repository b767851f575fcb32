"""TLS contexts for servers and clients, and ephemeral self-signed certificates.

Clients verify certificates by default; ``insecure=True`` is the explicit opt-out (the CLI
prints a warning for it). A server started with ``--tls`` and no certificate gets a fresh
self-signed one (EC P-256, valid one day, SAN for the bound host, localhost and loopback), and
its SHA-256 fingerprint is shown so a client can pin it, as ncat does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from netkit.core.errors import InputError
from netkit.core.escape import safe_text


@dataclass(frozen=True)
class ServerTLS:
    context: ssl.SSLContext
    fingerprint_sha256: str  # colon-separated upper-case hex, as openssl prints it
    ephemeral: bool
    cert_path: Path | None = None


def fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def make_self_signed(host: str = "localhost", days: int = 1) -> tuple[bytes, bytes]:
    """Return (certificate PEM, private key PEM) for a throwaway server identity."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netkit ephemeral")])
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for ip in ("127.0.0.1", "::1"):
        sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
    try:
        addr = ipaddress.ip_address(host)
        if str(addr) not in ("127.0.0.1", "::1"):
            sans.append(x509.IPAddress(addr))
    except ValueError:
        if host and host != "localhost":
            sans.append(x509.DNSName(host))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert_pem, key_pem


def server_context(
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
    *,
    host: str = "localhost",
    keep_cert_at: str | os.PathLike[str] | None = None,
) -> ServerTLS:
    """A server context from ``cert``/``key`` files, or an ephemeral self-signed identity.

    ``keep_cert_at``: write the ephemeral certificate (not the key) there, so a test or a client
    can use it as ``--cafile``.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is None and key is not None:
        raise InputError("--key needs --cert")
    if cert is not None:
        try:
            ctx.load_cert_chain(os.fspath(cert), os.fspath(key) if key is not None else None)
        except FileNotFoundError as exc:
            raise InputError(f"TLS certificate or key not found: {exc.filename}") from None
        except (ssl.SSLError, ValueError) as exc:
            raise InputError(f"cannot load TLS certificate/key: {exc}") from None
        der = ssl.PEM_cert_to_DER_cert(Path(cert).read_text())
        return ServerTLS(ctx, fingerprint(der), ephemeral=False, cert_path=Path(cert))
    cert_pem, key_pem = make_self_signed(host)
    # load_cert_chain only reads files: use a private temporary directory and remove it at once.
    with tempfile.TemporaryDirectory(prefix="netkit-tls-") as tmp:
        cpath, kpath = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cpath.write_bytes(cert_pem)
        fd = os.open(kpath, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cpath, kpath)
    kept = None
    if keep_cert_at is not None:
        kept = Path(keep_cert_at)
        kept.write_bytes(cert_pem)
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
    return ServerTLS(ctx, fingerprint(der), ephemeral=True, cert_path=kept)


def client_context(
    *, insecure: bool = False, cafile: str | os.PathLike[str] | None = None
) -> ssl.SSLContext:
    """Verifying client context (system CAs, or ``cafile``); ``insecure`` turns checks off."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cafile is not None:
        try:
            ctx.load_verify_locations(cafile=os.fspath(cafile))
        except FileNotFoundError:
            raise InputError(f"CA file not found: {cafile}") from None
        except ssl.SSLError as exc:
            raise InputError(f"cannot load CA file {cafile}: {exc}") from None
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(frozen=True)
class PeerCertificate:
    """What a person wants to know about the certificate a server presented."""

    subject: str
    issuer: str
    not_after: str  # ISO 8601, UTC
    days_left: float
    fingerprint_sha256: str


def describe_peer(sslobj: ssl.SSLObject | ssl.SSLSocket, now: dt.datetime | None = None) -> PeerCertificate | None:
    """Parse the peer's certificate (works with verification off too, through the DER form)."""
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        return None
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    now = now or dt.datetime.now(dt.timezone.utc)
    # Subject and issuer are the peer's bytes: escape them here, once, so that no consumer
    # (table, JSON, a script printing a JSON field) can pass a terminal escape along.
    return PeerCertificate(
        subject=safe_text(cert.subject.rfc4514_string()),
        issuer=safe_text(cert.issuer.rfc4514_string()),
        not_after=not_after.isoformat(),
        days_left=(not_after - now).total_seconds() / 86400.0,
        fingerprint_sha256=fingerprint(der),
    )


def tls_error_message(exc: BaseException) -> str:
    """One line for a failed handshake, naming the cause a person can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS verification failed: {exc.verify_message or exc.reason} (use --cafile, or --insecure)"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        if reason in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST"):
            return f"TLS handshake failed: the peer does not speak TLS ({reason})"
        return f"TLS handshake failed: {reason}"
    if isinstance(exc, (ConnectionResetError, EOFError)) or "EOF" in str(exc):
        return "TLS handshake failed: the peer closed the connection"
    return f"TLS handshake failed: {exc}"


__all__ = [
    "PeerCertificate",
    "ServerTLS",
    "client_context",
    "describe_peer",
    "fingerprint",
    "make_self_signed",
    "server_context",
    "tls_error_message",
]
