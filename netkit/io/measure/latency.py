"""``measure latency``: the scheduler and the command's one entry point.

:func:`measure_target` drives one prober (``netkit.io.measure.latency_probers``): it sends probe
``i`` at ``start + i * interval`` by the monotonic clock, expires timeouts, waits for the last
replies and, against netkit's reflector, asks for the reflector's final count (per-direction
loss). :func:`measure_latency` runs several targets concurrently.

:func:`run_latency` is the command's one entry point: it runs the probers under the stop signal,
streams every reply to the caller's ``on_reply`` (a closed reader ends the run), checks the
thresholds and returns the :class:`LatencyResult`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from netkit.core.errors import CheckFailed
from netkit.core.latency_models import (
    LatencyConfig,
    LatencyResult,
    LiveTarget,
    Method,
    ProbeEvent,
    TargetResult,
    check_thresholds,
    stall_probes,
    target_label,
)
from netkit.core.targets import Target
from netkit.io.clients.reflector_query import NS, STOP_GRACE_S
from netkit.io.measure.latency_probers import PROBERS, EventSink, LatencyProber
from netkit.io.resolve import failure_reason


async def _wait(ev: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    try:
        await asyncio.wait_for(ev.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    ev.clear()


#: How late a probe due before ``--duration``'s end may still be sent after it (a stall's catch-up).
CATCH_UP_NS = 50_000_000
#: At -i 0, an unanswered probe holds the next one back at most this long (ping -f's 10 ms).
FLOOD_GAP_NS = 10_000_000


async def measure_target(prober: LatencyProber, stop: asyncio.Event, *, deadline_ns: int | None = None) -> TargetResult:
    """Run one prober to the end (count, duration or ``stop``) and return its result.

    ``stop`` is an Event (set by the StopSignal watcher): set, it ends sending at once and
    skips waiting for the last replies, so Ctrl-C returns what was measured.

    ``--duration`` is wall-clock time from the first probe, whatever the interval: no probe is
    sent once it has passed (but one due before it, at most ``CATCH_UP_NS`` late), and ``-i 0``
    floods until then like ``ping -f``: the next probe as soon as the last is answered, or
    ``FLOOD_GAP_NS`` after it left. The run then waits at most ``--timeout`` for
    the replies still in flight (none on a path that answers everything). Behind schedule (an
    interval the sender cannot reach) the loop yields after every probe, so replies are read
    while it catches up, and the result's ``send_ns`` gives the achieved rate.

    ``deadline_ns`` (``netkit monitor``'s round bound, monotonic ns): no probe is sent that could
    not be answered within its timeout before it, and nothing waits past it.
    """
    cfg, acc = prober.cfg, prober.acc
    start = time.perf_counter_ns()
    try:
        try:
            await prober.open()
        except CheckFailed as exc:
            prober.error = str(exc).split(": ", 1)[-1]
            return prober.result(0)
        except OSError as exc:
            prober.error = failure_reason(exc)
            return prober.result(0)
        interval_ns = max(0, round(cfg.interval_s * NS))
        cap = prober.max_in_flight if interval_ns == 0 else None
        seq = 0
        first_send = last_send_ns = 0
        start = time.perf_counter_ns()
        # The schedule (probe i at start + i * interval) counts from the first probe, so that
        # -d D -i I sends D/I probes whatever the name lookup or connect took.
        end_ns = start + round(cfg.duration_s * NS) if cfg.duration_s is not None else None
        # The monitor's bound: the last moment a probe can leave and still be judged in time.
        last_ok = None if deadline_ns is None else deadline_ns - acc.timeout_ns
        if last_ok is not None:
            end_ns = last_ok if end_ns is None else min(end_ns, last_ok)
        # Past --duration's end, a probe that was due before it still goes when the sender is at
        # most CATCH_UP_NS late (a timer or the scheduler woke it late); a sender further behind
        # (an interval it cannot reach) and -i 0 (no schedule) stop at the end. Past the
        # monitor's bound nothing goes: it could not be answered in time.
        slack_ns = CATCH_UP_NS if interval_ns and last_ok is None else -1
        while not stop.is_set():
            if cfg.count is not None and seq >= cfg.count:
                break
            due = start + seq * interval_ns
            if end_ns is not None and due >= end_ns:
                break
            while True:
                now = time.perf_counter_ns()
                expired = acc.expire(now)
                if expired:
                    prober.on_expired(expired)
                over = end_ns is not None and now >= end_ns
                # -i 0 floods as ping -f does: the next probe when the last one is answered, or
                # FLOOD_GAP_NS after it left, whichever comes first. Probes never queue behind
                # each other in the socket or the peer, so each RTT is the path's, not the
                # sender's own backlog (256 probes in flight read 35 ms on loopback).
                flooding = interval_ns == 0 and acc.outstanding > 0 and now - last_send_ns < FLOOD_GAP_NS
                full = flooding or (cap is not None and acc.outstanding >= cap)
                if (now >= due and not full) or stop.is_set() or over:
                    break
                nd = acc.next_deadline()
                wake = due if not full else (nd if nd is not None else now + NS // 1000)
                if flooding:
                    wake = min(wake, last_send_ns + FLOOD_GAP_NS)
                if nd is not None:
                    wake = min(wake, nd)
                if end_ns is not None:
                    wake = min(wake, end_ns)
                await _wait(prober.changed, max(0, wake - now) / NS)
            if stop.is_set() or (over and (full or now - due > slack_ns)):
                break
            prober.send(seq)
            last_send_ns = time.perf_counter_ns()
            if seq == 0:
                first_send = now
            seq += 1
            if start + seq * interval_ns <= last_send_ns:
                # As fast as possible (-i 0) or behind schedule: the next probe is due already.
                # Yield to the loop so replies are read (and timeouts run) between probes.
                await asyncio.sleep(0)
        # Sending time: from the first probe until the next one would have been due.
        send_ns = 0 if seq == 0 else (last_send_ns - first_send) + interval_ns
        # The last replies: wait until every probe is answered or timed out (after Ctrl-C, only
        # a short grace for replies already in flight).
        hurry = stop.is_set()
        grace_end = time.perf_counter_ns() + int(STOP_GRACE_S * NS)
        while acc.outstanding:
            now = time.perf_counter_ns()
            expired = acc.expire(now)
            if expired:
                prober.on_expired(expired)
            nd = acc.next_deadline()
            if nd is None:
                break
            if stop.is_set():
                hurry = True
                if now >= grace_end:
                    break
                nd = min(nd, grace_end)
            if deadline_ns is not None:
                if now >= deadline_ns:
                    break
                nd = min(nd, deadline_ns)
            await _wait(prober.changed, (nd - now) / NS + 0.0005)
        await prober.final_query(hurry)
        return prober.result(time.perf_counter_ns() - start, send_ns)
    finally:
        prober.close()


async def measure_latency(targets: list[Target], cfg: LatencyConfig, *, stop: asyncio.Event | None = None,
                          sink: EventSink | None = None, labels: list[str] | None = None,
                          on_start: Callable[[list[LiveTarget]], None] | None = None) -> list[TargetResult]:
    """Measure every target concurrently; results in input order.

    ``sink`` receives every reply and timeout as it happens; ``on_start`` gets each target's
    running accounting (a live view reads it).
    """
    stop = stop or asyncio.Event()
    cls = PROBERS[Method(cfg.method)]
    probers = [cls(labels[i] if labels else str(t), t.host, t.port, cfg, sink) for i, t in enumerate(targets)]
    if on_start is not None:
        on_start([LiveTarget(p.label, p.acc) for p in probers])

    async def relay() -> None:
        await stop.wait()
        for p in probers:
            p.changed.set()

    watcher = asyncio.ensure_future(relay())
    try:
        return list(await asyncio.gather(*(measure_target(p, stop) for p in probers)))
    finally:
        watcher.cancel()


def measure_latency_sync(targets: list[Target], cfg: LatencyConfig) -> list[TargetResult]:
    """Blocking twin of :func:`measure_latency`."""
    from netkit.io.aio import run

    return run(measure_latency(targets, cfg))


def run_latency(targets: list[Target], cfg: LatencyConfig, *, max_loss_pct: float | None = None,
                max_rtt_ms: float | None = None, on_reply: EventSink | None = None,
                on_start: Callable[[list[LiveTarget]], None] | None = None) -> LatencyResult:
    """``netkit measure latency`` from its config to its result: every target at once, until the
    count or duration is done or SIGINT/SIGTERM/SIGHUP arrives (then ``interrupted`` is True and
    the result holds what was measured).

    ``on_reply`` gets every reply and timeout as it happens (the per-reply lines and jsonl events);
    when it raises BrokenPipeError (the reader of stdout went away) the run stops at once and the
    error is raised again after it, so the command ends quietly. ``on_start`` gets each target's
    running accounting for a live view. Raises CheckFailed when a keyed run got nothing back
    (the reflector's key differs: it drops what it cannot verify).
    """
    from netkit.io.aio import StopSignal, run

    labels = [target_label(t, cfg.method) for t in targets]
    reader_gone = False
    stop_event: asyncio.Event | None = None

    def sink(ev: ProbeEvent) -> None:
        # Runs inside socket callbacks: an exception here would be logged by the loop, not raised.
        nonlocal reader_gone
        if reader_gone or on_reply is None:
            return
        try:
            on_reply(ev)
        except BrokenPipeError:
            reader_gone = True
            if stop_event is not None:
                stop_event.set()

    async def main() -> tuple[list[TargetResult], bool]:
        nonlocal stop_event
        stop = stop_event = asyncio.Event()
        async with StopSignal() as sig:
            watcher = asyncio.ensure_future(sig.wait())
            watcher.add_done_callback(lambda _f: stop.set())
            try:
                results = await measure_latency(targets, cfg, stop=stop, sink=sink, labels=labels,
                                                on_start=on_start)
            finally:
                watcher.cancel()
            return results, sig.signum is not None

    results, interrupted = run(main())
    if reader_gone:
        raise BrokenPipeError  # the reader went away: the CLI ends quietly (141)
    if cfg.key is not None and not interrupted and all(
            r.acc.sent and not r.acc.received and not r.error for r in results):
        from netkit.io.servers.server_guard import WRONG_KEY_MESSAGE

        raise CheckFailed(WRONG_KEY_MESSAGE)
    thresholds = check_thresholds(results, max_loss_pct, max_rtt_ms, stall_after=stall_probes(cfg.interval_s))
    return LatencyResult(Method(cfg.method), results, thresholds, interrupted)
