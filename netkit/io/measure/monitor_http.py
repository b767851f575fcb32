"""``netkit monitor``'s http targets: one timed request per round (``measure http``'s client, a new
connection each round, so every round measures resolve, connect and TLS as blackbox does), bounded by
the round's budget. The verdict and the metrics are pure (``netkit.core.monitor_http``).
"""

from __future__ import annotations

import time

from netkit.core.http_config import HttpConfig
from netkit.core.monitor_http import http_round
from netkit.core.monitor_models import MonitorTarget, TargetRound
from netkit.io.clock import DEFAULT_CLOCK, Clock
from netkit.io.measure.http import HttpClient

#: Clients by target (their TLS contexts load the CA store once, not every round).
_CLIENTS: dict[tuple[object, ...], HttpClient] = {}
_MAX_CLIENTS = 10_000


def _client(t: MonitorTarget) -> HttpClient:
    assert t.http is not None
    spec = t.http
    timeout = min(t.timeout_s, t.budget_s) if t.timeout_s > 0 else t.budget_s
    key = (spec, timeout)
    client = _CLIENTS.get(key)
    if client is None:
        if len(_CLIENTS) >= _MAX_CLIENTS:
            _CLIENTS.clear()
        cfg = HttpConfig(urls=(spec.url,), count=1, new_connection=True, insecure=spec.insecure,
                         cafile=spec.cafile, timeout_s=timeout, checks=spec.checks)
        client = _CLIENTS[key] = HttpClient(cfg)
    return client


async def http_probe_round(t: MonitorTarget, *, clock: Clock = DEFAULT_CLOCK) -> TargetRound:
    """One request to the target's URL and its checks."""
    assert t.http is not None
    start = clock.now_ns()
    client = _client(t)
    sample, conn = await client.fetch(t.http.url, None, seq=1, start_ns=0)
    if conn is not None:
        conn.dialed.close()
    expiry = None if sample.cert_days_left is None else time.time() + sample.cert_days_left * 86400.0
    return http_round(t, sample, clock.now_ns() - start, expiry, None)


__all__ = ["http_probe_round"]
