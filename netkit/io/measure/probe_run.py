"""One ``netkit probe`` run: targets in, a :class:`ProbeRunResult` out, reported as it goes.

:func:`probe_targets` is the one entry point. It runs the targets of a :class:`TargetSource` under a
:class:`ProbeRunConfig` in one of three shapes:

- a streaming pass (the default): targets, possibly millions, are read lazily and probed in
  batches of :attr:`ProbeRunConfig.batch_size`; each batch is handed to the listener (to write)
  and dropped, so memory does not grow with the targets;
- ``--wait``: every target is retried until all are up (or one, with ``--any``) or the deadline;
- ``--repeat N``: N rounds, ``--interval`` apart, tallied per target.

Each pass uses the asyncio prober (:mod:`netkit.io.measure.probe`) or, for many plain connects,
the fast scan loop (:mod:`netkit.io.measure.scan`) in a worker thread. SIGINT, SIGTERM and SIGHUP
stop a run through one :class:`~netkit.io.aio.StopSignal`: the targets it cut short end with the
reason (``interrupted; last attempt: ...``) and the run still returns a whole result.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from netkit.core.errors import InputError
from netkit.core.probe_models import (
    NS,
    ProbeAttempt,
    ProbeListener,
    ProbeResult,
    ProbeRunConfig,
    ProbeRunResult,
    ProbeTotals,
    RepeatedResult,
    cut_short_result,
    ns_to_ms,
    passed,
    passed_repeated,
    round_pause_ns,
    summarize,
    summarize_repeated,
)
from netkit.core.targets import Target, check_texts, expand_texts, is_ip_literal, numbered_target_lines
from netkit.io.aio import StopSignal, run_until_stopped
from netkit.io.measure.probe import TargetProber, probe_many, tls_context_for
from netkit.io.measure.scan import ScanTarget, scan
from netkit.io.resolve import Resolved, ResolveError

NO_TARGETS = "no targets: give HOST:PORT arguments, '-' or --targets-file"
ResultCallback = Callable[[int, ProbeResult], None]


class TargetSource:
    """The targets of one invocation, expanded lazily: a million lines never become a list.

    Arguments and ``--targets-file`` can be read twice: :meth:`check` reads them once first, so a
    bad line is a usage error (exit 2, ``targets.txt:3: ...``) before anything is probed or printed.
    Targets from stdin (``-``) are read once, as they are probed: a bad line there ends the run.
    """

    def __init__(self, args: Sequence[str], targets_file: str | None) -> None:
        self.args = tuple(args)
        self.targets_file = targets_file

    @property
    def reads_stdin(self) -> bool:
        return "-" in self.args or self.targets_file == "-"

    def texts(self) -> Iterator[tuple[str | None, str]]:
        """``(where, text)``: where is None for an argument, ``FILE:LINE`` for a line of a file."""
        for arg in self.args:
            if arg == "-":
                yield from numbered_target_lines(sys.stdin, "stdin")
            else:
                yield None, arg
        if self.targets_file == "-":
            yield from numbered_target_lines(sys.stdin, "stdin")
        elif self.targets_file is not None:
            try:
                f = open(self.targets_file, encoding="utf-8", errors="replace")
            except OSError as exc:
                raise InputError(f"cannot read --targets-file {self.targets_file}: {exc.strerror or exc}") from None
            with f:
                yield from numbered_target_lines(f, self.targets_file)

    def __iter__(self) -> Iterator[Target]:
        return expand_texts(self.texts())

    def check(self) -> None:
        """Parse every argument and line once (when they can be read again); none at all is exit 2."""
        if not self.reads_stdin and check_texts(self.texts()) == 0:
            raise InputError(NO_TARGETS)


def probe_targets(config: ProbeRunConfig, source: TargetSource, listener: ProbeListener) -> ProbeRunResult:
    """Run ``netkit probe`` to the end (or to SIGINT/SIGTERM/SIGHUP) and return the whole result."""
    source.check()
    if config.options.tls:
        tls_context_for(config.options)  # a bad --cafile is exit 2 before anything is probed
    return run_until_stopped(lambda stop: run_probe(config, source, listener, stop or StopSignal()), StopSignal())


async def run_probe(config: ProbeRunConfig, source: TargetSource, listener: ProbeListener,
                    stop: StopSignal) -> ProbeRunResult:
    """:func:`probe_targets` inside a running loop, stopped by ``stop``."""
    if config.streaming:
        return await _stream_run(config, iter(source), listener, stop)
    targets = list(source)  # --wait and --repeat report on every target at the end: they hold the list
    if not targets:
        raise InputError(NO_TARGETS)
    if config.wait:
        return await _wait_run(config, targets, listener, stop)
    return await _repeat_run(config, targets, listener, stop)


# ----- the three shapes of a run ----------------------------------------------------------------------
async def _stream_run(config: ProbeRunConfig, targets: Iterator[Target], listener: ProbeListener,
                      stop: StopSignal) -> ProbeRunResult:
    """One pass in batches: each batch probed, handed to the listener and dropped. One
    :class:`TargetProber` for every batch: one deadline, one resolver cache."""
    totals = ProbeTotals()
    batch = list(itertools.islice(targets, config.batch_size))
    if not batch:
        raise InputError(NO_TARGETS)
    use_scan = config.uses_scan(len(batch))
    rows: list[ProbeResult] = []
    interrupted = False
    listener.started(len(batch) if len(batch) < config.batch_size else None)
    prober = TargetProber(config.options, on_attempt=listener.attempted)

    def streamed(i: int, r: ProbeResult) -> None:
        listener.result(i, r, None, None)

    while batch:
        if stop.is_set():
            # Interrupted: the targets never started end as such, without a connect each.
            so_far = ns_to_ms(prober.clock.now_ns() - (prober.start_ns or 0)) or 0.0
            results = [cut_short_result(t, so_far, "interrupted") for t in batch]
            for i, r in enumerate(results):
                streamed(i, r)
        else:
            results, cut = await _one_pass(batch, config, prober, stop, streamed, use_scan=use_scan)
            interrupted = interrupted or cut
        for r in results:
            totals.add(r)
        listener.batch(results)
        if config.keep_rows:
            rows.extend(r for r in results if config.shows(r.ok))
        del results
        batch = list(itertools.islice(targets, config.batch_size))
    return ProbeRunResult(totals.summary(), totals.passed(any_=config.any_), interrupted or stop.is_set(), rows)


async def _wait_run(config: ProbeRunConfig, targets: list[Target], listener: ProbeListener,
                    stop: StopSignal) -> ProbeRunResult:
    """``--wait``: retry every target until all are up (``--any``: one) or the deadline passes."""
    first_up = asyncio.Event() if config.any_ else None

    def attempted(target: Target, attempts: int, att: ProbeAttempt) -> None:
        listener.attempted(target, attempts, att)
        if first_up is not None and att.state.ok:
            first_up.set()

    def streamed(i: int, r: ProbeResult) -> None:
        listener.result(i, r, None, None)

    listener.started(len(targets))
    prober = TargetProber(config.options, on_attempt=attempted)
    results, interrupted = await _one_pass(targets, config, prober, stop, streamed, enough=first_up)
    return ProbeRunResult(summarize(results), passed(results, any_=config.any_), interrupted,
                          [r for r in results if config.shows(r.ok)])


async def _repeat_run(config: ProbeRunConfig, targets: list[Target], listener: ProbeListener,
                      stop: StopSignal) -> ProbeRunResult:
    """``--repeat N``: N rounds whose starts are ``--interval`` apart, tallied per target."""
    rounds = config.repeat or 1
    agg: list[RepeatedResult | None] = [None] * len(targets)
    interrupted = False
    done = 0
    use_scan = config.uses_scan(len(targets))
    loop = asyncio.get_running_loop()
    for n in range(1, rounds + 1):
        round_start_ns = int(loop.time() * NS)
        listener.started(len(targets))

        def tallied(i: int, r: ProbeResult, n: int = n) -> None:
            prev = agg[i]
            cur = agg[i] = prev.add(r) if prev is not None else RepeatedResult(r, 1, 1 if r.ok else 0)
            listener.result(i, r, n, cur)

        prober = TargetProber(config.options, on_attempt=listener.attempted)
        _results, interrupted = await _one_pass(targets, config, prober, stop, tallied, use_scan=use_scan)
        done = n
        listener.round_ended(n, sum(1 for a in agg if a is not None and a.last.ok), len(targets))
        if interrupted or n == rounds:
            break
        pause_ns = round_pause_ns(int(config.interval_s * NS), round_start_ns, int(loop.time() * NS))
        if pause_ns and await _stopped_within(stop, pause_ns / NS):
            interrupted = True
            break
    tally = [a for a in agg if a is not None]
    shown = [a for a in tally if config.shows(a.last.ok)]
    return ProbeRunResult(summarize_repeated(tally), passed_repeated(tally, any_=config.any_), interrupted,
                          [a.last for a in shown], shown, done, rounds)


async def _stopped_within(stop: StopSignal, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` fires first; True when it did."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


# ----- one pass over a list of targets -----------------------------------------------------------------
async def _one_pass(targets: list[Target], config: ProbeRunConfig, prober: TargetProber, stop: StopSignal,
                    on_result: ResultCallback, *, use_scan: bool = False,
                    enough: asyncio.Event | None = None) -> tuple[list[ProbeResult], bool]:
    """Probe every target once (with its retries); returns (results in input order, interrupted).

    On a stop the unfinished targets end as ``interrupted`` with their latest attempt's words;
    ``enough`` ends the pass early without counting as an interruption (``--wait --any``).
    """
    if use_scan:
        return await _scan_pass(targets, config, prober, stop, on_result)
    last: dict[Target, tuple[int, ProbeAttempt]] = {}  # the latest attempt of each target
    reported = prober.on_attempt

    def attempted(target: Target, attempts: int, att: ProbeAttempt) -> None:
        last[target] = (attempts, att)
        if reported is not None:
            reported(target, attempts, att)

    prober.on_attempt = attempted
    done: dict[int, ProbeResult] = {}

    def collect(i: int, r: ProbeResult) -> None:
        done[i] = r
        on_result(i, r)

    work = asyncio.ensure_future(probe_many(targets, config.options, on_result=collect, prober=prober))
    waiters: set[asyncio.Future[Any]] = {work, asyncio.ensure_future(stop.wait())}
    if enough is not None:
        waiters.add(asyncio.ensure_future(enough.wait()))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        prober.on_attempt = reported
        for w in waiters - {work}:
            w.cancel()
    interrupted = not work.done() and stop.is_set()
    if work.done():
        work.result()
    else:
        work.cancel()
        try:
            await work
        except (asyncio.CancelledError, Exception):
            pass
    so_far = ns_to_ms(prober.clock.now_ns() - (prober.start_ns or 0)) or 0.0
    why = "interrupted" if interrupted else "stopped waiting: another target is up (--any)"
    results = []
    for i, t in enumerate(targets):
        r = done.get(i)
        if r is None:
            r = cut_short_result(t, so_far, why, last.get(t))
            on_result(i, r)
        results.append(r)
    return results, interrupted


async def _scan_pass(targets: list[Target], config: ProbeRunConfig, prober: TargetProber, stop: StopSignal,
                     on_result: ResultCallback) -> tuple[list[ProbeResult], bool]:
    """The fast connect loop in a worker thread; a stop sets the event it checks between connects."""
    scan_targets = await _scan_targets(targets, prober)
    thread_stop = threading.Event()
    opts = config.options
    # Results are reported from the scan thread: the event loop only waits meanwhile.
    work = asyncio.ensure_future(asyncio.to_thread(
        scan, scan_targets, prober.plan, timeout_ns=int(opts.timeout_s * NS), concurrency=opts.concurrency,
        rng=prober.rng, on_result=on_result, stop=thread_stop, threads=config.scan_threads or None,
    ))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    interrupted = not work.done()
    if interrupted:
        thread_stop.set()
    return await asyncio.shield(work), interrupted


async def _scan_targets(targets: list[Target], prober: TargetProber) -> list[ScanTarget]:
    """Resolve every distinct host once (concurrently, 64 at a time) and give the scanner its sockaddrs."""
    hosts = list(dict.fromkeys(t.host for t in targets))
    resolver = prober.resolver
    assert resolver is not None
    sem = asyncio.Semaphore(64)

    async def one(host: str) -> tuple[str, list[Resolved] | ResolveError]:
        async with sem:
            try:
                left_s = (prober.plan.deadline_ns - prober.clock.now_ns()) / NS
                return host, await resolver.resolve(host, timeout_s=left_s)
            except ResolveError as exc:
                return host, exc

    resolved = dict(await asyncio.gather(*(one(h) for h in hosts)))
    literal = {h: is_ip_literal(h) for h in hosts}
    prefix = {h: (f"[{h}]:" if ":" in h else f"{h}:") for h in hosts}
    # One tuple of candidate addresses per host, shared by all of that host's targets.
    shared = {h: tuple((a.family, a.address, tuple(a.sockaddr[2:])) for a in got)
              for h, got in resolved.items() if not isinstance(got, ResolveError)}
    out = []
    for t in targets:
        got = resolved[t.host]
        if isinstance(got, ResolveError):
            out.append(ScanTarget(prefix[t.host] + str(t.port), t.host, t.port, (), None, got.reason))
        else:
            out.append(ScanTarget(prefix[t.host] + str(t.port), t.host, t.port, shared[t.host],
                                  None if literal[t.host] else got[0].resolve_ns))
    return out


__all__ = ["TargetSource", "probe_targets", "run_probe"]
