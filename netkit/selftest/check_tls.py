"""Selftest row for ``serve tcp --tls``: echo through TLS, verifying the ephemeral certificate."""

from __future__ import annotations

from netkit.core.serve_models import TcpServerConfig
from netkit.io.servers.tcp_server import TcpServer
from netkit.io.tls import client_context, server_context
from netkit.selftest.base import CheckResult, SelftestEnv
from netkit.selftest.check_tcp import echo_integrity, rate_text

ORDER = 30
TLS_BYTES = 8 * 1024 * 1024


async def run(env: SelftestEnv) -> list[CheckResult]:
    cert_path = env.workdir / "selftest-cert.pem"
    stls = server_context(host=env.host, keep_cert_at=cert_path)
    server = TcpServer(TcpServerConfig(host=env.host, port=0, mode="echo"), tls=stls.context)
    host, port = await server.start()
    try:
        ctx = client_context(cafile=cert_path)  # verified against the ephemeral certificate
        ok, elapsed, _digest = await echo_integrity(host, port, TLS_BYTES, ssl_ctx=ctx, server_hostname=host)
    finally:
        await server.stop()
    return [CheckResult(
        "tls echo", ok, f"{TLS_BYTES >> 20} MiB, {rate_text(2 * TLS_BYTES, elapsed)}",
        f"certificate verified (SHA-256 begins {stls.fingerprint_sha256[:11]}), sha256 "
        f"{'matches' if ok else 'DIFFERS'}",
    )]
