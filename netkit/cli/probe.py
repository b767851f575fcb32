"""``netkit probe``: is it reachable, how fast, how reliably; retries done right; wait until up.

Options -> ``ProbeOptions`` -> ``netkit.io.measure.probe`` (asyncio) or ``netkit.io.measure.scan`` (the fast
connect loop for large plain scans) -> ``ProbeResult`` rows -> table/json/jsonl/csv -> exit code.
Heavy imports happen inside the command function: ``netkit --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.params import BYTES, DURATION, POSITIVE_DURATION, Count, Number, usage_error

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.probe_models import ProbeResult, ProbeTotals, RepeatedResult
    from netkit.core.targets import Target
    from netkit.io.measure.probe import ProbeOptions
    from netkit.render.output import Output

#: At or above this many plain-connect targets the fast scan loop replaces asyncio.
SCAN_THRESHOLD = 64
#: ``--wait`` polls for a service coming up: a long backoff would only delay noticing it.
WAIT_MAX_BACKOFF_S = 2.0


class _TargetSource:
    """The targets of one invocation, expanded lazily: a million lines never become a list.

    Arguments and ``--targets-file`` can be read twice: :meth:`check` reads them once first, so
    a bad line is a usage error (exit 2) before anything is probed or printed. Targets from
    stdin (``-``) are read once, as they are probed: a bad line there ends the run at that line.
    """

    def __init__(self, args: tuple[str, ...], targets_file: str | None) -> None:
        self.args = args
        self.targets_file = targets_file

    @property
    def reads_stdin(self) -> bool:
        return "-" in self.args or self.targets_file == "-"

    def texts(self) -> Iterator[str]:
        import sys

        from netkit.core.errors import InputError
        from netkit.core.targets import read_target_lines

        for arg in self.args:
            if arg == "-":
                yield from read_target_lines(sys.stdin)
            else:
                yield arg
        if self.targets_file == "-":
            yield from read_target_lines(sys.stdin)
        elif self.targets_file is not None:
            try:
                f = open(self.targets_file, encoding="utf-8", errors="replace")
            except OSError as exc:
                raise InputError(f"cannot read --targets-file {self.targets_file}: {exc.strerror or exc}") from None
            with f:
                yield from read_target_lines(f)

    def __iter__(self) -> Iterator[Target]:
        from netkit.core.targets import expand_target

        for text in self.texts():
            yield from expand_target(text)  # one line: at most 65535 targets

    def check(self) -> None:
        """Parse every argument and line once (when they can be read again); none at all is exit 2."""
        from netkit.core.errors import InputError
        from netkit.core.targets import parse_ports, split_host_port

        if self.reads_stdin:
            return
        found = False
        for text in self.texts():
            _host, port_s = split_host_port(text)
            if port_s is None:
                raise InputError(f"invalid target {text!r}: no port (write HOST:PORT)")
            parse_ports(port_s)  # a tuple of at most 65535 ints: never a Target list
            found = True
        if not found:
            raise usage_error("no targets: give HOST:PORT arguments, '-' or --targets-file")


def _read_targets(args: tuple[str, ...], targets_file: str | None) -> list[Target]:
    targets = list(_TargetSource(args, targets_file))
    if not targets:
        raise usage_error("no targets: give HOST:PORT arguments, '-' or --targets-file")
    return targets


@click.command(name="probe")
@click.argument("targets", nargs=-1, metavar="TARGET...")
@click.option("--targets-file", "targets_file", metavar="FILE",
              help="Read targets from FILE (or '-' for stdin), one a line; '#' starts a comment.")
@click.option("--retries", type=Count(min=0, max=1_000_000), default="0", show_default=True,
              help="Retry a failed target up to N times (never past --deadline).")
@click.option("--timeout", type=POSITIVE_DURATION, default="2s", show_default=True,
              help="Timeout of one attempt (connect, handshake, reply).")
@click.option("--backoff", type=DURATION, default="0.5s", show_default=True,
              help="Delay before the first retry.")
@click.option("--backoff-factor", type=Number(min=1.0, max=100.0), default=2.0, show_default=True,
              help="Each further delay is this many times the previous one.")
@click.option("--max-backoff", type=DURATION, default=None,
              help="Cap on the delay between attempts [default: 10s; 2s with --wait].")
@click.option("--jitter", is_flag=True, help="Full jitter: each delay is uniform in [0, delay].")
@click.option("--deadline", type=POSITIVE_DURATION, default="30s", show_default=True,
              help="Nothing runs past this (per round with --repeat).")
@click.option("--concurrency", type=Count(min=1, max=100_000), default="256", show_default=True,
              help="Targets probed at the same time.")
@click.option("-4", "ipv4", is_flag=True, help="IPv4 only.")
@click.option("-6", "ipv6", is_flag=True, help="IPv6 only.")
@click.option("--send", type=BYTES, metavar="TEXT", help="Send TEXT after connecting (escapes: \\r \\n \\t \\0 \\xHH).")
@click.option("--expect", metavar="REGEX", help="The reply (or banner) must match REGEX, else 'mismatch'.")
@click.option("--tls", is_flag=True, help="Complete a TLS handshake; report protocol, cipher, certificate.")
@click.option("-k", "--insecure", is_flag=True, help="With --tls: do not verify the certificate.")
@click.option("--cafile", type=click.Path(dir_okay=False), help="With --tls: trust the CAs in this PEM file.")
@click.option("--min-cert-days", type=Number(min=0), default=None,
              help="With --tls: fail (tls-error) when the certificate expires in fewer days.")
@click.option("--udp", is_flag=True, help="UDP: send a datagram, wait for a reply (silent = open|filtered).")
@click.option("--wait", is_flag=True, help="Retry every target until all are open or --deadline passes.")
@click.option("--repeat", type=Count(min=1, max=1_000_000), default=None,
              help="Probe the targets N times; report the success rate per target.")
@click.option("--interval", type=DURATION, default="1s", show_default=True,
              help="With --repeat: time between the starts of rounds.")
@click.option("--any", "any_", is_flag=True, help="Exit 0 when at least one target is up (default: all).")
@click.option("--only", type=click.Choice(["open", "failed"]), default=None,
              help="Show only open targets, or only failed ones (the summary counts all).")
@click.option("--engine", type=click.Choice(["auto", "async", "scan"]), default="auto", hidden=True,
              help="Force the asyncio prober or the fast scan loop (for tests and benchmarks).")
@click.option("--scan-threads", type=click.IntRange(min=0, max=16), default=0, hidden=True,
              help="Threads of the fast scan loop (0: the default, one).")
@output_options
def probe(**kw: Any) -> int:
    """Check that TARGETs accept connections, with retries and exponential backoff.

    TARGET is HOST:PORT, [V6]:PORT or HOST:PORTS with lists and ranges (host:22,80,8000-8100);
    '-' reads targets from stdin. Results come back in the order given.

    \b
    States: open, closed (refused), timeout, unreachable, dns-error, tls-error,
    mismatch (--expect), open|filtered (UDP, silent).
    Exit status: 0 every target up (--any: at least one), 1 otherwise, 2 bad input.

    \b
    Examples:
      netkit probe localhost:22,80,443
      netkit probe --wait --deadline 60s db:5432 && exec app
      netkit probe example.test:443 --tls --min-cert-days 14
      netkit probe 127.0.0.1:22 --expect '^SSH-'
      netkit probe 127.0.0.1:8000 --repeat 20 --interval 0.5s
    """
    return _run(**kw)


def _build_options(kw: dict[str, Any], out: Output) -> ProbeOptions:
    import re

    from netkit.core.backoff import Backoff
    from netkit.io.measure.probe import ProbeOptions
    from netkit.io.resolve import family_of

    ns = 1_000_000_000
    if kw["ipv4"] and kw["ipv6"]:
        raise usage_error("-4 and -6 exclude each other")
    if kw["udp"] and kw["tls"]:
        raise usage_error("--tls is for TCP; drop --udp or --tls")
    if kw["wait"] and kw["repeat"] is not None:
        raise usage_error("--wait and --repeat exclude each other")
    if not kw["tls"]:
        for name in ("insecure", "cafile", "min_cert_days"):
            if kw[name]:
                raise usage_error(f"--{name.replace('_', '-')} needs --tls")
    expect = None
    if kw["expect"] is not None:
        try:
            expect = re.compile(kw["expect"])
        except re.error as exc:
            raise usage_error(f"invalid regular expression {kw['expect']!r}: {exc}", "--expect") from None
    tls_context = None
    if kw["tls"]:
        from netkit.io.tls import client_context

        tls_context = client_context(insecure=kw["insecure"], cafile=kw["cafile"])
        if kw["insecure"]:
            out.warn("certificate verification is off (--insecure): the peer's identity is not checked")
    max_backoff = kw["max_backoff"]
    if max_backoff is None:
        max_backoff = WAIT_MAX_BACKOFF_S if kw["wait"] else 10.0
    return ProbeOptions(
        timeout_s=kw["timeout"],
        retries=None if kw["wait"] else int(kw["retries"]),
        backoff=Backoff(int(kw["backoff"] * ns), kw["backoff_factor"], int(max_backoff * ns), kw["jitter"]),
        deadline_s=kw["deadline"],
        concurrency=int(kw["concurrency"]),
        family=family_of(kw["ipv4"], kw["ipv6"]),
        send=kw["send"],
        expect=expect,
        tls=kw["tls"],
        tls_context=tls_context,
        min_cert_days=kw["min_cert_days"],
        udp=kw["udp"],
        retry_dns=kw["wait"],
    )


def _run(**kw: Any) -> int:
    from netkit.core.exitcodes import ExitCode
    from netkit.core.probe_models import passed, summarize, summarize_repeated
    from netkit.io.aio import run

    out = get_output()
    source = _TargetSource(kw["targets"], kw["targets_file"])
    opts = _build_options(kw, out)
    engine = kw["engine"]
    if engine == "scan" and not opts.plain_connect:
        raise usage_error("the scan engine does plain TCP connects only (no --send/--expect/--tls/--udp)")
    only = kw["only"]

    def keep(ok: bool) -> bool:
        return only is None or (only == "open") == ok

    def stream(record: dict[str, Any], ok: bool) -> None:
        if out.format == "jsonl" and keep(ok):
            out.jsonl(record)

    if kw["repeat"] is None and not kw["wait"]:
        source.check()
        totals, interrupted = run(_stream_run(source, opts, engine, kw["scan_threads"], out, stream, keep))
        ok = totals.passed(any_=kw["any_"])
    else:
        # --wait and --repeat report on every target at the end: they hold the list.
        targets = _read_targets(kw["targets"], kw["targets_file"])
        use_scan = engine == "scan" or (
            engine == "auto" and opts.plain_connect and not kw["wait"] and len(targets) >= SCAN_THRESHOLD
        )
        scan_threads: int | None = kw["scan_threads"] if use_scan else None
        out.debug(f"probe: {len(targets)} targets, engine {'scan loop' if use_scan else 'asyncio'}")
        if kw["repeat"] is None:
            results, interrupted = run(_one_run(targets, opts, scan_threads, out, kw["wait"], stream, kw["any_"]))
            rows = [r for r in results if keep(r.ok)]
            _render(out, rows, None, summarize(results), opts)
            ok = passed(results, any_=kw["any_"])
        else:
            agg, interrupted = run(_repeat_run(targets, opts, scan_threads, out, int(kw["repeat"]),
                                               kw["interval"], stream))
            kept: list[RepeatedResult] = [a for a in agg if keep(a.last.ok)]
            summary = summarize_repeated(agg)
            _render(out, [a.last for a in kept], kept, summary, opts)
            ok = passed([a.last for a in agg], any_=kw["any_"]) if kw["any_"] else (
                bool(agg) and all(a.opens == a.rounds for a in agg))
    if interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if ok else ExitCode.CHECK_FAILED


#: Targets probed per batch by the streaming run: results of a batch are written, then dropped.
#: Many times the concurrency, so the wait for a batch's slowest target is a small share.
STREAM_BATCH = 8192


async def _stream_run(source: _TargetSource, opts: ProbeOptions, engine: str, threads: int, out: Output,
                      stream: Any, keep: Any) -> tuple[ProbeTotals, bool]:
    """One pass over targets that may be millions: batches of :data:`STREAM_BATCH`, each probed,
    written and dropped. jsonl lines stream as results come; csv rows and json records follow
    each batch (in the order given); a table needs every row for its widths and keeps them.
    One :class:`Prober` for every batch: one deadline, one resolver cache."""
    import itertools

    from netkit.core.probe_models import RESULT_FIELDS, TLS_FIELDS, ProbeResult, ProbeState, ProbeTotals
    from netkit.io.aio import StopSignal
    from netkit.io.measure.probe import Prober
    from netkit.render.output import StreamedJsonDocument

    totals = ProbeTotals()
    targets = iter(source)
    batch_size = max(STREAM_BATCH, 4 * opts.concurrency)
    batch = list(itertools.islice(targets, batch_size))
    if not batch:
        raise usage_error("no targets: give HOST:PORT arguments, '-' or --targets-file")
    use_scan = engine == "scan" or (engine == "auto" and opts.plain_connect and len(batch) >= SCAN_THRESHOLD)
    scan_threads: int | None = threads if use_scan else None
    out.debug(f"probe: engine {'scan loop' if use_scan else 'asyncio'}, batches of {batch_size} targets")
    document = StreamedJsonDocument(out, "targets", "summary") if out.format == "json" else None
    fields = [f for f in RESULT_FIELDS if f != "tls"]
    fields += [f"tls.{f}" for f in TLS_FIELDS] if opts.tls else ["tls"]
    table_rows: list[ProbeResult] = []
    csv_started = False
    interrupted = False

    def on_result(_i: int, r: ProbeResult) -> None:
        stream(_record(r), r.ok)

    streamer = on_result if out.format == "jsonl" else None
    prober = Prober(opts)
    async with StopSignal() as stop:
        while batch:
            if stop.is_set():
                # Interrupted: the targets never started end as such, without a connect each.
                so_far = (prober.clock.now_ns() - (prober.start_ns or 0)) / 1e6
                results = [ProbeResult(str(t), t.host, t.port, None, ProbeState.TIMEOUT, 0, None, None, so_far,
                                       "interrupted before an answer") for t in batch]
                if streamer is not None:
                    for i, r in enumerate(results):
                        streamer(i, r)
            else:
                results, cut = await _round(batch, opts, scan_threads, stop, streamer, prober=prober)
                interrupted = interrupted or cut
            rows = [r for r in results if keep(r.ok)]
            for r in results:
                totals.add(r)
            if document is not None:
                document.add([_record(r) for r in rows])
            elif out.format == "csv":
                if rows:
                    out.csv_rows([_record(r) for r in rows], fields)
                    csv_started = True
            elif out.format == "table":
                table_rows.extend(rows)
            del results, rows
            batch = list(itertools.islice(targets, batch_size))
    interrupted = interrupted or stop.is_set()
    summary = totals.summary()
    if document is not None:
        document.finish(summary)
    elif out.format == "csv":
        if not csv_started and not out.quiet:
            out.stdout.write(",".join(fields) + "\n")
    elif out.format == "table":
        _render(out, table_rows, None, summary, opts)
    return totals, interrupted


def _record(r: ProbeResult) -> dict[str, Any]:
    """The JSON object of one target, built directly (a full scan makes 65535 of them)."""
    t = r.tls
    return {
        "target": r.target, "host": r.host, "port": r.port, "address": r.address, "state": r.state.value,
        "attempts": r.attempts, "connect_ms": r.connect_ms, "resolve_ms": r.resolve_ms,
        "elapsed_ms": r.elapsed_ms, "error": r.error,
        "tls": None if t is None else {
            "protocol": t.protocol, "cipher": t.cipher, "subject": t.subject, "issuer": t.issuer,
            "not_after": t.not_after, "days_left": t.days_left, "verified": t.verified,
            "fingerprint_sha256": t.fingerprint_sha256,
        },
    }


async def _round(targets: list[Target], opts: ProbeOptions, scan_threads: int | None, stop: Any,
                 stream_result: Any, on_attempt: Any = None,
                 enough: Any = None, prober: Any = None) -> tuple[list[ProbeResult], bool]:
    """One pass over every target; on SIGINT the unfinished ones end as 'interrupted'.

    ``stream_result(i, result)`` is called as each target finishes (None: nobody listens).
    ``enough``: an event that ends the round early without counting as an interruption
    (``--wait --any`` once one target is up).
    """
    import asyncio

    from netkit.core.probe_models import ProbeResult, ProbeState, ns_to_ms
    from netkit.io.measure.probe import Prober, probe_many

    last: dict[Target, tuple[int, Any]] = {}  # the latest attempt of each target (for cut-short rounds)

    def attempted(target: Target, attempts: int, att: Any) -> None:
        last[target] = (attempts, att)
        if on_attempt is not None:
            on_attempt(target, attempts, att)

    if prober is None:
        prober = Prober(opts, on_attempt=attempted)
    if scan_threads is not None:
        return await _scan_round(targets, opts, prober, stop, stream_result, scan_threads)
    done: dict[int, ProbeResult] = {}

    def collect(i: int, r: ProbeResult) -> None:
        done[i] = r
        if stream_result is not None:
            stream_result(i, r)

    work = asyncio.ensure_future(probe_many(targets, opts, on_result=collect, prober=prober))
    stopper = asyncio.ensure_future(stop.wait())
    waiters = {work, stopper}
    if enough is not None:
        waiters.add(asyncio.ensure_future(enough.wait()))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters - {work}:
            w.cancel()
    interrupted = not work.done() and stop.is_set()
    cut_short = not work.done()
    if cut_short:
        work.cancel()
        try:
            await work
        except (asyncio.CancelledError, Exception):
            pass
    else:
        work.result()
    results: list[ProbeResult] = []
    so_far = ns_to_ms(prober.clock.now_ns() - (prober.start_ns or 0)) or 0.0
    for i, t in enumerate(targets):
        r = done.get(i)
        if r is None:
            why = "interrupted" if interrupted else "stopped waiting: another target is up (--any)"
            seen = last.get(t)
            if seen is None:
                r = ProbeResult(str(t), t.host, t.port, None, ProbeState.TIMEOUT, 0, None, None, so_far,
                                f"{why} before an answer")
            else:
                attempts, att = seen
                r = ProbeResult(str(t), t.host, t.port, att.address, att.state, attempts, ns_to_ms(att.connect_ns),
                                None, so_far, f"{why}; last attempt: {att.error}")
        results.append(r)
    return results, interrupted


async def _scan_round(targets: list[Target], opts: ProbeOptions, prober: Any, stop: Any,
                      stream_result: Any, scan_threads: int = 0) -> tuple[list[ProbeResult], bool]:
    """The fast connect loop in a worker thread; SIGINT sets an event it checks between connects."""
    import asyncio
    import threading

    from netkit.io.measure.scan import scan

    scan_targets = await _scan_targets(targets, prober)
    thread_stop = threading.Event()
    # jsonl lines are written from the scan thread: the event loop only waits meanwhile.
    work = asyncio.ensure_future(asyncio.to_thread(
        scan, scan_targets, prober.plan, timeout_ns=int(opts.timeout_s * 1e9),
        concurrency=opts.concurrency, rng=prober.rng, on_result=stream_result, stop=thread_stop,
        threads=scan_threads or None,
    ))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    interrupted = not work.done()
    if interrupted:
        thread_stop.set()
    results = await asyncio.shield(work)
    return results, interrupted


async def _scan_targets(targets: list[Target], prober: Any) -> list[Any]:
    """Resolve every distinct host once (concurrently) and give the scanner its sockaddrs."""
    import asyncio

    from netkit.io.measure.probe import is_ip_literal
    from netkit.io.measure.scan import ScanTarget
    from netkit.io.resolve import ResolveError

    hosts = list(dict.fromkeys(t.host for t in targets))

    async def one(host: str) -> tuple[str, Any]:
        try:
            left_s = (prober.plan.deadline_ns - prober.clock.now_ns()) / 1e9
            return host, await prober.resolver.resolve(host, timeout_s=left_s)
        except ResolveError as exc:
            return host, exc

    sem = asyncio.Semaphore(64)

    async def bounded(host: str) -> tuple[str, Any]:
        async with sem:
            return await one(host)

    resolved = dict(await asyncio.gather(*(bounded(h) for h in hosts)))
    literal = {h: is_ip_literal(h) for h in hosts}
    prefix = {h: (f"[{h}]:" if ":" in h else f"{h}:") for h in hosts}
    # One tuple of candidate addresses per host, shared by all of that host's targets.
    shared = {h: tuple((a.family, a.sockaddr[0], tuple(a.sockaddr[2:])) for a in got)
              for h, got in resolved.items() if not isinstance(got, Exception)}
    out = []
    for t in targets:
        host, port = t.host, t.port
        got = resolved[host]
        if isinstance(got, ResolveError):
            out.append(ScanTarget(prefix[host] + str(port), host, port, (), None, got.reason))
        else:
            out.append(ScanTarget(prefix[host] + str(port), host, port, shared[host],
                                  None if literal[host] else got[0].resolve_ns))
    return out


class _WaitProgress:
    """``--wait``'s progress line on stderr: rewritten in place on a terminal, else one per change."""

    def __init__(self, out: Output, targets: list[Target], deadline_s: float) -> None:
        self.out = out
        self.total = len(targets)
        self.up: set[str] = set()
        self.last_error: dict[str, str] = {}
        self.deadline_s = deadline_s
        self._printed = ""
        self._tty = out.stderr_is_tty

    def attempt(self, target: Target, attempts: int, att: Any) -> None:
        key = str(target)
        if att.state.ok:
            self.up.add(key)
            self.last_error.pop(key, None)
        else:
            self.last_error[key] = f"{key} {att.state.value}" + (f": {att.error}" if att.error else "")

    def line(self, elapsed_s: float) -> str:
        waiting = self.total - len(self.up)
        text = f"waiting: {len(self.up)}/{self.total} up"
        if waiting and self.last_error:
            first = next(iter(self.last_error.values()))
            text += f", {waiting} not yet ({first})"
        return text + f" [{elapsed_s:.1f}s of {self.deadline_s:g}s]"

    def show(self, elapsed_s: float, final: bool = False) -> None:
        if self.out.quiet:
            return
        from netkit.core.escape import safe_text

        text = safe_text(self.line(elapsed_s), limit=160)
        if self._tty:
            self.out.stderr.write("\r\x1b[2K" + text + ("\n" if final else ""))
            self.out.stderr.flush()
        else:
            core = text.rsplit(" [", 1)[0]
            if core != self._printed or final:
                self._printed = core
                self.out.info(text)


async def _one_run(targets: list[Target], opts: ProbeOptions, scan_threads: int | None, out: Output, wait: bool,
                   stream: Any, any_: bool = False) -> tuple[list[ProbeResult], bool]:
    import asyncio
    import time

    from netkit.io.aio import StopSignal

    def on_result(_i: int, r: ProbeResult) -> None:
        stream(_record(r), r.ok)

    streamer = on_result if out.format == "jsonl" else None
    async with StopSignal() as stop:
        if not wait:
            return await _round(targets, opts, scan_threads, stop, streamer)
        first_up = asyncio.Event() if any_ else None

        def attempted(target: Target, attempts: int, att: Any) -> None:
            progress.attempt(target, attempts, att)
            if first_up is not None and att.state.ok:
                first_up.set()

        progress = _WaitProgress(out, targets, opts.deadline_s)
        start = time.monotonic()

        async def ticker() -> None:
            while True:
                progress.show(time.monotonic() - start)
                await asyncio.sleep(0.25)

        tick = asyncio.ensure_future(ticker())
        try:
            results, interrupted = await _round(targets, opts, None, stop, streamer, attempted, first_up)
        finally:
            tick.cancel()
        progress.show(time.monotonic() - start, final=True)
        return results, interrupted


async def _repeat_run(targets: list[Target], opts: ProbeOptions, scan_threads: int | None, out: Output, rounds: int,
                      interval_s: float, stream: Any) -> tuple[list[RepeatedResult], bool]:
    import asyncio
    import time

    from netkit.core.probe_models import RepeatedResult
    from netkit.io.aio import StopSignal

    agg: list[RepeatedResult | None] = [None] * len(targets)
    interrupted = False
    async with StopSignal() as stop:
        for n in range(1, rounds + 1):
            round_start = time.monotonic()

            def on_result(i: int, r: ProbeResult, n: int = n) -> None:
                prev = agg[i]
                cur = agg[i] = prev.add(r) if prev is not None else RepeatedResult(r, 1, 1 if r.ok else 0)
                if out.format == "jsonl":
                    stream({"round": n, **cur.record()}, r.ok)

            _results, interrupted = await _round(targets, opts, scan_threads, stop, on_result)
            if interrupted or n == rounds:
                break
            if not out.machine:
                ups = sum(1 for a in agg if a is not None and a.last.ok)
                out.info(f"round {n}/{rounds}: {ups}/{len(targets)} up")
            left = interval_s - (time.monotonic() - round_start)
            if left > 0:
                sleeper = asyncio.ensure_future(asyncio.sleep(left))
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
                sleeper.cancel()
                stopper.cancel()
                if stop.is_set():
                    interrupted = True
                    break
    return [a for a in agg if a is not None], interrupted


def _render(out: Output, rows: list[ProbeResult], repeated: list[RepeatedResult] | None, summary: Any,
            opts: ProbeOptions) -> None:
    """The final result in the chosen format (jsonl was streamed already)."""
    from netkit.core.probe_models import REPEAT_FIELDS, RESULT_FIELDS, TLS_FIELDS
    from netkit.render.output import to_jsonable

    if out.format == "jsonl":
        return
    records = [a.record() for a in repeated] if repeated is not None else [_record(r) for r in rows]
    if out.format == "json":
        out.json({"targets": records, "summary": to_jsonable(summary)})
        return
    if out.format == "csv":
        fields = [f for f in RESULT_FIELDS if f != "tls"]
        fields += [f"tls.{f}" for f in TLS_FIELDS] if opts.tls else ["tls"]
        if repeated is not None:
            fields += list(REPEAT_FIELDS)
        if records:
            out.csv_rows(records, fields)
        elif not out.quiet:
            out.stdout.write(",".join(fields) + "\n")
        return
    if out.quiet:
        return
    _print_table(out, *_table_data(rows, repeated))
    if opts.tls and any(r.tls is not None for r in rows):
        out.print(_tls_table(rows))
    rate = "-" if summary.success_rate is None else f"{summary.success_rate * 100:.1f}%"
    what = "probes" if repeated is not None else "targets"
    noun = "target" if summary.total == 1 else "targets"
    out.line(f"{summary.total} {noun}: {summary.open} open, {summary.failed} failed, "
             f"{rate} of {what} up")


def _fmt_ms(v: float | None) -> str | None:
    if v is None:
        return None
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


#: Above this many rows the table is plain aligned text: Rich needs ~0.5 ms a row.
PLAIN_TABLE_ROWS = 2000


def _table_data(rows: list[ProbeResult], repeated: list[RepeatedResult] | None
                ) -> tuple[list[tuple[str, str]], list[list[str | None]]]:
    """Columns (name, justification) and the cells as text (None shows as '-')."""
    from netkit.io.measure.probe import is_ip_literal

    show_resolve = any(not is_ip_literal(h) for h in {r.host for r in rows})
    cols = [("target", "left"), ("address", "left"), ("state", "left"), ("attempts", "right"),
            ("connect ms", "right")]
    if show_resolve:
        cols.append(("resolve ms", "right"))
    cols.append(("total ms", "right"))
    if repeated is not None:
        cols += [("open/rounds", "right"), ("success", "right")]
    cols.append(("error", "left"))
    data: list[list[str | None]] = []
    for i, r in enumerate(rows):
        vals: list[str | None] = [r.target, r.address, r.state.value, str(r.attempts), _fmt_ms(r.connect_ms)]
        if show_resolve:
            vals.append(_fmt_ms(r.resolve_ms))
        vals.append(_fmt_ms(r.elapsed_ms))
        if repeated is not None:
            a = repeated[i]
            vals += [f"{a.opens}/{a.rounds}", "-" if a.success_rate is None else f"{a.success_rate * 100:.1f}%"]
        vals.append(r.error)
        data.append(vals)
    return cols, data


def _print_table(out: Output, cols: list[tuple[str, str]], data: list[list[str | None]]) -> None:
    """A Rich table for a screenful; plain aligned columns for a large scan (same columns)."""
    from netkit.core.escape import safe_text

    if len(data) <= PLAIN_TABLE_ROWS:
        from netkit.render.tables import add_row, make_table, state_cell

        table = make_table([name if just == "left" else (name, just) for name, just in cols], compact=True)
        # At 80 columns Rich cut every target to '127.0.0.…' and the error to 'connecti…': the
        # text columns (target, address, state, error) fold instead, so no character of them is lost,
        # as in the latency tables; the target does not wrap, so address and error give way first.
        for column, (name, _) in zip(table.columns, cols, strict=True):
            if name in ("target", "address", "state", "error"):
                column.overflow = "fold"
            if name == "target":
                column.no_wrap = True
        state_at = [name for name, _ in cols].index("state")
        for vals in data:
            add_row(table, *(state_cell(v or "") if i == state_at else v for i, v in enumerate(vals)))
        out.print(table)
        return
    texts = [[("-" if v is None else safe_text(v)) for v in vals] for vals in data]
    widths = [max(len(name), *(len(row[i]) for row in texts)) for i, (name, _) in enumerate(cols)]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if just == "right" else c.ljust(w)
                 for c, w, (_, just) in zip(cells, widths, cols, strict=True)]
        return "  ".join(parts).rstrip()

    lines = [line([name for name, _ in cols]), line(["-" * w for w in widths])]
    lines.extend(line(row) for row in texts)
    out.print("\n".join(lines))


def _tls_table(rows: list[ProbeResult]) -> Any:
    from netkit.render.tables import add_row, make_table

    table = make_table(["target", "protocol", "cipher", "subject", "issuer", ("days left", "right"), "verified"],
                       title="TLS")
    for r in rows:
        if r.tls is None:
            continue
        t = r.tls
        days = None if t.days_left is None else f"{t.days_left:.1f}"
        add_row(table, r.target, t.protocol, t.cipher, t.subject, t.issuer, days, "yes" if t.verified else "no")
    return table
