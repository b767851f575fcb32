"""``netkit probe``: is it reachable, how fast, how reliably; retries done right; wait until up.

Options -> :class:`~netkit.core.probe_models.ProbeRunConfig` -> one call,
:func:`netkit.io.measure.probe_run.probe_targets` -> :class:`~netkit.core.probe_models.ProbeRunResult`,
shown by :class:`netkit.render.probe.ProbeReport` -> exit code.
Heavy imports happen inside the command function: ``netkit --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.options import family_options, timeout_option
from netkit.cli.params import BYTES, DURATION, POSITIVE_DURATION, Count, Number, usage_error

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.probe_models import ProbeRunConfig


@click.command(name="probe")
@click.argument("targets", nargs=-1, metavar="TARGET...")
@click.option("--targets-file", "targets_file", metavar="FILE",
              help="Read targets from FILE (or '-' for stdin), one a line; '#' starts a comment.")
@click.option("--retries", type=Count(min=0, max=1_000_000), default="0", show_default=True,
              help="Retry a failed target up to N times (never past --deadline).")
@timeout_option("--timeout", default="2s", help="Timeout of one attempt (connect, handshake, reply).")
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
@family_options
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
def probe(targets: tuple[str, ...], targets_file: str | None, **kw: Any) -> int:
    """Check that TARGETs accept connections, with retries and exponential backoff.

    TARGET is HOST:PORT, [V6]:PORT or HOST:PORTS with lists and ranges (host:22,80,8000-8100);
    '-' reads targets from stdin. Results come back in the order given.

    \b
    States: open, closed (refused), timeout, unreachable, dns-error, tls-error,
    mismatch (--expect), open|filtered (UDP: no reply and no refusal).
    Exit status: 0 when every target is up (open; with --udp also open|filtered),
    or with --any when one is; 1 otherwise; 2 bad input; 130 interrupted.

    \b
    Examples:
      netkit probe localhost:22,80,443
      netkit probe --wait --deadline 60s db:5432 && exec app
      netkit probe example.test:443 --tls --min-cert-days 14
      netkit probe 127.0.0.1:22 --expect '^SSH-'
      netkit probe 127.0.0.1:8000 --repeat 20 --interval 0.5s
    """
    from netkit.core.exitcodes import ExitCode
    from netkit.io.measure.probe_run import TargetSource, probe_targets
    from netkit.render.probe import ProbeReport

    out = get_output()
    config = _config(kw, keep_rows=out.format == "table")
    if config.options.tls_insecure:
        out.warn("certificate verification is off (--insecure): the peer's identity is not checked")
    out.debug(f"probe: engine {config.engine.value}, concurrency {config.options.concurrency}")
    with ProbeReport(out, config) as report:
        result = probe_targets(config, TargetSource(targets, targets_file), report)
    report.finish(result)
    if result.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if result.passed else ExitCode.CHECK_FAILED


def _config(kw: dict[str, Any], *, keep_rows: bool) -> ProbeRunConfig:
    """Check the options against each other and build the run's configuration."""
    import re

    from netkit.core.backoff import Backoff
    from netkit.core.probe_models import (
        DEFAULT_MAX_BACKOFF_S,
        NS,
        WAIT_MAX_BACKOFF_S,
        ProbeEngine,
        ProbeOptions,
        ProbeRunConfig,
        ShowOnly,
    )

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
    max_backoff = kw["max_backoff"]
    if max_backoff is None:
        max_backoff = WAIT_MAX_BACKOFF_S if kw["wait"] else DEFAULT_MAX_BACKOFF_S
    options = ProbeOptions(
        timeout_s=kw["timeout"],
        retries=None if kw["wait"] else int(kw["retries"]),
        backoff=Backoff(int(kw["backoff"] * NS), kw["backoff_factor"], int(max_backoff * NS), kw["jitter"]),
        deadline_s=kw["deadline"],
        concurrency=int(kw["concurrency"]),
        family=kw["family"],
        send=kw["send"],
        expect=expect,
        tls=kw["tls"],
        tls_insecure=kw["insecure"],
        tls_cafile=kw["cafile"],
        min_cert_days=kw["min_cert_days"],
        udp=kw["udp"],
        retry_dns=kw["wait"],
    )
    engine = ProbeEngine(kw["engine"])
    if engine is ProbeEngine.SCAN and not options.plain_connect:
        raise usage_error("the scan engine does plain TCP connects only (no --send/--expect/--tls/--udp)")
    return ProbeRunConfig(
        options=options,
        wait=kw["wait"],
        repeat=None if kw["repeat"] is None else int(kw["repeat"]),
        interval_s=kw["interval"],
        any_=kw["any_"],
        only=None if kw["only"] is None else ShowOnly(kw["only"]),
        engine=engine,
        scan_threads=kw["scan_threads"],
        keep_rows=keep_rows,
    )
