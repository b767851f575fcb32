"""``netkit trace --pmtu``: the path MTU and where it drops (to be built)."""

from __future__ import annotations

import asyncio

from netkit.core.trace_hops import HopTable
from netkit.core.trace_models import PmtuResult, TraceConfig


async def discover_pmtu(address: str, cfg: TraceConfig, table: HopTable, stop: asyncio.Event) -> PmtuResult:
    """The path MTU to ``address`` after the trace found its hops (``table``)."""
    return PmtuResult(mtu=None, first_mtu=None)
