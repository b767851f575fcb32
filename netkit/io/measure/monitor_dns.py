"""``netkit monitor``'s dns targets: one query per round (``netkit.io.clients.dns_exchange``), on the
monitor's event loop; the query ends within the target's timeout, which the config keeps inside the
round's bound."""

from __future__ import annotations

from netkit.core.monitor_dns import dns_round
from netkit.core.monitor_models import MonitorTarget, TargetRound
from netkit.io.clients.dns_exchange import Ignored, query_once
from netkit.io.clock import DEFAULT_CLOCK, Clock


async def dns_probe_round(t: MonitorTarget, *, clock: Clock = DEFAULT_CLOCK) -> TargetRound:
    """A dns target's monitor round: its question asked once, checked."""
    probe = t.dns
    if probe is None:  # pragma: no cover - the config gives every dns target its question
        raise ValueError(f"{t.name}: no dns question")
    start = clock.now_ns()
    host = t.host.strip("[]")
    label = f"[{host}]:{t.port}" if ":" in host else f"{host}:{t.port}"
    ssl_ctx = None
    if probe.transport == "tls":
        from netkit.io.tls import client_context

        ssl_ctx = client_context(insecure=probe.insecure, cafile=probe.cafile)
        if probe.tls_name is None:
            ssl_ctx.check_hostname = False  # asked by address: the chain is still verified
    q = await query_once(seq=0, host=host, port=t.port, label=label, name=probe.query_name, qname=probe.qname,
                         qtype=probe.query_type, transport=probe.transport, timeout_s=t.timeout_s,
                         edns_size=1232, ignored=Ignored(), ssl_ctx=ssl_ctx, server_hostname=probe.tls_name,
                         clock=clock)
    result: TargetRound = dns_round(t, q, clock.now_ns() - start)
    return result
