"""Selftest row for ``measure loss``: a paced stream to netkit's reflector loses nothing on loopback."""

from __future__ import annotations

from netkit.core.latency_models import LossConfig
from netkit.core.targets import Target
from netkit.core.units import format_count, format_rate
from netkit.io.measure.loss import measure_loss
from netkit.io.servers.reflector_server import ReflectorServer
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 41


async def run(env: SelftestEnv) -> list[CheckResult]:
    rate, duration = 2000.0, 0.25 if env.quick else 1.0
    server = ReflectorServer(env.host, 0)
    server.start()
    try:
        r = await measure_loss(Target(*server.address), LossConfig(rate_pps=rate, duration_s=duration,
                                                                   timeout_s=0.5))
    finally:
        server.close()
    a = r.acc
    achieved = r.achieved_pps or 0.0
    ok = a.sent == round(rate * duration) and a.lost == 0 and a.lost_forward == 0 and a.lost_return == 0
    figure = f"{format_count(a.received)}/{format_count(a.sent)} at {format_rate(achieved, 'pps')}"
    return [CheckResult("loss udp", ok, figure,
                        f"lost {a.lost} (forward {a.lost_forward}, return {a.lost_return})")]
