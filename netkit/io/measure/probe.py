"""Probing targets with asyncio: connect (TCP or UDP), optional TLS and banner checks, retries.

One coroutine per target, at most ``concurrency`` at a time, results in input order. Each
attempt is bounded by ``--timeout`` and by the run's deadline; the delay between attempts comes
from :class:`netkit.core.backoff.RetryPlan` (pure, tested with a fake clock).

Hostnames resolve once per host and family (a shared cache), not once per attempt; only in
``--wait`` mode does a failed lookup get retried, because a container's peer name often appears
in DNS only when that container starts.

For large plain-connect scans :mod:`netkit.io.measure.scan` does the same job without asyncio's
per-connection overhead.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netkit.core.backoff import RetryPlan
from netkit.core.probe_models import (
    SELF_CONNECT_ERROR,
    ProbeAttempt,
    ProbeOptions,
    ProbeResult,
    ProbeState,
    TlsInfo,
    classify_errno,
    mismatch_words,
    ns_to_ms,
    same_endpoint,
)
from netkit.core.targets import Target, format_host_port, is_ip_literal
from netkit.io.clock import DEFAULT_CLOCK, Clock
from netkit.io.resolve import PORT_UNREACHABLE, Resolved, ResolveError, resolve_all

NS = 1_000_000_000
MAX_REPLY = 64 * 1024
DEFAULT_UDP_PAYLOAD = b"netkit probe\n"


def is_self_connect(sock: socket.socket) -> bool:
    """True when a connected TCP socket is connected to itself: probing a port of this host's own
    ephemeral range, a connect can pick that port as its source and "open" with nobody listening."""
    try:
        return same_endpoint(sock.getsockname(), sock.getpeername())
    except OSError:
        return False


def _linger_close(sock: socket.socket) -> None:
    """Close a connected probe socket with an RST: a scanner leaves no TIME_WAIT behind."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    sock.close()


class Resolver:
    """Resolves each (host, family) once; concurrent askers share one lookup."""

    def __init__(self, family: int, timeout_s: float, *, cache_failures: bool = True) -> None:
        self.family = family
        self.timeout_s = timeout_s
        self.cache_failures = cache_failures
        self._cache: dict[str, asyncio.Future[list[Resolved]]] = {}

    async def resolve(self, host: str, sock_type: int = socket.SOCK_STREAM,
                      timeout_s: float | None = None) -> list[Resolved]:
        """Addresses of ``host``; ``timeout_s`` (the time left before the deadline) caps the lookup."""
        fut = self._cache.get(host)
        if fut is None:
            limit = self.timeout_s if timeout_s is None else max(0.001, min(self.timeout_s, timeout_s))
            fut = asyncio.ensure_future(resolve_all(host, 0, family=self.family, type=sock_type, timeout=limit))
            self._cache[host] = fut
        try:
            return await asyncio.shield(fut)
        except ResolveError:
            if not self.cache_failures and self._cache.get(host) is fut:
                del self._cache[host]
            raise


@functools.lru_cache(maxsize=8)
def _client_context(insecure: bool, cafile: str | None) -> ssl.SSLContext:
    from netkit.io.tls import client_context

    return client_context(insecure=insecure, cafile=cafile)


def tls_context_for(opts: ProbeOptions) -> ssl.SSLContext:
    """The client context of ``opts`` (made once per setting); a bad ``--cafile`` raises InputError."""
    return _client_context(opts.tls_insecure, opts.tls_cafile)


def with_port(resolved: Resolved, port: int) -> tuple[Any, ...]:
    sa = resolved.sockaddr
    return (sa[0], port, *sa[2:])


def _describe_tls(sslobj: ssl.SSLObject | ssl.SSLSocket, verified: bool) -> TlsInfo:
    from netkit.io.tls import describe_peer

    cipher = sslobj.cipher()
    peer = describe_peer(sslobj)
    return TlsInfo(
        protocol=sslobj.version(),
        cipher=cipher[0] if cipher else None,
        subject=peer.subject if peer else None,
        issuer=peer.issuer if peer else None,
        not_after=peer.not_after if peer else None,
        days_left=round(peer.days_left, 3) if peer else None,
        verified=verified,
        fingerprint_sha256=peer.fingerprint_sha256 if peer else None,
    )


async def _read_until(reader: asyncio.StreamReader, pattern: re.Pattern[str] | None,
                      timeout_s: float) -> tuple[bool, bytes, str | None]:
    """Read until ``pattern`` matches the decoded reply, EOF, 64 KiB, or the timeout.

    Returns (matched, bytes read, why it stopped when it did not match).
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    buf = b""
    while len(buf) < MAX_REPLY:
        if pattern is not None and pattern.search(buf.decode("utf-8", "replace")):
            return True, buf, None
        left = end - loop.time()
        if left <= 0:
            return False, buf, f"no matching reply within {timeout_s:g}s"
        try:
            chunk = await asyncio.wait_for(reader.read(MAX_REPLY - len(buf)), left)
        except asyncio.TimeoutError:
            return False, buf, f"no matching reply within {timeout_s:g}s"
        except (ConnectionError, OSError) as exc:
            return False, buf, f"read failed: {exc.strerror or exc}"
        if not chunk:
            break
        buf += chunk
    if pattern is not None and pattern.search(buf.decode("utf-8", "replace")):
        return True, buf, None
    return False, buf, "the peer closed the connection" if len(buf) < MAX_REPLY else "reply too long"


async def _tcp_attempt(host: str, addr: Resolved, port: int, opts: ProbeOptions, timeout_s: float,
                       clock: Clock) -> ProbeAttempt:
    loop = asyncio.get_running_loop()
    address = addr.address
    sock = socket.socket(addr.family, socket.SOCK_STREAM)
    sock.setblocking(False)
    start = clock.now_ns()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, with_port(addr, port)), timeout_s)
    except asyncio.TimeoutError:
        sock.close()
        return ProbeAttempt(ProbeState.TIMEOUT, address, None, f"no answer within {timeout_s:g}s")
    except OSError as exc:
        sock.close()
        state, words = classify_errno(exc.errno or 0, exc.strerror)
        return ProbeAttempt(state, address, None, words)
    except BaseException:
        sock.close()
        raise
    connect_ns = clock.now_ns() - start
    if is_self_connect(sock):
        _linger_close(sock)
        return ProbeAttempt(ProbeState.CLOSED, address, None, SELF_CONNECT_ERROR)
    if opts.plain_connect:
        _linger_close(sock)
        return ProbeAttempt(ProbeState.OPEN, address, connect_ns, None)
    left = max(0.001, timeout_s - connect_ns / NS)
    return await _session(host, sock, address, connect_ns, opts, left)


async def _session(host: str, sock: socket.socket, address: str, connect_ns: int, opts: ProbeOptions,
                   timeout_s: float) -> ProbeAttempt:
    """TLS handshake and/or send/expect over a connected socket (which this closes)."""
    from netkit.io.tls import tls_error_message

    tls_info: TlsInfo | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        if opts.tls:
            ctx = tls_context_for(opts)
            try:
                reader, stream = await asyncio.wait_for(
                    asyncio.open_connection(sock=sock, ssl=ctx, server_hostname=host,
                                            ssl_handshake_timeout=timeout_s),
                    timeout_s,
                )
            except asyncio.TimeoutError:
                return ProbeAttempt(ProbeState.TLS_ERROR, address, connect_ns,
                                    f"TLS handshake timed out after {timeout_s:g}s")
            except (ssl.SSLError, ConnectionError, EOFError, OSError) as exc:
                return ProbeAttempt(ProbeState.TLS_ERROR, address, connect_ns, tls_error_message(exc))
            writer = stream
            sslobj = stream.get_extra_info("ssl_object")
            tls_info = _describe_tls(sslobj, ctx.verify_mode != ssl.CERT_NONE)
            if (opts.min_cert_days is not None and tls_info.days_left is not None
                    and tls_info.days_left < opts.min_cert_days):
                return ProbeAttempt(ProbeState.TLS_ERROR, address, connect_ns,
                                    f"certificate expires in {tls_info.days_left:.1f} days "
                                    f"(fewer than {opts.min_cert_days:g})", tls_info)
        else:
            reader, stream = await asyncio.open_connection(sock=sock)
            writer = stream
        if opts.send is not None:
            stream.write(opts.send)
            try:
                await asyncio.wait_for(stream.drain(), timeout_s)
            except (asyncio.TimeoutError, ConnectionError, OSError) as exc:
                return ProbeAttempt(ProbeState.MISMATCH if opts.expect else ProbeState.CLOSED, address,
                                    connect_ns, f"send failed: {exc}", tls_info)
        if opts.expect is not None:
            matched, buf, why = await _read_until(reader, opts.expect, timeout_s)
            if not matched:
                return ProbeAttempt(ProbeState.MISMATCH, address, connect_ns,
                                    mismatch_words(opts.expect, buf, why), tls_info)
        return ProbeAttempt(ProbeState.OPEN, address, connect_ns, None, tls_info)
    finally:
        if writer is not None:
            writer.transport.abort()
        else:
            sock.close()


async def _udp_attempt(addr: Resolved, port: int, opts: ProbeOptions, timeout_s: float,
                       clock: Clock) -> ProbeAttempt:
    """Send one datagram and wait for any reply; ICMP port unreachable comes back as ECONNREFUSED."""
    loop = asyncio.get_running_loop()
    address = addr.address
    sock = socket.socket(addr.family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        start = clock.now_ns()
        try:
            sock.connect(with_port(addr, port))  # connected: the kernel reports ICMP errors to us
            await loop.sock_sendall(sock, opts.send if opts.send is not None else DEFAULT_UDP_PAYLOAD)
            data = await asyncio.wait_for(loop.sock_recv(sock, MAX_REPLY), timeout_s)
        except asyncio.TimeoutError:
            return ProbeAttempt(ProbeState.OPEN_FILTERED, address, None, f"no reply within {timeout_s:g}s")
        except ConnectionRefusedError:
            return ProbeAttempt(ProbeState.CLOSED, address, None, PORT_UNREACHABLE)
        except OSError as exc:
            state, words = classify_errno(exc.errno or 0, exc.strerror)
            return ProbeAttempt(state, address, None, words)
        rtt = clock.now_ns() - start
        if opts.expect is not None and not opts.expect.search(data.decode("utf-8", "replace")):
            return ProbeAttempt(ProbeState.MISMATCH, address, rtt, mismatch_words(opts.expect, data, None))
        return ProbeAttempt(ProbeState.OPEN, address, rtt, None)
    finally:
        sock.close()


def _target_text(target: Target) -> str:
    return format_host_port(target.host, target.port)


@dataclass
class TargetProber:
    """Probes targets under one options set and one deadline, sharing a resolver cache."""

    opts: ProbeOptions
    clock: Clock = DEFAULT_CLOCK
    rng: Callable[[], float] = field(default_factory=lambda: random.Random().random)
    start_ns: int | None = None
    resolver: Resolver | None = None
    #: called after every attempt (the --wait progress line reads it)
    on_attempt: Callable[[Target, int, ProbeAttempt], None] | None = None

    def __post_init__(self) -> None:
        if self.start_ns is None:
            self.start_ns = self.clock.now_ns()
        if self.resolver is None:
            self.resolver = Resolver(self.opts.family, self.opts.resolve_timeout_s,
                                     cache_failures=not self.opts.retry_dns)

    @property
    def plan(self) -> RetryPlan:
        assert self.start_ns is not None
        # Retrying until the deadline (--wait): the last attempt gets a short window before it.
        last_call = min(int(self.opts.timeout_s * NS), NS // 4) if self.opts.retries is None else None
        return RetryPlan(self.opts.backoff, self.opts.retries, self.start_ns + int(self.opts.deadline_s * NS),
                         last_call)

    async def _attempt(self, target: Target, addrs: list[Resolved], plan: RetryPlan) -> ProbeAttempt:
        """Try each address in preference order; the first that opens wins, else the first failure.

        Each address gets ``--timeout``, cut at the deadline; none starts once it has passed.
        """
        first: ProbeAttempt | None = None
        for addr in addrs:
            timeout_ns = plan.attempt_timeout_ns(int(self.opts.timeout_s * NS), self.clock.now_ns())
            if timeout_ns <= 0 and first is not None:
                break
            timeout_s = max(timeout_ns, 1_000_000) / NS
            if self.opts.udp:
                att = await _udp_attempt(addr, target.port, self.opts, timeout_s, self.clock)
            else:
                att = await _tcp_attempt(target.host, addr, target.port, self.opts, timeout_s, self.clock)
            if att.state.ok:
                return att
            if first is None:
                first = att
        assert first is not None
        return first

    async def probe(self, target: Target) -> ProbeResult:
        """Probe one target with retries; never raises for network outcomes."""
        plan = self.plan
        opts = self.opts
        assert self.resolver is not None
        begin = self.clock.now_ns()
        attempts = 0
        addrs: list[Resolved] | None = None
        resolve_ns: int | None = None
        last = ProbeAttempt(ProbeState.TIMEOUT, None, None, "the deadline passed before the first attempt")
        if begin >= plan.deadline_ns:
            return self._result(target, last, 0, None, None, begin)
        while True:
            attempts += 1
            if addrs is None:
                try:
                    sock_type = socket.SOCK_DGRAM if opts.udp else socket.SOCK_STREAM
                    left_s = (plan.deadline_ns - self.clock.now_ns()) / NS
                    addrs = await self.resolver.resolve(target.host, sock_type, left_s)
                    resolve_ns = None if is_ip_literal(target.host) else addrs[0].resolve_ns
                except ResolveError as exc:
                    last = ProbeAttempt(ProbeState.DNS_ERROR, None, None, exc.reason)
            if addrs is not None:
                now = self.clock.now_ns()
                timeout_ns = plan.attempt_timeout_ns(int(opts.timeout_s * NS), now)
                if timeout_ns <= 0:
                    attempts -= 1
                    break
                last = await self._attempt(target, addrs, plan)
            if self.on_attempt is not None:
                self.on_attempt(target, attempts, last)
            if not opts.retryable(last.state):
                break
            now = self.clock.now_ns()
            nxt = plan.next_attempt_ns(attempts, now, self.rng)
            if nxt is None:
                break
            # uvloop's timers run off a cached loop time and can fire a little early: top up, so
            # no retry starts before its scheduled time.
            while now < nxt:
                await asyncio.sleep((nxt - now) / NS)
                now = self.clock.now_ns()
        return self._result(target, last, attempts, last.connect_ns, resolve_ns, begin)

    def _result(self, target: Target, att: ProbeAttempt, attempts: int, connect_ns: int | None,
                resolve_ns: int | None, begin: int) -> ProbeResult:
        return ProbeResult(
            target=_target_text(target),
            host=target.host,
            port=target.port,
            address=att.address,
            state=att.state,
            attempts=attempts,
            connect_ms=ns_to_ms(connect_ns),
            resolve_ms=ns_to_ms(resolve_ns),
            elapsed_ms=ns_to_ms(self.clock.now_ns() - begin) or 0.0,
            error=att.error,
            tls=att.tls,
        )


async def probe_many(
    targets: Sequence[Target],
    opts: ProbeOptions,
    *,
    on_result: Callable[[int, ProbeResult], None] | None = None,
    prober: TargetProber | None = None,
) -> list[ProbeResult]:
    """Probe every target, at most ``opts.concurrency`` at once; results in input order."""
    prober = prober or TargetProber(opts)
    results: list[ProbeResult | None] = [None] * len(targets)
    indices = iter(range(len(targets)))

    async def worker() -> None:
        for i in indices:
            res = await prober.probe(targets[i])
            results[i] = res
            if on_result is not None:
                on_result(i, res)

    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, min(opts.concurrency, len(targets))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
    return [r for r in results if r is not None]


async def probe_one(target: Target, opts: ProbeOptions) -> ProbeResult:
    """One target (the library's simplest entry point)."""
    return await TargetProber(opts).probe(target)


def probe_sync(target: Target, opts: ProbeOptions) -> ProbeResult:
    """Blocking twin of :func:`probe_one`."""
    from netkit.io.aio import run

    return run(probe_one(target, opts))
