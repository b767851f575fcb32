"""``netkit monitor``: rounds of probes on a schedule, exported to Prometheus.

One round for one target has two phases, both from the existing cores:

1. reachability (tcp-connect, udp) through ``netkit.io.measure.probe.TargetProber``: the same attempts, retries
   and errno classification as ``netkit probe``. A target that does not come up ends its round
   here (no latency packets to a closed port);
2. latency and loss through ``netkit.io.measure.latency``'s probers and ``measure_target``: ``packets``
   probes ``packet_interval`` apart, exactly as ``netkit measure latency`` sends them. icmp has
   no phase 1: its echo train is the probe.

Every round is bounded: phase 1 gets the round's deadline (90% of the interval); phase 2 gets
it as ``measure_target``'s deadline, so it sends no packet that could not be answered by then
(the config check makes the packets fit a round; when reachability ran long, with retries or
a slow name lookup, the round sends what still fits and the monitor says so once per target),
and a hard ``wait_for`` catches anything else. A target's exception becomes an
``error`` round for that target only.

A ``trace`` target's round is one trace round instead (``netkit.io.measure.monitor_trace``): the
trace engine's own selector loop (its answers arrive on socket error queues, which uvloop stops
watching) in a thread of a pool kept for trace rounds; it ends at the same bound.

Targets sharing an interval form a group whose rounds run together (one jsonl line per group
round). Metrics come from :class:`MonitorCollector`, a ``prometheus_client`` custom collector
that hands over the families :func:`netkit.core.monitor_metrics.metric_families` computes from
:class:`netkit.core.monitor_models.MonitorState` (the label set can change on a reload, which
fixed-label ``Gauge``/``Counter`` objects cannot do). The HTTP endpoint is ``prometheus_client``'s
own threaded server; the collector reads the state under a lock that the event loop takes to
record a round. :func:`run_monitor` is the command's one entry point: stop signals, the endpoint,
the rounds, and the totals it returns.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from netkit.core.backoff import Backoff
from netkit.core.errors import InputError, NetkitError, RuntimeFailure
from netkit.core.latency_models import LatencyConfig, Method
from netkit.core.monitor_config import CliSettings, config_from_text
from netkit.core.monitor_metrics import MetricFamily, MetricKind, metric_families
from netkit.core.monitor_models import (
    GroupRound,
    KeyRef,
    MonitorConfig,
    MonitorMethod,
    MonitorOutcome,
    MonitorState,
    MonitorTarget,
    TargetRound,
    combine_round,
    error_round,
    summary_record,
)
from netkit.core.targets import Target, format_host_port
from netkit.io.aio import StopSignal
from netkit.io.clock import DEFAULT_CLOCK, Clock, wall_iso
from netkit.io.config_files import load_mesh, read_config_text
from netkit.io.measure.monitor_dns import dns_probe_round
from netkit.io.measure.monitor_http import http_probe_round
from netkit.io.measure.monitor_trace import TraceThreads

if TYPE_CHECKING:  # pragma: no cover
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from netkit.core.keyed import Key

__all__ = ["GroupRound", "MetricsServer", "Monitor", "MonitorCollector", "load_config", "load_mesh_config",
           "probe_round", "read_key", "run_monitor"]

NS = 1_000_000_000
DEFAULT_CONCURRENCY = 256
#: Past the round's own bound, how long before a stuck round is abandoned.
HARD_MARGIN_S = 1.0


# ----- config file ---------------------------------------------------------------------------
#: A key file is a line of text; anything longer is not one (and is not read whole).
MAX_KEY_FILE_BYTES = 64 * 1024


def read_key(ref: KeyRef, base_dir: str, environ: Mapping[str, str] | None = None) -> Key:
    """The key ``ref`` points at: a file (relative to ``base_dir``) or an environment variable.

    Errors name the config key and where it pointed, never the key's text.
    """
    from netkit.core.keyed import KeyTextError, derive_key

    text: bytes | str
    if ref.file is not None:
        where = os.path.join(base_dir, os.path.expanduser(ref.file))
        try:
            with open(where, "rb") as fh:
                text = fh.read(MAX_KEY_FILE_BYTES)
        except OSError as exc:
            raise InputError(f"key_file: cannot read {where}: {exc.strerror or exc}") from None
    else:
        env = os.environ if environ is None else environ
        value = env.get(ref.env or "")
        if not value:
            raise InputError(f"key_env: the environment variable {ref.env} is not set")
        text = value
    try:
        return derive_key(text)
    except KeyTextError as exc:
        raise InputError(f"{ref.config_key}: {exc}") from None


def _with_key(config: MonitorConfig, path: str) -> MonitorConfig:
    if config.key_ref is None:
        return config
    return dataclasses.replace(config, key=read_key(config.key_ref, os.path.dirname(os.path.abspath(path))))


def load_config(path: str | None, cli: CliSettings) -> MonitorConfig:
    """Read ``path`` (TOML, may be None) and merge the command line; errors name the file and key.

    A key reference in the file (``key_file``/``key_env``) is read here, on every (re)load.
    """
    if path is None:
        return config_from_text(None, cli)
    text = read_config_text(path)
    try:
        return _with_key(config_from_text(text, cli), path)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def load_mesh_config(path: str, self_name: str, cli: CliSettings) -> MonitorConfig:
    """Host ``self_name``'s monitor config from mesh file ``path`` (``netkit monitor --mesh``).

    Every other host with every probe of the file; errors name the file and the mesh's key
    (a ``--self`` no longer in the file is one: a reload then keeps the running config).
    """
    from netkit.core.mesh_config import mesh_monitor_config

    mesh = load_mesh(path)
    try:
        return _with_key(mesh_monitor_config(mesh, self_name, cli), path)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


# ----- udp sessions that last several rounds --------------------------------------------------
#: A reflector remembers each probe session for 5 minutes (keyed: its freshness window), up to a
#: bounded table. A new session every round would make each reflector of a mesh remember
#: peers x 300 s / interval of them (300 hosts at 1 s: about 90,000, past the table, and new rounds
#: refused). One session per target for a minute keeps it near 6 per peer; a reflector restarted
#: meanwhile still takes the session as new, its id's time being well within the window.
SESSION_REUSE_NS = 60 * NS
#: Sequence numbers stay far below the 64-bit field and any wrap in a reflector's window.
_MAX_SEQ = 1 << 31


@dataclasses.dataclass
class UdpSession:
    """The session a udp target's rounds share, and the first sequence number of the next round."""

    session: int
    next_seq: int
    born_ns: int


class UdpSessions:
    """One ``UdpSession`` per udp target, renewed after ``SESSION_REUSE_NS`` (the monitor's clock)."""

    def __init__(self) -> None:
        self._by_target: dict[tuple[str, MonitorMethod], UdpSession] = {}

    def take(self, key: tuple[str, MonitorMethod], packets: int, now_ns: int, keyed: bool) -> UdpSession:
        """The session for a round of ``packets`` probes; the numbers it may use are reserved."""
        from netkit.io.measure.latency_probers import udp_session_id

        held = self._by_target.get(key)
        if held is None or now_ns - held.born_ns >= SESSION_REUSE_NS or held.next_seq + packets >= _MAX_SEQ:
            held = UdpSession(udp_session_id(keyed), 0, now_ns)
            self._by_target[key] = held
        taken = UdpSession(held.session, held.next_seq, held.born_ns)
        held.next_seq += packets
        return taken

    def keep_only(self, keys: set[tuple[str, MonitorMethod]]) -> None:
        """Forget the targets a reload removed."""
        for key in [k for k in self._by_target if k not in keys]:
            del self._by_target[key]


# ----- one round for one target ---------------------------------------------------------------
async def probe_round(t: MonitorTarget, *, clock: Clock = DEFAULT_CLOCK,
                      on_cut: Callable[[int], None] | None = None, key: Key | None = None,
                      session: UdpSession | None = None) -> TargetRound:
    """Probe ``t`` once (reachability, then latency packets) within ``t.budget_s``.

    The latency packets get the round's bound as their deadline: none is sent that could not be
    answered within its timeout before the bound. The config check makes the packets alone fit
    the bound; when reachability took part of it (retries, a slow name lookup), fewer fit, and
    ``on_cut`` gets the number sent so the caller can say so.

    With ``key`` a udp target's packets are signed for a keyed reflector, which drops the
    reachability step's unsigned packet: that step is skipped, and the latency packets are the
    round's check (success: one answered). Every packet to the target is then a counted one.
    ``session``: the udp session to go on with (``UdpSessions``), else a new one for this round.
    """
    from netkit.io.measure.latency import measure_target
    from netkit.io.measure.latency_probers import PROBERS, UdpProber
    from netkit.io.measure.probe import ProbeOptions, TargetProber

    start = clock.now_ns()
    deadline = start + int(t.budget_s * NS)
    probe_state: str | None = None
    attempts = 0
    probe_error: str | None = None
    address: str | None = None
    keyed = key is not None and t.method is MonitorMethod.UDP
    if t.method is not MonitorMethod.ICMP and not keyed:
        step = min(int(t.timeout_s * NS), NS // 10)
        opts = ProbeOptions(
            timeout_s=t.timeout_s, retries=t.retries, backoff=Backoff(step, 2.0, NS), deadline_s=t.budget_s,
            concurrency=1, udp=t.method is MonitorMethod.UDP, resolve_timeout_s=min(5.0, t.budget_s),
        )
        res = await TargetProber(opts, clock=clock, start_ns=start).probe(Target(t.host, t.port))
        probe_state, attempts, probe_error, address = res.state.value, res.attempts, res.error, res.address
        if not res.state.ok:
            return combine_round(t, probe_state=probe_state, attempts=attempts, probe_error=probe_error,
                                 address=address, sent=0, received=0, lost=0, rtts_ns=(), latency_error=None,
                                 duration_ns=clock.now_ns() - start)
    cfg = LatencyConfig(method=Method(t.method.value), count=t.packets, interval_s=t.packet_interval_s,
                        timeout_s=t.timeout_s, key=key if keyed else None)
    prober = PROBERS[cfg.method](t.name, t.host, t.port, cfg, None)
    # Adapter: the monitor exports total loss only, so it skips the end-of-run count query to
    # netkit's reflector (up to 5 tries of a timeout each when lost, past the round's bound).
    prober.final_query = _no_final_query  # type: ignore[method-assign]
    # Nor does it export local drops: skip the two scans of the kernel's UDP table per round.
    if isinstance(prober, UdpProber):
        prober.count_local_drops = False
        if session is not None:
            prober.session, prober.seq_base = session.session, session.next_seq
    # measure_target reads the monotonic clock itself: carry the bound over to it.
    deadline_mono = time.perf_counter_ns() + (deadline - clock.now_ns())
    lat = await measure_target(prober, asyncio.Event(), deadline_ns=deadline_mono)
    if lat.acc.sent < t.packets and on_cut is not None and lat.error is None:
        on_cut(lat.acc.sent)
    return combine_round(t, probe_state=probe_state, attempts=attempts, probe_error=probe_error,
                         address=address or lat.address, sent=lat.acc.sent, received=lat.acc.received,
                         lost=lat.acc.lost, rtts_ns=list(lat.acc.rtts_ns), latency_error=lat.error,
                         duration_ns=clock.now_ns() - start)


async def _no_final_query(*_args: Any, **_kwargs: Any) -> None:
    return None


# ----- metrics --------------------------------------------------------------------------------
class MonitorCollector:
    """A ``prometheus_client`` collector over the monitor's state (read under its lock)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def describe(self) -> list[Metric]:
        # Names are fixed, but label sets change on reload: describe nothing (no clash checks).
        return []

    def collect(self) -> Iterator[Metric]:
        with self.monitor.lock:
            families = metric_families(self.monitor.state, self.monitor.reload_ok)
        yield from (to_prometheus(f) for f in families)


def to_prometheus(family: MetricFamily) -> Metric:
    """One of :mod:`netkit.core.monitor_metrics`' families as ``prometheus_client`` exposes it."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    labels = list(family.label_names)
    if family.kind is MetricKind.HISTOGRAM:
        hist = HistogramMetricFamily(family.name, family.help, labels=labels)
        for s in family.series:
            hist.add_metric(list(s.labels), list(s.buckets), s.sum)
        return hist
    metric: GaugeMetricFamily | CounterMetricFamily
    if family.kind is MetricKind.COUNTER:
        metric = CounterMetricFamily(family.name, family.help, labels=labels)
    else:
        metric = GaugeMetricFamily(family.name, family.help, labels=labels)
    for s in family.series:
        metric.add_metric(list(s.labels), s.value)
    return metric


class MetricsServer:
    """``prometheus_client``'s threaded HTTP server for one registry, stoppable."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        where = format_host_port(host, port)
        try:
            self.httpd, self.thread = start_http_server(port, addr=host, registry=registry)
        except PermissionError:
            raise RuntimeFailure(f"cannot listen on {where}: permission denied (a port below 1024 needs root)") \
                from None
        except OSError as exc:
            raise RuntimeFailure(f"cannot listen on {where}: {exc.strerror or exc}") from None
        self.host = host
        self.port = int(self.httpd.server_address[1])

    @property
    def address(self) -> str:
        return format_host_port(self.host, self.port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2.0)


def write_textfile(path: str, registry: CollectorRegistry) -> None:
    """Atomically replace ``path`` (``prometheus_client`` writes a temporary file and renames it)."""
    from prometheus_client import write_to_textfile

    write_to_textfile(path, registry)


# ----- the monitor ----------------------------------------------------------------------------
class Monitor:
    """Runs the rounds, keeps the state, exports it; ``run`` returns when stopped."""

    def __init__(self, config: MonitorConfig, *, clock: Clock = DEFAULT_CLOCK,
                 on_round: Callable[[GroupRound], None] | None = None,
                 on_warning: Callable[[str], None] | None = None,
                 on_info: Callable[[str], None] | None = None,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        from prometheus_client import CollectorRegistry

        self.clock = clock
        self.lock = threading.Lock()
        self.state = MonitorState(config)
        self.reload_ok: bool | None = None
        self.on_round = on_round
        self.on_warning = on_warning or (lambda _m: None)
        self.on_info = on_info or (lambda _m: None)
        self.concurrency = concurrency
        self.registry = CollectorRegistry()
        self.registry.register(MonitorCollector(self))
        self.textfile = config.textfile
        self._rounds_done: dict[float, int] = {}
        self._textfile_error: str | None = None
        self._cut_warned: set[tuple[str, str]] = set()
        self.reloads = 0
        self.trace_threads = TraceThreads()
        self.udp_sessions = UdpSessions()

    @property
    def config(self) -> MonitorConfig:
        return self.state.config

    # ----- exporting ---------------------------------------------------------------------------
    def write_textfile(self, *, strict: bool = False) -> None:
        """Write the textfile if configured; a failure is a warning (once) unless ``strict``."""
        if not self.textfile:
            return
        try:
            write_textfile(self.textfile, self.registry)
        except OSError as exc:
            message = f"cannot write {self.textfile}: {exc.strerror or exc}"
            if strict:
                raise RuntimeFailure(message) from None
            if message != self._textfile_error:
                self.on_warning(message)
            self._textfile_error = message
            return
        self._textfile_error = None

    # ----- rounds ------------------------------------------------------------------------------
    def _round_cut(self, t: MonitorTarget, sent: int) -> None:
        """Say once per target that a round ran out of time before its last latency packets."""
        if t.key in self._cut_warned:
            return
        self._cut_warned.add(t.key)
        self.on_warning(f"{t.name}: a round reached its bound of {t.budget_s:g}s after {sent} of {t.packets} "
                        "latency packets (the reachability phase, a name lookup or a busy process ran long); the "
                        "rest were not sent, and rounds that run short again are not reported")

    def _trace_window(self, t: MonitorTarget) -> int | None:
        """The TTLs a trace target's round may probe at once: up to its destination, when known."""
        with self.lock:
            tot = self.state.totals.get(t.key)
            return None if tot is None or tot.trace is None else tot.trace.window_hint

    async def _safe_round(self, t: MonitorTarget, sem: asyncio.Semaphore) -> TargetRound:
        async with sem:
            start = self.clock.now_ns()
            try:
                if t.method is MonitorMethod.TRACE:
                    work = self.trace_threads.round(t, clock=self.clock, window=self._trace_window(t))
                elif t.method is MonitorMethod.HTTP:
                    work = http_probe_round(t, clock=self.clock)
                elif t.method is MonitorMethod.DNS:
                    work = dns_probe_round(t, clock=self.clock)
                else:
                    session = None
                    if t.method is MonitorMethod.UDP:
                        session = self.udp_sessions.take(t.key, t.packets, self.clock.now_ns(),
                                                         keyed=self.config.key is not None)
                    work = probe_round(t, clock=self.clock, on_cut=lambda n: self._round_cut(t, n),
                                       key=self.config.key, session=session)
                return await asyncio.wait_for(work, t.budget_s + HARD_MARGIN_S)
            except asyncio.TimeoutError:
                return error_round(t, f"round overran its bound of {t.budget_s:g}s", self.clock.now_ns() - start)
            except NetkitError as exc:
                return error_round(t, exc.message, self.clock.now_ns() - start)
            except OSError as exc:
                return error_round(t, (exc.strerror or str(exc)).lower(), self.clock.now_ns() - start)
            except Exception as exc:  # one target's bug never stops the others
                return error_round(t, f"internal error: {type(exc).__name__}: {exc}", self.clock.now_ns() - start)

    async def _group(self, interval_s: float, targets: list[MonitorTarget], rounds: int | None,
                     sem: asyncio.Semaphore, restart: asyncio.Event) -> None:
        """Rounds on a fixed tick until ``rounds`` are done or ``restart`` is set (after a reload).

        A reload never cuts a round short: the group leaves at the end of the round in flight,
        or at once while it is waiting for its next tick.
        """
        interval_ns = int(interval_s * NS)
        start = self.clock.now_ns()
        n = 0
        while rounds is None or self._rounds_done.get(interval_s, 0) < rounds:
            due = start + n * interval_ns
            now = self.clock.now_ns()
            if due > now:
                try:
                    await asyncio.wait_for(restart.wait(), (due - now) / NS)
                except asyncio.TimeoutError:
                    pass
            if restart.is_set():
                return
            wall = wall_iso()
            results = list(await asyncio.gather(*(self._safe_round(t, sem) for t in targets)))
            with self.lock:
                for r in results:
                    self.state.record(r)
            done = self._rounds_done.get(interval_s, 0) + 1
            self._rounds_done[interval_s] = done
            self.write_textfile()
            if self.on_round is not None:
                self.on_round(GroupRound(done, wall, interval_s, results))
            # The next tick still ahead (ticks missed by a slow round are skipped, not bunched).
            n = max(n + 1, math.ceil((self.clock.now_ns() - start) / interval_ns))

    def reload(self, loader: Callable[[], MonitorConfig]) -> bool:
        """Swap in the config ``loader`` returns; on any error keep the old one and say why."""
        self.reloads += 1
        try:
            new = loader()
        except (InputError, RuntimeFailure) as exc:
            self.reload_ok = False
            self.on_warning(f"reload failed, keeping the previous config: {exc}")
            return False
        old = self.state.config
        with self.lock:
            added, removed = self.state.apply(new)
            self.udp_sessions.keep_only({t.key for t in new.targets})
            self.reload_ok = True
        if new.listen != old.listen:
            self.on_warning("listen changed in the config: restart netkit monitor to apply it")
        if new.textfile != old.textfile:
            self.textfile = new.textfile
        n = len(new.targets)
        self.on_info(f"netkit monitor: reloaded: {n} target{'s' if n != 1 else ''} ({added} added, {removed} removed)")
        return True

    async def run(self, stop: StopSignal | asyncio.Event, *, loader: Callable[[], MonitorConfig] | None = None,
                  rounds: int | None = None) -> None:
        """Run until ``stop`` (a StopSignal or Event) is set, or every group did ``rounds`` rounds.

        SIGHUP calls ``loader`` (when given). A new config is applied at once (counters of the
        targets it keeps carry on); the groups finish the round in flight and restart on the new
        schedule. A config that fails to load changes nothing. ``stop`` cancels rounds in flight.
        """
        loop = asyncio.get_running_loop()
        reload_ev = asyncio.Event()
        hup = False
        try:
            loop.add_signal_handler(signal.SIGHUP, reload_ev.set)
            hup = True
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            pass
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        groups: list[asyncio.Future[None]] = []
        all_done: asyncio.Future[Any] | None = None
        try:
            while True:
                sem = asyncio.Semaphore(self.concurrency)
                restart = asyncio.Event()
                groups = [asyncio.ensure_future(self._group(iv, ts, rounds, sem, restart))
                          for iv, ts in self.config.groups().items()]
                all_done = asyncio.gather(*groups)
                while True:
                    reloader: asyncio.Future[Any] = asyncio.ensure_future(reload_ev.wait())
                    done, _ = await asyncio.wait({all_done, stopper, reloader}, return_when=asyncio.FIRST_COMPLETED)
                    reloader.cancel()
                    if stopper in done or (all_done in done and not restart.is_set()):
                        failure = all_done.exception() if all_done in done else None
                        if failure is not None:
                            raise failure
                        return
                    if all_done in done:
                        break  # every group left after the reload: start the new schedule
                    reload_ev.clear()
                    if loader is None:
                        self.on_warning("SIGHUP: nothing to reload (no --config)")
                    elif self.reload(loader):
                        restart.set()
        finally:
            stopper.cancel()
            for g in groups:
                g.cancel()
            pending = [*groups, *([all_done] if all_done is not None else [])]
            await asyncio.gather(*pending, return_exceptions=True)  # retrieves every outcome
            self.trace_threads.close()
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)

    def target_totals(self) -> list[dict[str, Any]]:
        """Every configured target's totals since start (``summary_record`` objects), in config order."""
        with self.lock:
            return [summary_record(t, self.state.totals[t.key]) for t in self.config.targets
                    if t.key in self.state.totals]


# ----- the command's one entry point ----------------------------------------------------------
async def run_monitor(monitor: Monitor, *, rounds: int | None = None,
                      loader: Callable[[], MonitorConfig] | None = None, config_path: str | None = None,
                      view: Callable[[], AbstractContextManager[object]] = nullcontext) -> MonitorOutcome:
    """``netkit monitor``: serve /metrics, run the rounds until stopped, and return the totals.

    SIGINT and SIGTERM stop it through one :class:`StopSignal`, installed before the first status
    line, so a SIGTERM that arrives right after "listening on" is already a clean stop; SIGHUP is
    not among them: it re-reads the configuration through ``loader`` (``Monitor.run``). The first
    textfile write is strict (a path that cannot be written is an error at start, not a warning).
    ``view`` is entered around the rounds only, after the status lines (the live dashboard).
    """
    config = monitor.config
    async with StopSignal(signals=(signal.SIGINT, signal.SIGTERM)) as stop:
        monitor.write_textfile(strict=True)
        server = MetricsServer(monitor.registry, *config.listen) if config.listen else None
        try:
            if server is not None:
                # short enough for a 70-column terminal; "listening on HOST:PORT" is what scripts wait for
                monitor.on_info(f"netkit monitor: listening on {server.address} (/metrics)")
            if config.textfile:
                monitor.on_info(f"netkit monitor: writing metrics to {config.textfile}")
            n = len(config.targets)
            common = dict(config.common_labels)
            # a mesh monitor says which host of which mesh it is (its source and mesh labels)
            mesh = f" (mesh {common['mesh']} as {common['source']})" if "mesh" in common and "source" in common \
                else ""
            # SIGHUP is named only when it does something: without --config there is nothing to re-read
            monitor.on_info(f"netkit monitor: {n} target{'s' if n != 1 else ''}{mesh}; "
                            + (f"SIGHUP reloads {config_path}, " if config_path else "") + "SIGTERM stops")
            with view():
                await monitor.run(stop, loader=loader, rounds=rounds)
        finally:
            if server is not None:
                server.close()
    return MonitorOutcome(targets=monitor.target_totals(), interrupted=stop.interrupted,
                          rounds_limited=rounds is not None)
