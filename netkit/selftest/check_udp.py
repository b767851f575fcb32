"""Selftest row for ``serve udp --mode echo``/``send udp``."""

from __future__ import annotations

import os

from netkit.core.send_models import UdpSendConfig
from netkit.core.serve_models import UdpServerConfig
from netkit.io.clients.udp_client import send_udp
from netkit.io.servers.udp_server import UdpServer
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 20
COUNT = 20


async def run(env: SelftestEnv) -> list[CheckResult]:
    server = UdpServer(UdpServerConfig(host=env.host, port=0, mode="echo"))
    host, port = await server.start()
    try:
        payload = os.urandom(64)
        result = await send_udp(UdpSendConfig(host=host, port=port, count=COUNT, interval=0.002, wait=2.0),
                                payload)
    finally:
        server.stop()
    from netkit.core.escape import safe_text

    intact = all(r.reply == safe_text(payload, limit=4096) for r in result.replies)
    ok = result.datagrams_received == COUNT and intact and result.error is None
    return [CheckResult(
        "udp echo", ok, f"{result.datagrams_received}/{COUNT} replies",
        "payloads intact" if intact else "payload DIFFERS" + (f"; {result.error}" if result.error else ""),
    )]
