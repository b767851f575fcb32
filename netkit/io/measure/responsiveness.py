"""``netkit measure responsiveness``: the IETF responsiveness (RPM) test against a server that serves
the ``/.well-known/nq`` configuration document.

One asyncio loop (uvloop where installed), no thread per connection:

1. fetch the configuration document and parse it (:mod:`netkit.core.nq_config`);
2. the idle phase: a few foreign probes with no load, the baseline "added latency" is measured from;
3. per direction (download, then upload; or both at once with ``parallel``): load-generating
   connections (an endless GET of the large object, or an endless POST to the upload URL), ramped as
   :class:`netkit.core.responsiveness_algo.DirectionRun` decides at the end of each interval, and
   probes paced by the measured goodput (at most MPS pairs a second, their bytes at most PTC of it).

Goodput is what moved: downloads count the payload bytes received; uploads the bytes the kernel saw
acknowledged (``tcpi_bytes_acked``, TLS records' few bytes of overhead included), not the bytes handed
to the socket. Self probes are a GET of the
small object on a load connection over h2; over HTTP/1.1 (one request at a time per connection) they
are the kernel's RTT estimate of a load connection, as the draft allows (``self_probe: tcp_info``).

Every connect and request is bounded by a timeout; the whole run by ``max_duration_s`` (wall clock);
a stop signal (Ctrl-C, SIGTERM, SIGHUP) ends it with the result of what was measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netkit.core.errors import CheckFailed, InputError
from netkit.core.nq_config import MAX_CONFIG_BYTES, HttpUrl, NqConfig, config_url_for, parse_nq_config, parse_url
from netkit.core.responsiveness_algo import (
    NS,
    DirectionRun,
    ProbeKind,
    ProbeSample,
    normalize_tls_ms,
    probe_pairs_per_s,
    probe_stats,
    unsent_allowance,
)
from netkit.core.responsiveness_config import Direction, ResponsivenessConfig
from netkit.core.responsiveness_result import (
    DirectionResult,
    ResponsivenessInterval,
    ResponsivenessResult,
    direction_result,
)
from netkit.io.aio import StopSignal, run_until_stopped
from netkit.io.clients.http_conn import (
    UNSENT_MAX,
    UNSENT_MIN,
    Dialed,
    H2Protocol,
    HttpError,
    client_ssl_context,
    dial,
    tcp_info,
)
from netkit.io.tls import client_context, tls_error_message

Sink = Callable[[ResponsivenessInterval], None]
#: Probes of one kind under way at once. A launch due while this many are still out is skipped rather
#: than queued: piling handshakes onto a server that is slow to answer would measure the pile.
MAX_OUTSTANDING_PROBES = 8
#: The draft: every GET says Accept-Encoding: identity, so that no server compresses what is measured.
IDENTITY = [("accept-encoding", "identity")]


def _now() -> int:
    return time.perf_counter_ns()


def _reach_error(url: HttpUrl, exc: BaseException) -> CheckFailed:
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return CheckFailed(f"{url}: {tls_error_message(exc)}")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return CheckFailed(f"cannot reach {url}: timed out")
    if isinstance(exc, ConnectionRefusedError):
        return CheckFailed(f"cannot reach {url}: connection refused")
    if isinstance(exc, OSError):
        return CheckFailed(f"cannot reach {url}: {exc.strerror or exc}")
    return CheckFailed(f"cannot reach {url}: {exc}")


@dataclass
class _LoadConn:
    dialed: Dialed
    upload: bool
    acked_base: int = 0
    acked_last: int = 0

    def moved(self) -> int:
        """Bytes this connection moved so far: received payload, or acknowledged upload bytes."""
        if not self.upload:
            return self.dialed.protocol.bytes_in
        if not self.dialed.protocol.closed:
            info = tcp_info(self.dialed.sock)
            if info is not None and info.bytes_acked is not None:
                self.acked_last = info.bytes_acked - self.acked_base
        return self.acked_last


@dataclass
class _Direction:
    """One direction's live state: the algorithm, its connections and tasks."""

    run: DirectionRun
    upload: bool
    conns: list[_LoadConn] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    probe_errors: int = 0
    error: str | None = None
    done: bool = False
    connecting: int = 0
    outstanding: dict[ProbeKind, int] = field(default_factory=lambda: {k: 0 for k in ProbeKind})
    probes_skipped: int = 0  # launches skipped: too many of that kind still out
    self_started: dict[object, int] = field(default_factory=dict)  # self probes under way: when sent
    unfinished: int = 0  # self probes never answered, counted with the time they waited
    conn_failures: int = 0  # load connections the server ended (each was opened again)
    last_failure: str | None = None

    def give_up(self, started_ns: int, now_ns: int, *, at_end: bool) -> None:
        """A self probe sent at ``started_ns`` and never answered: counted with its wait when that
        already says it is slow (see DirectionRun.add_unanswered)."""
        if self.run.add_unanswered(ProbeSample(ProbeKind.SELF, now_ns, (now_ns - started_ns) / 1e6), at_end=at_end):
            self.unfinished += 1


class _Session:
    def __init__(self, cfg: ResponsivenessConfig, sink: Sink | None, stop: asyncio.Event | StopSignal | None):
        self.cfg = cfg
        self.sink = sink
        self.stop = stop
        self.t0 = _now()
        self.deadline = self.t0 + int(cfg.max_duration_s * NS)
        self.nq: NqConfig | None = None
        self.addr: tuple[int, Any] | None = None
        self.ssl_ctx: ssl.SSLContext | None = None
        self.tls_version: str | None = None
        self.protocol: str | None = None
        self.config_url = ""

    # ----- plumbing -----
    def stopped(self) -> bool:
        return (self.stop is not None and self.stop.is_set()) or _now() >= self.deadline

    async def sleep_until(self, t_ns: int) -> None:
        """Sleep until ``t_ns`` or the stop signal, whichever first."""
        delay = (min(t_ns, self.deadline) - _now()) / NS
        if delay <= 0:
            return
        if self.stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(self.stop.wait(), delay)

    async def resolve(self, url: HttpUrl, host: str) -> tuple[int, Any]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, url.port, family=self.cfg.family, type=socket.SOCK_STREAM),
                self.cfg.connect_timeout_s)
        except (OSError, asyncio.TimeoutError) as exc:
            raise CheckFailed(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from None
        if not infos:
            raise CheckFailed(f"cannot resolve {host}")
        return infos[0][0], infos[0][4]

    def budget(self, timeout_s: float) -> float:
        """``timeout_s``, cut to what is left of the run (every wait ends by --max-duration)."""
        return max(0.05, min(timeout_s, (self.deadline - _now()) / NS))

    async def dial(self, url: HttpUrl, *, load: bool = False) -> Dialed:
        assert self.addr is not None
        return await dial(self.addr, ssl_ctx=self.ssl_ctx if url.tls else None,
                          server_hostname=url.host if url.tls else None,
                          timeout_s=self.budget(self.cfg.connect_timeout_s), load=load)

    async def get(self, d: Dialed, url: HttpUrl) -> tuple[int, bytes]:
        st = d.protocol.request("GET", url.scheme, url.authority, url.target, extra_headers=IDENTITY)
        resp = await asyncio.wait_for(st.done, self.budget(self.cfg.io_timeout_s))
        return resp.status, resp.body

    # ----- the configuration -----
    async def fetch_config(self) -> None:
        url = config_url_for(parse_url(self.cfg.url))
        self.config_url = str(url)
        if url.tls:
            self.ssl_ctx = client_ssl_context(client_context(insecure=self.cfg.insecure, cafile=self.cfg.cafile),
                                              h2=not self.cfg.http1)
        self.addr = await self.resolve(url, url.host)
        try:
            d = await self.dial(url)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            raise _reach_error(url, exc) from None
        try:
            status, body = await self.get(d, url)
        except (HttpError, asyncio.TimeoutError, OSError) as exc:
            raise CheckFailed(f"{url}: no configuration: {str(exc) or 'timed out'}") from None
        finally:
            d.close()
        if status != 200:
            raise CheckFailed(f"{url} answered HTTP {status}: not a responsiveness server's configuration")
        if len(body) >= MAX_CONFIG_BYTES:
            raise CheckFailed(f"{url}: the configuration is over {MAX_CONFIG_BYTES // 1024} KiB")
        try:
            self.nq = parse_nq_config(body)
        except InputError as exc:
            raise CheckFailed(f"{url}: {exc}") from None
        large = self.nq.large_download_url
        if self.nq.connect_host != url.host or large.port != url.port:
            self.addr = await self.resolve(large, self.nq.connect_host)
        if large.tls and self.ssl_ctx is None:
            self.ssl_ctx = client_ssl_context(client_context(insecure=self.cfg.insecure, cafile=self.cfg.cafile),
                                              h2=not self.cfg.http1)

    # ----- probes -----
    async def foreign_probe(self) -> ProbeSample:
        assert self.nq is not None
        url = self.nq.small_download_url
        d = await self.dial(url)
        try:
            t = _now()
            status, _ = await self.get(d, url)
            http_ns = _now() - t
        finally:
            d.close()
        if status != 200:
            raise HttpError(f"GET {url.target} answered HTTP {status}")
        if d.tls_version is not None:
            self.tls_version = d.tls_version
        tls_ms = None if d.tls_ns is None else normalize_tls_ms(d.tls_ns / 1e6, d.tls_version)
        return ProbeSample(ProbeKind.FOREIGN, _now(), http_ns / 1e6, d.tcp_ns / 1e6, tls_ms)

    async def self_probe(self, state: _Direction) -> ProbeSample | None:
        assert self.nq is not None
        live = [c for c in state.conns if not c.dialed.protocol.closed]
        if not live:
            return None
        conn = random.choice(live)
        proto = conn.dialed.protocol
        if isinstance(proto, H2Protocol):
            url = self.nq.small_download_url
            t = _now()
            st = proto.request("GET", url.scheme, url.authority, url.target, extra_headers=IDENTITY)
            # Not cut to what is left of the run: a self probe still waiting when the direction ends
            # is counted there (with its wait) and cancelled, so the run still ends on time; cut, it
            # would time out in the last, unfinished interval and count nowhere.
            resp = await asyncio.wait_for(st.done, self.cfg.io_timeout_s)
            if resp.status != 200:
                raise HttpError(f"GET {url.target} answered HTTP {resp.status}")
            return ProbeSample(ProbeKind.SELF, _now(), (_now() - t) / 1e6)
        info = tcp_info(conn.dialed.sock)
        if info is None:
            return None
        # A download connection sends next to nothing: its own RTT estimate is stale; the receiver's
        # estimate (rcv_rtt) follows the data. An upload connection's smoothed RTT is current.
        us = info.rtt_us if conn.upload or not info.rcv_rtt_us else info.rcv_rtt_us
        return ProbeSample(ProbeKind.SELF, _now(), us / 1000.0) if us else None

    async def idle_phase(self) -> list[ProbeSample]:
        samples: list[ProbeSample] = []
        for _ in range(self.cfg.idle_probes):
            if self.stopped():
                break
            try:
                samples.append(await self.foreign_probe())
            except (HttpError, OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
                if not samples:
                    assert self.nq is not None
                    raise _reach_error(self.nq.small_download_url, exc) from None
        return samples

    # ----- load -----
    async def load_connection(self, state: _Direction) -> None:
        """One load-generating connection: an endless download or upload. A server that ends it (an
        object that ends, an upload answered early and its stream or connection closed, as nginx does
        over h2) gets the request again, on a new connection when needed, at most ten times a second."""
        while not state.done:
            began = _now()
            if not await self._load_once(state):
                return
            await self.sleep_until(began + NS // 10)

    async def _load_once(self, state: _Direction) -> bool:
        """One connection's life; True when it ended in a way worth another connection."""
        assert self.nq is not None
        url = self.nq.upload_url if state.upload else self.nq.large_download_url
        state.connecting += 1
        try:
            d = await self.dial(url, load=True)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            state.error = str(_reach_error(url, exc))
            return False
        finally:
            state.connecting -= 1
        conn = _LoadConn(d, state.upload)
        if state.upload:
            info = tcp_info(d.sock)
            conn.acked_base = info.bytes_acked if info is not None and info.bytes_acked is not None else 0
        state.conns.append(conn)
        if self.protocol is None:
            self.protocol = d.protocol.http_version
        method = "POST" if state.upload else "GET"
        try:
            while not state.done:
                st = d.protocol.request(method, url.scheme, url.authority, url.target,
                                        extra_headers=None if state.upload else IDENTITY,
                                        count_only=not state.upload, upload=state.upload)
                resp = await st.done
                if resp.status and not 200 <= resp.status < 300:
                    state.error = f"{method} {url.target} answered HTTP {resp.status}"
                    return False
                if d.protocol.closed:
                    return True
        except HttpError as exc:
            state.conn_failures += 1
            state.last_failure = str(exc)
            return True
        finally:
            conn.moved()  # the last acknowledged count, before the socket goes
            d.close()
        return False

    @staticmethod
    def _set_unsent_limits(state: _Direction, rate_bps: float) -> None:
        """Each h2 upload connection keeps a few milliseconds of its share of the rate unsent."""
        live = [c for c in state.conns if not c.dialed.protocol.closed]
        for c in live:
            if isinstance(c.dialed.protocol, H2Protocol):
                c.dialed.protocol.unsent_limit = unsent_allowance(rate_bps / len(live), floor=UNSENT_MIN,
                                                                  ceiling=UNSENT_MAX)

    def spawn(self, state: _Direction, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    async def probe(self, state: _Direction, kind: ProbeKind) -> None:
        state.outstanding[kind] += 1
        token = object()
        if kind is ProbeKind.SELF:
            state.self_started[token] = _now()
        try:
            sample = await (self.foreign_probe() if kind is ProbeKind.FOREIGN else self.self_probe(state))
        except asyncio.TimeoutError:
            started = state.self_started.get(token)
            if started is None:  # a foreign probe: its connection or request timed out
                state.probe_errors += 1
            elif not state.done:  # a self probe on a live load connection, never answered
                state.give_up(started, _now(), at_end=False)
            return
        except (HttpError, OSError, ssl.SSLError):
            state.probe_errors += 1
            return
        finally:
            state.outstanding[kind] -= 1
            state.self_started.pop(token, None)
        if sample is not None and not state.done:
            state.run.add_probe(sample)

    async def prober(self, state: _Direction) -> None:
        """A foreign and a self probe every 1/rate seconds (the two kinds interleaved)."""
        nxt = _now()
        while not state.done and not self.stopped():
            for kind in (ProbeKind.FOREIGN, ProbeKind.SELF):
                if state.outstanding[kind] < MAX_OUTSTANDING_PROBES:
                    self.spawn(state, self.probe(state, kind))
                else:
                    state.probes_skipped += 1
            nxt += int(NS / probe_pairs_per_s(state.run.goodput_bps, self.cfg.params))
            await self.sleep_until(nxt)

    async def direction(self, which: Direction, idle_ms: float | None) -> DirectionResult:
        params = self.cfg.params
        start = _now()
        state = _Direction(DirectionRun(which.value, params, start), upload=which is Direction.UPLOAD)
        for _ in range(params.initial_connections):
            self.spawn(state, self.load_connection(state))
        self.spawn(state, self.prober(state))
        last_total = 0
        last_tick = start
        last_move = start
        tick = start + int(params.interval_s * NS)
        try:
            while True:
                await self.sleep_until(tick)
                if self.stopped():
                    break
                now = _now()
                moved = [c.moved() for c in state.conns]
                total = sum(moved)
                if state.upload and total > last_total:
                    self._set_unsent_limits(state, (total - last_total) * 8 * NS / max(1, now - last_tick))
                decision = state.run.end_interval(now, total - last_total)
                if total > last_total:
                    last_move = now
                last_total = total
                last_tick = now
                if self.sink is not None:
                    self.sink(ResponsivenessInterval(decision.record, (now - self.t0) / NS))
                for _ in range(decision.add):
                    self.spawn(state, self.load_connection(state))
                if decision.done:
                    break
                if state.error is not None and not any(not c.dialed.protocol.closed for c in state.conns) \
                        and not state.connecting:
                    break
                if now - last_move > self.cfg.io_timeout_s * NS:
                    state.error = state.error or f"no data moved for {self.cfg.io_timeout_s:g} s"
                    break
                tick += int(params.interval_s * NS)
        finally:
            state.done = True
            end = _now()
            # Self probes still unanswered count with what they waited, when that already says they
            # are slow (on h2: a request queued behind a server's send buffer may outlast the run).
            for started in state.self_started.values():
                state.give_up(started, end, at_end=True)
            state.self_started.clear()
            for c in state.conns:
                c.dialed.close()
            for t in list(state.tasks):
                t.cancel()
            if state.tasks:
                await asyncio.gather(*state.tasks, return_exceptions=True)
        res = direction_result(state.run, idle_ms, end, state.probe_errors, probes_skipped=state.probes_skipped,
                               probes_unfinished=state.unfinished)
        if state.error is None and state.conn_failures and state.run.intervals:
            # Opened again each time, but the load (and the goodput) was not what it should be.
            state.error = (f"the server ended {state.conn_failures} load connections (each opened again; "
                           f"the last: {state.last_failure})")
        if state.error is not None and self._error is None:
            self._error = f"{which.value}: {state.error}"
        return res

    _error: str | None = None

    async def main(self) -> ResponsivenessResult:
        cfg = self.cfg
        await self.fetch_config()
        idle = probe_stats(await self.idle_phase(), cfg.params.trim_percent)
        idle_ms = idle.foreign_latency_ms
        results: list[DirectionResult] = []
        if cfg.parallel and len(cfg.directions) > 1:
            results = list(await asyncio.gather(*(self.direction(d, idle_ms) for d in cfg.directions)))
        else:
            for d in cfg.directions:
                if self.stopped():
                    break
                results.append(await self.direction(d, idle_ms))
        assert self.nq is not None
        interrupted = self.stop is not None and self.stop.is_set()
        timed_out = not interrupted and _now() >= self.deadline
        error = self._error
        if timed_out and error is None:
            error = f"the run reached --max-duration ({cfg.max_duration_s:g} s) before stability"
        return ResponsivenessResult(
            url=cfg.url, config_url=self.config_url,
            protocol=self.protocol or ("h2" if self.ssl_ctx is not None and not cfg.http1 else "http/1.1"),
            tls_version=self.tls_version,
            self_probe="http" if self.protocol == "h2" else "tcp_info",
            parallel=cfg.parallel and len(cfg.directions) > 1, idle=idle, directions=tuple(results),
            elapsed_s=(_now() - self.t0) / NS, interrupted=interrupted, error=error)


async def measure_responsiveness_async(cfg: ResponsivenessConfig, *, sink: Sink | None = None,
                                       stop: asyncio.Event | StopSignal | None = None) -> ResponsivenessResult:
    """Run the test ``cfg`` describes; ``stop`` ends it early with what was measured."""
    return await _Session(cfg, sink, stop).main()


def measure_responsiveness(cfg: ResponsivenessConfig, *, sink: Sink | None = None) -> ResponsivenessResult:
    """Run the test on its own loop; Ctrl-C/SIGTERM/SIGHUP stop it early with the result so far (and
    ``by_sigint`` for Ctrl-C)."""
    stop = StopSignal()

    async def go(s: StopSignal | None) -> ResponsivenessResult:
        return await measure_responsiveness_async(cfg, sink=sink, stop=s)

    result = run_until_stopped(go, stop)
    if stop.interrupted:
        result = dataclasses.replace(result, by_sigint=True)
    return result
