"""Selftest row for ``measure dns``: queries to an in-process DNS responder, answers and rcodes checked."""

from __future__ import annotations

from netkit.core.dns_config import DnsConfig, DnsServer
from netkit.io.measure.dns import measure_dns_async
from netkit.io.servers.dns_responder import DnsResponder
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 78
COUNT = 10
NAME = "selftest.netkit.test"
ADDRESSES = ("198.18.0.1", "198.18.0.2")


async def run(env: SelftestEnv) -> list[CheckResult]:
    server = DnsResponder({NAME: ADDRESSES}, host=env.host)
    host, port = await server.start()
    try:
        cfg = DnsConfig(names=(NAME, "absent.netkit.test"), servers=(DnsServer(host, port),), count=COUNT,
                        interval_s=0.0, timeout_s=2.0)
        result = await measure_dns_async(cfg)
    finally:
        server.stop()
    present, absent = result.rows
    answers_ok = sorted(present.answers) == sorted(ADDRESSES) and present.rcodes == {"NOERROR": COUNT}
    nx_ok = absent.answered == COUNT and absent.rcodes == {"NXDOMAIN": COUNT}
    ok = present.answered == COUNT and answers_ok and nx_ok
    p50 = present.rtt_ms.get("p50")
    return [CheckResult(
        "dns queries", ok, f"{present.answered + absent.answered}/{2 * COUNT} answered",
        (f"answers and NXDOMAIN as served, p50 {p50:.3f} ms" if ok and p50 is not None
         else f"answers {list(present.answers)}, rcodes {absent.rcodes}"),
    )]
