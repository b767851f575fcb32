"""``netkit trace``: rounds of TTL-limited probes to each target, concurrently (the io side).

The probe plan and the matching of answers (``netkit.core.trace_plan``), the per-hop statistics
(``netkit.core.trace_hops``) and the ICMP error formats (``netkit.core.icmp_errors``) are pure; this
module owns the loop: it sends what the plan says is due, feeds answers and timeouts back, and
sleeps in ``select`` until the next round, timeout or answer. The sockets are ``trace_probers``'.

The loop is a plain selector, not asyncio, for two reasons: every answer arrives on a socket's
error queue, which the kernel announces as POLLERR, and libuv (uvloop) stops watching a socket
that reports it; and the first complete path of a near target takes milliseconds, so importing
asyncio would be most of the command's time. :func:`trace_targets` wraps the loop for asyncio
callers (``netkit monitor``) by running it in a thread.
"""

from __future__ import annotations

import os
import queue
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netkit.core.kernel_rtt import Timestamps, pick_rtt_stamped, prevailing
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
from netkit.io.resolve import ResolveError, resolve_sync

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

#: Reverse lookups: at most this many addresses per run, this many at once, this long at the end.
MAX_NAMES = 256
NAME_WORKERS = 4
NAME_WAIT_S = 1.0
#: The longest one wait in the loop: a stop asked from another thread is seen within it.
MAX_WAIT_S = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class LiveTrace:
    """One target while a run goes on, for a live view: ``snapshot()`` is its trace so far."""

    label: str
    snapshot: Callable[[], TargetTrace]


#: Gets every probe outcome as it happens (jsonl events): the target's label and the event.
EventSink = Callable[[str, HopEvent], None]


class SelectorPoller:
    """The few loop methods the probers use (asyncio's names), over one ``selectors`` selector."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._callbacks: dict[int, dict[int, tuple[Callable[..., Any], tuple[Any, ...]]]] = {}

    def _set(self, fd: Any, event: int, entry: tuple[Callable[..., Any], tuple[Any, ...]] | None) -> None:
        key = fd if isinstance(fd, int) else fd.fileno()
        entries = self._callbacks.setdefault(key, {})
        if entry is None:
            entries.pop(event, None)
        else:
            entries[event] = entry
        mask = 0
        for e in entries:
            mask |= e
        try:
            if mask == 0:
                self._callbacks.pop(key, None)
                self.selector.unregister(key)
            elif key in self.selector.get_map():
                self.selector.modify(key, mask)
            else:
                self.selector.register(key, mask)
        except (KeyError, ValueError, OSError):
            self._callbacks.pop(key, None)

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:
        self._set(fd, selectors.EVENT_READ, (callback, args))

    def remove_reader(self, fd: Any) -> bool:
        self._set(fd, selectors.EVENT_READ, None)
        return True

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:
        self._set(fd, selectors.EVENT_WRITE, (callback, args))

    def remove_writer(self, fd: Any) -> bool:
        self._set(fd, selectors.EVENT_WRITE, None)
        return True

    def poll(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` and run the callbacks of what became ready."""
        for key, mask in self.selector.select(timeout_s):
            entries = self._callbacks.get(key.fd, {})
            for event in (selectors.EVENT_READ, selectors.EVENT_WRITE):
                entry = entries.get(event)
                if mask & event and entry is not None:
                    entry[0](*entry[1])

    def close(self) -> None:
        self.selector.close()


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
        return any(a not in self.names for a in list(self._asked))


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
        self.finished = False
        self.poller: SelectorPoller | None = None
        self._sent_real: dict[int, int] = {}
        self.stamp_counts: dict[Timestamps, int] = {}
        self.start_ns = time.monotonic_ns()
        self.end_ns: int | None = None
        self.pmtu: PmtuResult | None = None

    def open(self, poller: SelectorPoller) -> None:
        self.poller = poller
        try:
            res = resolve_sync(self.target.host, 0, family=self.cfg.family, type=socket.SOCK_DGRAM)
        except ResolveError as exc:
            self.error = exc.reason
            self.finished = True
            return
        self.address = res.address
        prober_type = PROBERS[self.cfg.method]
        self.start_ns = time.monotonic_ns()
        cfg = self.cfg
        deadline = None if cfg.duration_s is None else self.start_ns + int(cfg.duration_s * 1e9)
        self.plan = TracePlan(start_ns=self.start_ns, first_hop=cfg.first_hop, max_hops=cfg.max_hops,
                              window=cfg.window, timeout_ns=int(cfg.timeout_s * 1e9),
                              interval_ns=int(cfg.interval_s * 1e9), rounds=cfg.count, deadline_ns=deadline)
        prober = prober_type(res.address, res.family, cfg, match=self.plan.match, on_answer=self._on_answer,
                             poller=poller)
        self.prober = prober
        prober.open()  # RuntimeFailure (no permission) goes up: the whole run cannot be done here

    def _on_answer(self, seq: int, address: str, answer: Answer, rx_mono: int, rx_real: int | None,
                   mtu: int | None, kernel_rtt_ns: int | None = None) -> None:
        plan = self.plan
        if plan is None:
            return
        if answer is Answer.FRAG_NEEDED:
            return  # trace probes are small and may fragment; path MTU work has its own probes
        sent_mono = plan.sent_ns_of(seq)
        if sent_mono is None or rx_mono - sent_mono > plan.timeout_ns:
            return  # late (e.g. the answer to the kernel's own SYN retry): the timeout settles it
        tx_real = self.prober.take_tx(seq) if self.prober is not None else None
        rtt, kind = pick_rtt_stamped(rx_mono - sent_mono, self._sent_real.pop(seq, None), tx_real, rx_real)
        if kernel_rtt_ns is not None and 0 < kernel_rtt_ns <= rx_mono - sent_mono:
            rtt, kind = kernel_rtt_ns, Timestamps.KERNEL_BOTH  # the kernel timed the handshake itself
        ev = plan.answer(seq, address, answer, rtt, mtu=mtu)
        if ev is None:
            return
        self.stamp_counts[kind] = self.stamp_counts.get(kind, 0) + 1
        self._record(ev)

    def _record(self, ev: HopEvent) -> None:
        if not self.table.record(ev):
            return
        if ev.address is not None:
            self.names.ask(ev.address)
        if self.sink is not None:
            self.sink(self.label, ev)

    def step(self, now: int) -> int | None:
        """Settle timeouts and send what is due; when to come back (None: this target is done)."""
        plan, prober = self.plan, self.prober
        if plan is None or prober is None or self.finished:
            self.finished = True
            return None
        tcp = prober if isinstance(prober, TcpTraceProber) else None
        for ev in plan.expire(now):
            self._sent_real.pop(ev.seq, None)
            prober.take_tx(ev.seq)
            if tcp is not None:
                tcp.expired(ev.seq)
            self._record(ev)
        for i, spec in enumerate(plan.to_send(now)):
            if i and self.poller is not None:
                # Answers that came back during the burst are read now, not after it: a reply timed
                # in user space (a tcp RST) would otherwise carry the rest of the burst in its RTT.
                self.poller.poll(0)
            if plan.outstanding(spec.seq) is None:
                continue  # the destination answered during the burst: a probe beyond it goes nowhere new
            stamp = prober.send(spec)
            if stamp is None:
                plan.unsent(spec.seq)
                continue
            plan.sent(spec.seq, stamp[0])
            self._sent_real[spec.seq] = stamp[1]
        # Probes the plan forgot (beyond the destination) get no answer or timeout: drop their stamps.
        for seq in [s for s in self._sent_real if plan.sent_ns_of(s) is None]:
            del self._sent_real[seq]
            prober.take_tx(seq)
            if tcp is not None:
                tcp.expired(seq)
        now = time.monotonic_ns()
        if plan.finished(now):
            self.finished = True
            self.end_ns = now
            return None
        return plan.next_wakeup_ns(now)

    def abort(self) -> None:
        """Stop now: no more rounds, probes in flight forgotten (an interrupted run does not wait)."""
        if self.plan is not None:
            self.plan.stop()
            self.plan.drop_outstanding()
        if not self.finished:
            self.finished = True
            self.end_ns = time.monotonic_ns()

    def close(self) -> None:
        if self.prober is not None:
            self.prober.close()

    @property
    def timestamps(self) -> str | None:
        """Which clocks timed most answers ("kernel-both", "kernel-rx", "user"); None without any."""
        kind = prevailing(dict(self.stamp_counts))
        return None if kind is None else str(kind)

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


def trace_sync(targets: list[Target], cfg: TraceConfig, *, stopped: Callable[[], bool],
               sink: EventSink | None = None, on_start: Callable[[list[LiveTrace]], None] | None = None,
               poller: SelectorPoller | None = None) -> list[TargetTrace]:
    """Trace every target at once until done or ``stopped()``; the results in the targets' order.

    ``stopped`` is asked at least every MAX_WAIT_S and after every wakeup of ``poller`` (which a
    caller may give with its own wakeup descriptor registered)."""
    names = ReverseNames(cfg.resolve_names)
    runs = [_TargetRun(t, target_label(t, cfg.method), cfg, names, sink) for t in targets]
    own_poller = poller is None
    poll = poller if poller is not None else SelectorPoller()
    try:
        for r in runs:
            r.open(poll)
        if on_start is not None:
            on_start([LiveTrace(r.label, r.snapshot) for r in runs])
        active = [r for r in runs if not r.finished]
        while active and not stopped():
            now = time.monotonic_ns()
            wakes = [w for w in (r.step(now) for r in active) if w is not None]
            active = [r for r in active if not r.finished]
            if not active:
                break
            wait = max(0.0, (min(wakes) - time.monotonic_ns()) / 1e9) if wakes else MAX_WAIT_S
            poll.poll(min(wait, MAX_WAIT_S))
        if stopped():
            for r in runs:
                r.abort()
        if cfg.pmtu and not stopped():
            from netkit.io.measure.trace_pmtu import find_pmtu

            for r in runs:
                if r.address is not None and r.table.reached:
                    r.pmtu = find_pmtu(r.address, cfg, r.table, stopped, poller=poll)
        deadline = time.monotonic() + NAME_WAIT_S
        while names.pending() and time.monotonic() < deadline and not stopped():
            time.sleep(0.01)
    finally:
        for r in runs:
            r.close()
        if own_poller:
            poll.close()
    return [r.snapshot() for r in runs]


def trace(targets: list[str | Target], cfg: TraceConfig | None = None, *, max_loss_pct: float | None = None,
          max_rtt_ms: float | None = None, stopped: Callable[[], bool] | None = None,
          on_event: EventSink | None = None) -> TraceResult:
    """The library's trace: ``trace(["198.18.0.9"], TraceConfig(count=3))`` returns a TraceResult.

    Targets are host names or addresses (or Targets). Unlike the command it leaves signals alone:
    ``stopped`` (asked at least every MAX_WAIT_S) ends it early. Async twin: :func:`trace_targets`."""
    config = cfg if cfg is not None else TraceConfig()
    parsed = [t if isinstance(t, Target) else Target(t, 0) for t in targets]
    start = time.monotonic_ns()
    stop = stopped if stopped is not None else (lambda: False)
    found = tuple(trace_sync(parsed, config, stopped=stop, sink=on_event))
    return TraceResult(targets=found, config=config,
                       thresholds=check_trace_thresholds(found, max_loss_pct, max_rtt_ms),
                       interrupted=stop(), elapsed_ns=time.monotonic_ns() - start)


async def trace_targets(targets: list[Target], cfg: TraceConfig, *, stop: asyncio.Event,
                        sink: EventSink | None = None,
                        on_start: Callable[[list[LiveTrace]], None] | None = None) -> list[TargetTrace]:
    """:func:`trace_sync` for asyncio callers: the loop runs in a thread, ``stop`` ends it."""
    import asyncio

    done = threading.Event()

    def stopped() -> bool:
        return stop.is_set() or done.is_set()

    try:
        return await asyncio.to_thread(trace_sync, targets, cfg, stopped=stopped, sink=sink, on_start=on_start)
    finally:
        done.set()  # a cancelled caller: the thread sees it within MAX_WAIT_S and closes its sockets


class _SignalStop:
    """SIGINT, SIGTERM and SIGHUP stop the run instead of killing it: the handler notes the signal,
    and the wakeup descriptor makes the loop's ``select`` return at once to see it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        self._old_wakeup = -1
        self._pipe: tuple[int, int] | None = None

    def install(self, poller: SelectorPoller) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._pipe = (r, w)
        poller.add_reader(r, self._drain)
        self._old_wakeup = signal.set_wakeup_fd(w)
        for sig in STOP_SIGNALS:
            self._old[sig] = signal.signal(sig, self._note)

    def _note(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum

    def _drain(self) -> None:
        if self._pipe is not None:
            try:
                os.read(self._pipe[0], 512)
            except OSError:
                pass

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        if self._pipe is not None:
            signal.set_wakeup_fd(self._old_wakeup)
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None


@contextmanager
def _stop_on_signals(poller: SelectorPoller) -> Iterator[_SignalStop]:
    stop = _SignalStop()
    stop.install(poller)
    try:
        yield stop
    finally:
        stop.restore()


def run_trace(targets: list[Target], cfg: TraceConfig, *, max_loss_pct: float | None = None,
              max_rtt_ms: float | None = None, on_event: EventSink | None = None,
              on_start: Callable[[list[LiveTrace]], None] | None = None) -> TraceResult:
    """``netkit trace`` from its config to its result: every target at once, until the rounds or the
    duration are done or SIGINT/SIGTERM/SIGHUP arrives (then ``interrupted`` is True and the result
    holds what was measured). ``on_event`` raising BrokenPipeError stops the run; the error is raised
    again after it. Raises RuntimeFailure (exit 3) when the method cannot run here (no permission)."""
    reader_gone = False

    def sink(label: str, ev: HopEvent) -> None:
        nonlocal reader_gone
        if reader_gone or on_event is None:
            return
        try:
            on_event(label, ev)
        except BrokenPipeError:
            reader_gone = True

    start = time.monotonic_ns()
    poller = SelectorPoller()
    try:
        with _stop_on_signals(poller) as sig:
            results = trace_sync(targets, cfg, stopped=lambda: reader_gone or sig.signum is not None,
                                 sink=sink, on_start=on_start, poller=poller)
            interrupted = sig.signum is not None
    finally:
        poller.close()
    if reader_gone:
        raise BrokenPipeError
    found = tuple(results)
    return TraceResult(targets=found, config=cfg,
                       thresholds=check_trace_thresholds(found, max_loss_pct, max_rtt_ms),
                       interrupted=interrupted, elapsed_ns=time.monotonic_ns() - start)
