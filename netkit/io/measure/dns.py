"""``netkit measure dns``: ask every server every name, ``count`` rounds, and keep each query.

Queries go out one at a time (a resolver benchmark: no query waits behind another's answer), round
by round: each round asks each server each name, then waits ``interval_s``. Each query ends within
``timeout_s`` (``netkit.io.clients.dns_exchange``). SIGINT/SIGTERM/SIGHUP stop the run at once (a query
under way is dropped, not counted) and the result holds what was measured.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from netkit.core.dns_config import DnsConfig, Transport
from netkit.core.dns_result import DnsQuery, DnsResult, summarize
from netkit.core.dns_wire import query_name
from netkit.io.clients.dns_exchange import DohPool, Ignored, query_once
from netkit.io.clock import DEFAULT_CLOCK, Clock


async def measure_dns_async(cfg: DnsConfig, *, stop: asyncio.Event | None = None,
                            sink: Callable[[DnsQuery], None] | None = None,
                            ssl_ctx: ssl.SSLContext | None = None, clock: Clock = DEFAULT_CLOCK) -> DnsResult:
    """The run as a coroutine: ``sink`` gets each query as it ends (the jsonl stream)."""
    stop = stop or asyncio.Event()
    ignored = Ignored()
    queries: list[DnsQuery] = []
    start = clock.now_ns()
    pool = DohPool()  # one DoH connection per server, kept across the run as a stub resolver keeps it
    try:
        await _rounds(cfg, stop, sink, ssl_ctx, clock, ignored, queries, pool)
    finally:
        pool.close()
    rows = tuple(summarize(s.label, n, [q for q in queries if q.server == s.label and q.name == n])
                 for s in cfg.servers for n in cfg.names)
    return DnsResult(qtype=cfg.qtype, transport=cfg.transport.value, edns_size=cfg.edns_size, rows=rows,
                     queries=tuple(queries), ignored=dict(ignored.counts), elapsed_ns=clock.now_ns() - start,
                     interrupted=stop.is_set())


async def _rounds(cfg: DnsConfig, stop: asyncio.Event, sink: Callable[[DnsQuery], None] | None,
                  ssl_ctx: ssl.SSLContext | None, clock: Clock, ignored: Ignored, queries: list[DnsQuery],
                  pool: DohPool) -> None:
    seq = 0
    for rnd in range(cfg.count):
        if rnd and cfg.interval_s > 0:
            try:
                await asyncio.wait_for(stop.wait(), cfg.interval_s)
            except asyncio.TimeoutError:
                pass
        for server in cfg.servers:
            for name in cfg.names:
                if stop.is_set():
                    break
                work = asyncio.ensure_future(query_once(
                    seq=seq, host=server.host, port=server.port, label=server.label, name=name,
                    qname=query_name(name, cfg.qtype), qtype=cfg.qtype, transport=cfg.transport.value,
                    timeout_s=cfg.timeout_s, edns_size=cfg.edns_size, ignored=ignored, ssl_ctx=ssl_ctx,
                    server_hostname=cfg.tls_server_name, doh=cfg.doh, doh_get=cfg.doh_get, doh_pool=pool,
                    clock=clock))
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if not work.done():  # stopped mid-query: it is not counted (neither answered nor lost)
                    work.cancel()
                    break
                q = work.result()
                seq += 1
                queries.append(q)
                if sink is not None:
                    sink(q)
        if stop.is_set():
            break


def measure_dns(cfg: DnsConfig, *, sink: Callable[[DnsQuery], None] | None = None, insecure: bool = False,
                cafile: str | None = None) -> DnsResult:
    """The run, stopped early (with what was measured) by SIGINT/SIGTERM/SIGHUP."""
    import signal

    from netkit.io.aio import StopSignal, run

    ssl_ctx = None
    if cfg.transport in (Transport.TLS, Transport.HTTPS):
        from netkit.io.tls import client_context

        ssl_ctx = client_context(insecure=insecure, cafile=cafile)
        if cfg.tls_server_name is None:
            ssl_ctx.check_hostname = False  # asked by address: the certificate's chain is still verified
        if cfg.transport is Transport.HTTPS:
            # RFC 8484 recommends HTTP/2; HTTP/1.1 when the server does not offer it (or --http1.1).
            ssl_ctx.set_alpn_protocols(["http/1.1"] if cfg.http1_only else ["h2", "http/1.1"])

    async def main() -> tuple[DnsResult, int | None]:
        stop = asyncio.Event()
        async with StopSignal() as sig:
            watcher = asyncio.ensure_future(sig.wait())
            watcher.add_done_callback(lambda _f: stop.set())
            try:
                result = await measure_dns_async(cfg, stop=stop, sink=sink, ssl_ctx=ssl_ctx)
            finally:
                watcher.cancel()
            return result, sig.signum

    import dataclasses

    result, signum = run(main())
    return dataclasses.replace(result, by_sigint=signum == signal.SIGINT)
