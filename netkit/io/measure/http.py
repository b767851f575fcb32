"""``netkit measure http``: timed HTTP requests over netkit's own sockets.

Each request's phases are taken at the socket: the name lookup (``getaddrinfo``, or none for an
address or a ``--resolve`` entry), the TCP and TLS handshakes (:func:`netkit.io.clients.http_conn.dial`),
the request written, the response's first bytes read (``ttfb``) and its end (``transfer``).
HTTP/1.1 is parsed by h11, HTTP/2 by h2 (:mod:`netkit.io.clients.http_conn`). Bodies are counted;
at most :data:`~netkit.core.http_config.BODY_KEEP` bytes are kept (for ``--expect-body``), and a
response head over :data:`~netkit.io.clients.http_conn.MAX_HEAD` is an error. Every request is bounded
by ``--timeout`` as a whole, the run by ``--duration`` (wall clock).

CONCURRENCY workers each keep one connection (reused unless ``--new-connection``) and share the
``--count``; ``--interval`` spaces one worker's request starts.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from netkit.core.errors import InputError
from netkit.core.escape import safe_text
from netkit.core.http_config import BODY_KEEP, HttpConfig, compile_body_regex
from netkit.core.http_result import HttpResult, HttpSample, HttpUrlResult, check_result
from netkit.core.nq_config import HttpUrl, parse_url
from netkit.io.aio import StopSignal, run_until_stopped
from netkit.io.clients.http_conn import (
    MAX_HEAD,
    Dialed,
    H1Protocol,
    HttpError,
    Response,
    _Stream,
    client_ssl_context,
    dial,
)
from netkit.io.tls import client_context, describe_peer, tls_error_message

Sink = Callable[[HttpSample], None]
Take = Callable[[], "int | None"]
_REDIRECTS = (301, 302, 303, 307, 308)


class _Failed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, one line) for a failed request."""
    if isinstance(exc, _Failed):
        return exc.kind, str(exc)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout", "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "reset", "connection reset by the peer"
    if isinstance(exc, ssl.SSLError):
        return "tls", tls_error_message(exc)
    if isinstance(exc, HttpError):
        msg = str(exc)
        if "too long" in msg.lower() or "over 64 KiB" in msg:
            return "protocol", f"the response head is over {MAX_HEAD // 1024} KiB"
        if "closed" in msg:
            return "closed", safe_text(msg)
        return "protocol", safe_text(msg)
    if isinstance(exc, OSError):
        return "other", safe_text(exc.strerror or str(exc))
    return "other", safe_text(str(exc) or type(exc).__name__)


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(asyncio.TimeoutError())


@dataclass
class _Conn:
    dialed: Dialed
    origin: tuple[str, str, int]
    tls_version: str | None
    cipher: str | None
    cert_days: float | None

    def usable(self) -> bool:
        return self.dialed.protocol.accepts_requests() and not self.dialed.transport.is_closing()


class HttpClient:
    """Timed requests by one configuration; one connection per worker (see :meth:`fetch`)."""

    def __init__(self, cfg: HttpConfig) -> None:
        self.cfg = cfg
        self.body_re = compile_body_regex(cfg.checks.expect_body) if cfg.checks.expect_body is not None else None
        self.ssl_ctx: ssl.SSLContext | None = None
        if any(u.tls for u in cfg.urls):
            self.context()  # loading the CAs takes tens of ms: not in the first request's time

    def context(self) -> ssl.SSLContext:
        if self.ssl_ctx is None:
            base = client_context(insecure=self.cfg.insecure, cafile=self.cfg.cafile)
            self.ssl_ctx = client_ssl_context(base, h2=self.cfg.http_version != "1.1")
        return self.ssl_ctx

    async def _resolve(self, url: HttpUrl, timeout_s: float) -> tuple[tuple[int, Any], int]:
        """((family, sockaddr), lookup ns): ``--resolve`` and IP literals need no lookup (0 ns)."""
        host = self.cfg.resolved(url.host, url.port) or url.host
        for fam in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(fam, host)
            except OSError:
                continue
            if self.cfg.family and fam != self.cfg.family:
                raise _Failed("dns", f"{host} is not an IPv{4 if self.cfg.family == socket.AF_INET else 6} address")
            return (fam, (host, url.port) if fam == socket.AF_INET else (host, url.port, 0, 0)), 0
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter_ns()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, url.port, family=self.cfg.family,
                                                            type=socket.SOCK_STREAM), timeout_s)
        except OSError as exc:
            raise _Failed("dns", f"cannot resolve {safe_text(host)}: {exc.strerror or exc}") from None
        t1 = time.perf_counter_ns()
        if not infos:
            raise _Failed("dns", f"cannot resolve {safe_text(host)}")
        return (infos[0][0], infos[0][4]), t1 - t0

    async def _connect(self, url: HttpUrl, timeout_s: float) -> tuple[_Conn, int, int, int]:
        addr, dns_ns = await self._resolve(url, timeout_s)
        try:
            d = await dial(addr, ssl_ctx=self.context() if url.tls else None,
                           server_hostname=url.host if url.tls else None, timeout_s=timeout_s)
        except ssl.SSLError as exc:
            raise _Failed("tls", tls_error_message(exc)) from None
        sslobj = d.transport.get_extra_info("ssl_object")
        cipher = days = None
        if sslobj is not None:
            c = sslobj.cipher()
            cipher = c[0] if c else None
            peer = describe_peer(sslobj)
            days = peer.days_left if peer is not None else None
        conn = _Conn(d, (url.scheme, url.host.lower(), url.port), d.tls_version, cipher, days)
        return conn, dns_ns, d.tcp_ns, d.tls_ns or 0

    def chainable(self, conn: _Conn) -> bool:
        """Whether the next requests may go back to back on ``conn`` (:class:`_Chain`): HTTP/1.1 kept
        alive, no pause between requests, no redirect to follow."""
        cfg = self.cfg
        proto = conn.dialed.protocol
        return (not cfg.new_connection and cfg.interval_s == 0 and cfg.max_redirs == 0
                and isinstance(proto, H1Protocol) and proto.reusable() and not conn.dialed.transport.is_closing())

    def failed(self, seq: int, url_text: str, start_ns: int, exc: BaseException, **extra: Any) -> HttpSample:
        """The sample of a request that failed with ``exc``: its kind, and the words for a timeout."""
        kind, msg = classify(exc)
        if kind == "timeout":
            msg = f"no complete response within {self.cfg.timeout_s:g} s"
        return HttpSample(seq, url_text, start_ns, error_kind=kind, error=msg, **extra)

    def answered(self, seq: int, url_text: str, start_ns: int, st: _Stream, resp: Response, conn: _Conn | None,
                 phases_ns: tuple[int, ...], **extra: Any) -> HttpSample:
        """The sample of a response: status, bytes, protocol, the connection's TLS, the body check."""
        match = None if self.body_re is None else bool(self.body_re.search(resp.body))
        return HttpSample(seq, url_text, start_ns, status=resp.status, bytes=st.nbytes, http_version=st.http_version,
                          tls_version=conn.tls_version if conn else None, cipher=conn.cipher if conn else None,
                          cert_days_left=conn.cert_days if conn else None, body_match=match, phases_ns=phases_ns,
                          **extra)

    async def fetch(self, url: HttpUrl, conn: _Conn | None, *, seq: int, start_ns: int
                    ) -> tuple[HttpSample, _Conn | None]:
        """One request (and its redirects, up to ``--max-redirs``) on ``conn`` when it fits, else a new
        connection; the connection to keep (None: closed). Never raises for a failed request."""
        cfg = self.cfg
        phases = [0] * 7
        redirects = 0
        new = False
        deadline = time.perf_counter_ns() + int(cfg.timeout_s * 1e9)
        method, body = cfg.method, cfg.data
        try:
            while True:
                left = max(0.001, (deadline - time.perf_counter_ns()) / 1e9)
                if conn is not None and (cfg.new_connection or not conn.usable()
                                         or conn.origin != (url.scheme, url.host.lower(), url.port)):
                    conn.dialed.close()
                    conn = None
                if conn is None:
                    conn, dns, tcp, tls = await asyncio.wait_for(self._connect(url, left), left)
                    phases[0] += dns
                    phases[1] += tcp
                    phases[2] += tls
                    new = True
                    left = max(0.001, (deadline - time.perf_counter_ns()) / 1e9)
                assert conn is not None
                t0 = time.perf_counter_ns()
                st = conn.dialed.protocol.request(
                    method, url.scheme, url.authority, url.target, extra_headers=list(cfg.headers),
                    body=body, keep=BODY_KEEP if self.body_re is not None else 0)
                t1 = st.sent_ns or time.perf_counter_ns()  # the request written (h11's bookkeeping may follow)
                # A timer on the response's future rather than wait_for (a task and a future less per
                # request): it ends the wait with TimeoutError at the deadline.
                timer = asyncio.get_running_loop().call_later(left, _expire, st.done)
                try:
                    resp = await st.done
                except BaseException:
                    conn.dialed.close()
                    conn = None
                    raise
                finally:
                    timer.cancel()
                t2 = st.end_ns or time.perf_counter_ns()
                first = st.first_ns or t2
                phases[3] += t1 - t0
                phases[4] += max(0, first - t1)
                phases[5] += max(0, t2 - first)
                hdrs = {k.lower(): v for k, v in st.headers}
                if hdrs.get(b"connection", b"").lower() == b"close":
                    conn.dialed.close()
                    conn = None
                location = hdrs.get(b"location")
                if resp.status in _REDIRECTS and location and redirects < cfg.max_redirs:
                    redirects += 1
                    try:
                        url = parse_url(urljoin(str(url), location.decode("latin-1")), what="redirect")
                    except InputError as exc:
                        raise _Failed("protocol", safe_text(str(exc))) from None
                    if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                        method, body = "GET", None
                    continue
                break
        except (asyncio.CancelledError, KeyboardInterrupt):
            if conn is not None:
                conn.dialed.close()
            raise
        except Exception as exc:  # every failure is a counted error with its kind, never a traceback
            if conn is not None:
                conn.dialed.close()
            return self.failed(seq, str(url), start_ns, exc, new_connection=new, redirects=redirects), None
        # curl's time_total is its phases end to end; ours is their sum, so the work netkit does between
        # them (reading the certificate, following a redirect) is not charged to the server.
        phases[6] = sum(phases[:6])
        sample = self.answered(seq, str(url), start_ns, st, resp, conn, tuple(phases), new_connection=new,
                               redirects=redirects)
        if conn is not None and cfg.new_connection:
            conn.dialed.close()
            conn = None
        return sample, conn


class _Chain:
    """Requests back to back on one kept-alive HTTP/1.1 connection: the next request is written from
    inside the protocol's callback for the end of the previous response, once that response is
    booked: no task wake-up, future or timer per request. The phases are taken exactly as
    :meth:`HttpClient.fetch` takes them. One timer per connection, re-armed to the deadline of the
    request under way only when it fires, bounds each request by ``--timeout``. Ends (its future
    resolves) at the count or the wall clock's end (the connection to keep), or at a failed or
    closing exchange (None: the connection is closed)."""

    def __init__(self, client: HttpClient, url: HttpUrl, conn: _Conn, take: Take, record: Sink,
                 run_t0: int) -> None:
        cfg = client.cfg
        self.client, self.conn, self.take, self.record, self.run_t0 = client, conn, take, record, run_t0
        proto = conn.dialed.protocol
        assert isinstance(proto, H1Protocol)
        self.proto = proto
        self.url_text = str(url)
        self.request_args = (cfg.method, url.scheme, url.authority, url.target)
        self.headers = list(cfg.headers)
        self.body = cfg.data
        self.keep = BODY_KEEP if client.body_re is not None else 0
        self.timeout_ns = int(cfg.timeout_s * 1e9)
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[_Conn | None] = self.loop.create_future()
        self.watchdog: asyncio.TimerHandle | None = None
        self.st: _Stream | None = None  # the request under way
        self.seq = self.start = self.sent = self.deadline = 0

    async def run(self) -> _Conn | None:
        try:
            self._guarded(self._issue)
            return await self.done
        finally:
            if self.st is not None:
                self.st.on_end = None  # cancelled (wall clock, Ctrl-C): the request under way is not counted
            self._disarm()

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run ``step``; what it raises (a sink's broken pipe) ends the chain with that exception."""
        try:
            step()
        except BaseException as exc:
            self.conn.dialed.close()
            if not self.done.done():
                self.done.set_exception(exc)

    def _end(self, keep: bool) -> None:
        if not keep:
            self.conn.dialed.close()
        self._disarm()
        if not self.done.done():
            self.done.set_result(self.conn if keep else None)

    def _disarm(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None

    def _issue(self) -> None:
        seq = self.take()
        if seq is None:
            self._end(True)
            return
        start = time.perf_counter_ns()
        try:
            st = self.proto.request(*self.request_args, extra_headers=self.headers, body=self.body, keep=self.keep)
        except HttpError as exc:
            self._fail(seq, start, exc)
            return
        self.sent = st.sent_ns or time.perf_counter_ns()
        self.seq, self.start, self.st = seq, start, st
        self.deadline = start + self.timeout_ns
        st.on_end = self._ended
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout_ns / 1e9, self._check)

    def _check(self) -> None:
        now = time.perf_counter_ns()
        if self.st is not None and now >= self.deadline:
            self.watchdog = None
            self.st.on_end = None
            self.st = None
            self._guarded(lambda: self._fail(self.seq, self.start, asyncio.TimeoutError()))
            return
        self.watchdog = self.loop.call_later(max(0.001, (self.deadline - now) / 1e9), self._check)

    def _fail(self, seq: int, start: int, exc: BaseException) -> None:
        self.conn.dialed.close()
        self._end(False)
        self.record(self.client.failed(seq, self.url_text, start - self.run_t0, exc))

    def _ended(self, st: _Stream) -> None:
        self._guarded(lambda: self._book(st))

    def _book(self, st: _Stream) -> None:
        seq, start, sent = self.seq, self.start, self.sent
        self.st = None
        exc = st.done.exception()
        if exc is not None:
            self._fail(seq, start, exc)
            return
        end = st.end_ns
        first = st.first_ns or end
        send, ttfb, transfer = sent - start, max(0, first - sent), max(0, end - first)
        self.record(self.client.answered(seq, self.url_text, start - self.run_t0, st, st.done.result(), self.conn,
                                         (0, 0, 0, send, ttfb, transfer, send + ttfb + transfer)))
        # Booked before the next request leaves, not after: work of ours done while its answer may
        # already be in would be counted in that answer's time to first byte.
        if self.proto.reusable() and not self.conn.dialed.transport.is_closing():
            self._issue()
        else:
            self._end(False)  # the server asked to close (or closed): the next request dials anew


async def _measure_url(client: HttpClient, url: HttpUrl, stop: StopSignal | None, sink: Sink | None, *,
                       clock: tuple[int, int | None] | None = None, book: bool = True
                       ) -> tuple[HttpUrlResult, bool]:
    """``clock``: the run's start and wall-clock end (perf_counter_ns), given by the parent of a worker
    process; ``book`` False leaves the result empty (a worker process only streams its samples)."""
    cfg = client.cfg
    result = HttpUrlResult(str(url))
    if clock is None:
        t0 = time.perf_counter_ns()
        end_ns = None if cfg.duration_s is None else t0 + int(cfg.duration_s * 1e9)
    else:
        t0, end_ns = clock
    issued = 0
    interrupted = False

    def take() -> int | None:
        nonlocal issued
        if cfg.count is not None and issued >= cfg.count:
            return None
        if end_ns is not None and time.perf_counter_ns() >= end_ns:
            return None
        issued += 1
        return issued

    def record(sample: HttpSample) -> None:
        if book:
            result.add(sample)
        if sink is not None:
            sink(sample)

    async def worker() -> None:
        conn: _Conn | None = None
        try:
            while True:
                if conn is not None and client.chainable(conn):
                    conn = await _Chain(client, url, conn, take, record, t0).run()
                    if conn is not None:
                        return  # the count or the wall clock's end
                    continue
                seq = take()
                if seq is None:
                    return
                start = time.perf_counter_ns()
                sample, conn = await client.fetch(url, conn, seq=seq, start_ns=start - t0)
                record(sample)
                if cfg.interval_s > 0:
                    wait = start + int(cfg.interval_s * 1e9) - time.perf_counter_ns()
                    if end_ns is not None:
                        wait = min(wait, end_ns - time.perf_counter_ns())
                    if wait > 0:
                        await asyncio.sleep(wait / 1e9)
        finally:
            if conn is not None:
                conn.dialed.close()

    tasks = [asyncio.ensure_future(worker()) for _ in range(cfg.concurrency)]
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(asyncio.wait(tasks))]
    if stop is not None:
        waiters.append(asyncio.ensure_future(stop.wait()))
    timeout = None if end_ns is None else max(0.0, (end_ns - time.perf_counter_ns()) / 1e9)
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        pending = [t for t in tasks if not t.done()]
        if stop is not None and stop.is_set():
            interrupted = True
        for t in pending:
            t.cancel()  # under way at the wall-clock end or at Ctrl-C: not counted
        for w in waiters:
            w.cancel()
        await asyncio.gather(*tasks, *waiters, return_exceptions=True)
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
    result.elapsed_ns = time.perf_counter_ns() - t0
    return result, interrupted


async def measure_http_async(cfg: HttpConfig, *, sink: Sink | None = None,
                             stop: StopSignal | None = None) -> HttpResult:
    client = HttpClient(cfg)
    out = HttpResult([], checks_given=cfg.checks.given)
    for url in cfg.urls:
        r, interrupted = await _measure_url(client, url, stop, sink)
        out.urls.append(r)
        out.failed += check_result(r, cfg.checks)
        if interrupted:
            out.interrupted = True
            break
    return out


def measure_http(cfg: HttpConfig, *, sink: Sink | None = None) -> HttpResult:
    """Run on its own loop (a run of many connections as fast as it goes: one per worker process,
    :mod:`netkit.io.measure.http_workers`); Ctrl-C/SIGTERM/SIGHUP stop it early with what was measured."""
    from netkit.io.measure.http_workers import worker_count

    workers = worker_count(cfg)
    if workers > 1:
        return _measure_http_workers(cfg, workers, sink)
    stop = StopSignal()

    async def go(s: StopSignal | None) -> HttpResult:
        return await measure_http_async(cfg, sink=sink, stop=s)

    result = run_until_stopped(go, stop)
    if stop.interrupted:
        result.by_sigint = True
        result.interrupted = True
    return result


def _measure_http_workers(cfg: HttpConfig, workers: int, sink: Sink | None) -> HttpResult:
    from netkit.io.measure.http_workers import collect, start_workers, stop_workers

    out = HttpResult([], checks_given=cfg.checks.given)
    for url in cfg.urls:
        children, t0, end_ns = start_workers(cfg, url, workers)
        stop = StopSignal()  # one per loop: its event belongs to the loop that waited on it

        async def go(s: StopSignal | None, url: HttpUrl = url, children: Any = children, t0: int = t0,
                     end_ns: int | None = end_ns) -> tuple[HttpUrlResult, bool]:
            return await collect(cfg, url, children, t0, end_ns, s, sink)

        try:
            r, interrupted = run_until_stopped(go, stop)
        except BaseException:
            stop_workers(children, kill=True)
            raise
        out.urls.append(r)
        out.failed += check_result(r, cfg.checks)
        if interrupted:
            out.interrupted = True
            out.by_sigint = stop.interrupted
            break
    return out


__all__ = ["HttpClient", "classify", "measure_http", "measure_http_async"]
