"""Selftest rows for ``probe``: open vs refused with a banner check, retries, and a TLS handshake."""

from __future__ import annotations

import asyncio
import re
import socket

from netkit.core.backoff import Backoff
from netkit.core.probe_models import ProbeOptions, ProbeState
from netkit.core.targets import Target
from netkit.io.measure.probe import probe_many
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 40


async def _banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        writer.write(b"SSH-2.0-netkit-selftest\r\n")
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _plain(env: SelftestEnv) -> CheckResult:
    server = await asyncio.start_server(_banner, env.host, 0)
    refused = socket.socket(socket.AF_INET6 if ":" in env.host else socket.AF_INET)
    try:
        refused.bind((env.host, 0))  # bound, never listening: connects are refused
        up = server.sockets[0].getsockname()[1]
        down = refused.getsockname()[1]
        opts = ProbeOptions(timeout_s=2, retries=2, backoff=Backoff(10_000_000), deadline_s=10,
                            expect=re.compile("^SSH-"))
        res = await probe_many([Target(env.host, up), Target(env.host, down)], opts)
    finally:
        refused.close()
        server.close()
        await server.wait_closed()
    ok = [r.state for r in res] == [ProbeState.OPEN, ProbeState.CLOSED] and res[1].attempts == 3
    figure = f"connect {res[0].connect_ms:.3f} ms" if res[0].connect_ms is not None else ""
    detail = "open + banner, refused after 3 attempts" if ok else "; ".join(
        f"{r.target} {r.state.value} x{r.attempts}: {r.error}" for r in res)
    return CheckResult("probe", ok, figure, detail)


async def _tls(env: SelftestEnv) -> CheckResult:
    from netkit.io.tls import server_context

    cert = env.workdir / "probe-cert.pem"
    tls = server_context(host=env.host, keep_cert_at=cert)
    server = await asyncio.start_server(_banner, env.host, 0, ssl=tls.context)
    try:
        port = server.sockets[0].getsockname()[1]
        opts = ProbeOptions(timeout_s=3, tls=True, tls_cafile=str(cert), min_cert_days=0.5)
        res = (await probe_many([Target(env.host, port)], opts))[0]
    finally:
        server.close()
        await server.wait_closed()
    ok = res.state is ProbeState.OPEN and res.tls is not None and res.tls.verified
    figure = f"{res.tls.protocol}" if res.tls else ""
    detail = f"certificate verified, {res.tls.days_left:.1f} days left" if ok and res.tls and res.tls.days_left \
        else (res.error or res.state.value)
    return CheckResult("probe tls", ok, figure, detail)


async def run(env: SelftestEnv) -> list[CheckResult]:
    return [await _plain(env), await _tls(env)]
