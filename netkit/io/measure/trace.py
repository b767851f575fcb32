"""``netkit trace``: rounds of TTL-limited probes to each target, concurrently (the io side).

The probe plan and the matching of answers (``netkit.core.trace_plan``), the per-hop statistics
(``netkit.core.trace_hops``) and the ICMP error formats (``netkit.core.icmp_errors``) are pure; this
module owns the loop: it sends what the plan says is due, feeds answers and timeouts back, and
sleeps until the next round, timeout or answer. The sockets are ``trace_probers``'.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from netkit.core.kernel_rtt import pick_rtt
from netkit.core.targets import Target
from netkit.core.trace_hops import HopTable
from netkit.core.trace_models import (
    Answer,
    HopEvent,
    PmtuResult,
    TargetTrace,
    TraceConfig,
    TraceMethod,
    TraceResult,
    check_trace_thresholds,
)
from netkit.core.trace_plan import TracePlan
from netkit.io.measure.trace_probers import PROBERS, TcpTraceProber, TraceProber
from netkit.io.resolve import ResolveError, resolve

#: Reverse lookups: at most this many addresses per run, this many at once, this long at the end.
MAX_NAMES = 256
NAME_WORKERS = 4
NAME_WAIT_S = 1.0


@dataclass
class LiveTrace:
    """One target while a run goes on, for a live view: ``snapshot()`` is its trace so far."""

    label: str
    snapshot: Callable[[], TargetTrace]


#: Gets every probe outcome as it happens (jsonl events): the target's label and the event.
EventSink = Callable[[str, HopEvent], None]


class ReverseNames:
    """Reverse DNS names for hop addresses, looked up in a few daemon threads so a slow resolver
    neither delays a round nor holds the process at exit; bounded in addresses and queue."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.names: dict[str, str | None] = {}
        self._asked: set[str] = set()
        self._queue: queue.Queue[str] = queue.Queue(maxsize=MAX_NAMES)
        self._started = False

    def ask(self, address: str) -> None:
        if not self.enabled or address in self._asked or len(self._asked) >= MAX_NAMES or address == "local":
            return
        self._asked.add(address)
        if not self._started:
            self._started = True
            for _ in range(NAME_WORKERS):
                threading.Thread(target=self._work, daemon=True, name="netkit-rdns").start()
        try:
            self._queue.put_nowait(address)
        except queue.Full:
            pass

    def _work(self) -> None:
        while True:
            address = self._queue.get()
            try:
                name: str | None = socket.getnameinfo((address, 0), socket.NI_NAMEREQD)[0]
            except (OSError, UnicodeError):
                name = None
            self.names[address] = name if name != address else None

    def pending(self) -> bool:
        return any(a not in self.names for a in self._asked)


class _TargetRun:
    """One target: its plan, its hop table and its prober, driven by :meth:`run`."""

    def __init__(self, target: Target, label: str, cfg: TraceConfig, names: ReverseNames,
                 sink: EventSink | None) -> None:
        self.target = target
        self.label = label
        self.cfg = cfg
        self.names = names
        self.sink = sink
        self.table = HopTable()
        self.address: str | None = None
        self.prober: TraceProber | None = None
        self.plan: TracePlan | None = None
        self.error: str | None = None
        self.kick = asyncio.Event()
        self._sent_real: dict[int, int] = {}
        self.kernel_used = 0
        self.answers = 0
        self.start_ns = time.monotonic_ns()
        self.end_ns: int | None = None
        self.pmtu: PmtuResult | None = None

    async def open(self) -> None:
        try:
            res = await resolve(self.target.host, 0, family=self.cfg.family, type=socket.SOCK_DGRAM)
        except ResolveError as exc:
            self.error = exc.reason
            return
        self.address = res.address
        prober_type = PROBERS[self.cfg.method]
        self.start_ns = time.monotonic_ns()
        cfg = self.cfg
        deadline = None if cfg.duration_s is None else self.start_ns + int(cfg.duration_s * 1e9)
        self.plan = TracePlan(start_ns=self.start_ns, first_hop=cfg.first_hop, max_hops=cfg.max_hops,
                              window=cfg.window, timeout_ns=int(cfg.timeout_s * 1e9),
                              interval_ns=int(cfg.interval_s * 1e9), rounds=cfg.count, deadline_ns=deadline)
        prober = prober_type(res.address, res.family, cfg, match=self.plan.match, on_answer=self._on_answer)
        prober.open()  # RuntimeFailure (no permission) goes up: the whole run cannot be done here
        self.prober = prober

    def _on_answer(self, seq: int, address: str, answer: Answer, rx_mono: int, rx_real: int | None,
                   mtu: int | None) -> None:
        plan = self.plan
        if plan is None:
            return
        if answer is Answer.FRAG_NEEDED:
            return  # trace probes are small and may fragment; path MTU work has its own probes
        sent_mono = plan.sent_ns_of(seq)
        if sent_mono is None:
            return
        rtt, used_kernel = pick_rtt(rx_mono - sent_mono, rx_real, self._sent_real.pop(seq, None))
        ev = plan.answer(seq, address, answer, rtt, mtu=mtu)
        if ev is None:
            return
        self.answers += 1
        self.kernel_used += used_kernel
        self._record(ev)
        self.kick.set()

    def _record(self, ev: HopEvent) -> None:
        if not self.table.record(ev):
            return
        if ev.address is not None:
            self.names.ask(ev.address)
        if self.sink is not None:
            self.sink(self.label, ev)

    async def run(self, stop: asyncio.Event) -> None:
        plan, prober = self.plan, self.prober
        if plan is None or prober is None:
            return
        tcp = prober if isinstance(prober, TcpTraceProber) else None
        while True:
            now = time.monotonic_ns()
            for ev in plan.expire(now):
                self._sent_real.pop(ev.seq, None)
                if tcp is not None:
                    tcp.expired(ev.seq)
                self._record(ev)
            for spec in plan.to_send(now):
                stamp = prober.send(spec)
                if stamp is None:
                    plan.unsent(spec.seq)
                    continue
                plan.sent(spec.seq, stamp[0])
                self._sent_real[spec.seq] = stamp[1]
            now = time.monotonic_ns()
            if plan.finished(now):
                break
            wake = plan.next_wakeup_ns(now)
            self.kick.clear()
            waits = [asyncio.ensure_future(self.kick.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waits, timeout=None if wake is None else max(0.0, (wake - now) / 1e9),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if stop.is_set():
                plan.stop()
                plan.drop_outstanding()
                break
        self.end_ns = time.monotonic_ns()

    def close(self) -> None:
        if self.prober is not None:
            self.prober.close()

    @property
    def timestamps(self) -> str:
        if self.kernel_used and self.kernel_used == self.answers:
            return "kernel-rx"
        return "user" if not self.kernel_used else "mixed"

    def snapshot(self) -> TargetTrace:
        hops = self.table.hops(self.names.names)
        plan = self.plan
        end = self.end_ns if self.end_ns is not None else time.monotonic_ns()
        error = self.error
        if error is None and self.prober is not None and self.prober.error and not self.table.reached:
            error = self.prober.error
        return TargetTrace(target=self.label, address=self.address, method=self.cfg.method,
                           reached=self.table.reached, hops=hops, rounds=plan.rounds_done if plan else 0,
                           pmtu=self.pmtu, error=error, timestamps=self.timestamps,
                           elapsed_ns=end - self.start_ns)


def target_label(target: Target, method: TraceMethod) -> str:
    return target.host


async def trace_targets(targets: list[Target], cfg: TraceConfig, *, stop: asyncio.Event,
                        sink: EventSink | None = None,
                        on_start: Callable[[list[LiveTrace]], None] | None = None) -> list[TargetTrace]:
    """Trace every target at once; the results in the targets' order."""
    names = ReverseNames(cfg.resolve_names)
    runs = [_TargetRun(t, target_label(t, cfg.method), cfg, names, sink) for t in targets]
    try:
        await asyncio.gather(*(r.open() for r in runs))
        if on_start is not None:
            on_start([LiveTrace(r.label, r.snapshot) for r in runs])
        await asyncio.gather(*(r.run(stop) for r in runs))
        if cfg.pmtu and not stop.is_set():
            from netkit.io.measure.trace_pmtu import discover_pmtu

            for r in runs:
                if r.address is not None and r.table.reached and r.plan is not None:
                    r.pmtu = await discover_pmtu(r.address, cfg, r.table, stop)
        if names.pending():
            deadline = time.monotonic() + NAME_WAIT_S
            while names.pending() and time.monotonic() < deadline and not stop.is_set():
                await asyncio.sleep(0.01)
    finally:
        for r in runs:
            r.close()
    return [r.snapshot() for r in runs]


def run_trace(targets: list[Target], cfg: TraceConfig, *, max_loss_pct: float | None = None,
              max_rtt_ms: float | None = None, on_event: EventSink | None = None,
              on_start: Callable[[list[LiveTrace]], None] | None = None) -> TraceResult:
    """``netkit trace`` from its config to its result: every target at once, until the rounds or the
    duration are done or SIGINT/SIGTERM/SIGHUP arrives (then ``interrupted`` is True and the result
    holds what was measured). ``on_event`` raising BrokenPipeError stops the run; the error is raised
    again after it. Raises RuntimeFailure (exit 3) when the method cannot run here (no permission)."""
    from netkit.io.aio import StopSignal, run

    reader_gone = False
    stop_event: asyncio.Event | None = None

    def sink(label: str, ev: HopEvent) -> None:
        nonlocal reader_gone
        if reader_gone or on_event is None:
            return
        try:
            on_event(label, ev)
        except BrokenPipeError:
            reader_gone = True
            if stop_event is not None:
                stop_event.set()

    async def main() -> tuple[list[TargetTrace], bool]:
        nonlocal stop_event
        stop = stop_event = asyncio.Event()
        async with StopSignal() as sig:
            watcher = asyncio.ensure_future(sig.wait())
            watcher.add_done_callback(lambda _f: stop.set())
            try:
                results = await trace_targets(targets, cfg, stop=stop, sink=sink, on_start=on_start)
            finally:
                watcher.cancel()
            return results, sig.signum is not None

    start = time.monotonic_ns()
    # Not uvloop: libuv stops watching a socket whose poll says POLLERR, and every answer here
    # arrives on an error queue, which the kernel announces exactly so.
    results, interrupted = run(main(), use_uvloop=False)
    if reader_gone:
        raise BrokenPipeError
    found = tuple(results)
    return TraceResult(targets=found, config=cfg,
                       thresholds=check_trace_thresholds(found, max_loss_pct, max_rtt_ms),
                       interrupted=interrupted, elapsed_ns=time.monotonic_ns() - start)
