"""Selftest row for ``trace``: the path to loopback is one hop, over udp without privilege.

The answers (Port Unreachable from the destination) come from the socket's error queue
(``IP_RECVERR``), which Linux offers to any user; elsewhere the row is skipped and says why. The
trace engine runs its own selector loop in a thread (``trace_targets``), whatever loop the
selftest runs on.
"""

from __future__ import annotations

import sys

from netkit.core.errors import RuntimeFailure
from netkit.core.targets import Target
from netkit.core.trace_models import TargetTrace, TraceConfig, TraceMethod
from netkit.core.units import format_ns_as_ms
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 45
ROUNDS = 5
ROW = "trace udp"


async def _trace(env: SelftestEnv) -> TargetTrace:
    import asyncio

    from netkit.io.measure.trace import trace_targets

    cfg = TraceConfig(method=TraceMethod.UDP, count=ROUNDS, interval_s=0.01, timeout_s=1.0, max_hops=5,
                      resolve_names=False)
    return (await trace_targets([Target(env.host, 0)], cfg, stop=asyncio.Event()))[0]


async def run(env: SelftestEnv) -> list[CheckResult]:
    if not sys.platform.startswith("linux"):
        return [CheckResult(ROW, True, "", "needs Linux's IP_RECVERR error queues", skipped=True)]
    try:
        trace = await _trace(env)
    except RuntimeFailure as exc:
        return [CheckResult(ROW, True, "", str(exc), skipped=True)]
    dest = trace.destination
    hops = len(trace.hops)
    received = dest.received if dest is not None else 0
    ok = trace.reached and hops == 1 and dest is not None and dest.ttl == 1 and received == ROUNDS
    figure = f"{hops} hop{'s' if hops != 1 else ''}, {received}/{ROUNDS} replies"
    if dest is not None and dest.rtt.p50 is not None:
        figure += f", p50 {format_ns_as_ms(dest.rtt.p50)}"
    detail = "no privilege: answers from the udp socket's error queue" if ok else \
        (trace.error or f"expected 1 hop and {ROUNDS} replies from {env.host}")
    return [CheckResult(ROW, ok, figure, detail)]
