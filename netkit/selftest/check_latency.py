"""Selftest rows for ``measure latency``: udp against netkit's reflector, tcp-connect, icmp."""

from __future__ import annotations

import socket

from netkit.core.errors import RuntimeFailure
from netkit.core.latency_models import LatencyConfig, Method, ReflectorKind, TargetResult
from netkit.core.targets import Target
from netkit.core.units import format_ns_as_ms
from netkit.io.measure.latency import measure_latency
from netkit.io.servers.reflector_server import ReflectorServer
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 40
COUNT = 20


def _figure(r: TargetResult) -> str:
    p50 = r.stats.p50
    return f"{r.acc.received}/{r.acc.sent} replies" + ("" if p50 is None else f", p50 {format_ns_as_ms(p50)}")


async def run(env: SelftestEnv) -> list[CheckResult]:
    rows: list[CheckResult] = []
    cfg = LatencyConfig(method=Method.UDP, count=COUNT, interval_s=0.002, timeout_s=1.0)
    server = ReflectorServer(env.host, 0)
    server.start()
    try:
        r = (await measure_latency([Target(*server.address)], cfg))[0]
    finally:
        server.close()
    ok = r.acc.received == COUNT and r.reflector is ReflectorKind.NETKIT and r.acc.lost_forward == 0
    rows.append(CheckResult("latency udp", ok, _figure(r),
                            "netkit reflector, per-direction loss 0/0" if ok else (r.error or "replies missing")))

    with socket.socket() as ls:
        ls.bind((env.host, 0))
        ls.listen(64)
        cfg = LatencyConfig(method=Method.TCP_CONNECT, count=COUNT, interval_s=0.002, timeout_s=1.0)
        r = (await measure_latency([Target(env.host, ls.getsockname()[1])], cfg))[0]
    ok = r.acc.received == COUNT
    rows.append(CheckResult("latency tcp-connect", ok, _figure(r), "" if ok else (r.error or "replies missing")))

    cfg = LatencyConfig(method=Method.ICMP, count=COUNT, interval_s=0.002, timeout_s=1.0)
    try:
        r = (await measure_latency([Target(env.host, 0)], cfg))[0]
    except RuntimeFailure as exc:
        rows.append(CheckResult("latency icmp", True, "", str(exc), skipped=True))
        return rows
    ok = r.acc.received == COUNT
    detail = "kernel timestamps" if r.kernel_timestamps else "user-space timestamps"
    rows.append(CheckResult("latency icmp", ok, _figure(r), detail if ok else (r.error or "replies missing")))
    return rows
