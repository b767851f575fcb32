"""``netkit measure connections``: new TCP connections per second (netperf TCP_CRR, ethr ``-t c``).

Options -> :class:`~netkit.core.connections_config.ConnectionsConfig` -> one call,
:func:`netkit.io.measure.connection_rate.measure_connections` (a plain epoll loop, stopped early by
Ctrl-C/SIGTERM/SIGHUP) -> :class:`~netkit.core.connections_result.ConnectionsResult` ->
:mod:`netkit.render.connections` -> exit code. Heavy imports happen inside the function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.options import family_options, timeout_option
from netkit.cli.params import TARGET, Count, Duration, Number, Size
from netkit.core.connections_config import DEFAULT_DURATION_S
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.targets import Target


@click.command(name="connections")
@click.argument("target", type=TARGET, metavar="HOST:PORT")
@click.option("-C", "--concurrency", type=Count(min=1, max=10000), default=1, show_default=True,
              help="Connection attempts under way at once.")
@click.option("-d", "--duration", type=Duration(min=0.0, min_open=True), default=None,
              help=f"How long to open connections, wall clock (default {DEFAULT_DURATION_S:.0f}s "
                   "unless --count is given).")
@click.option("-n", "--count", type=Count(min=1), default=None,
              help="Stop after this many attempts (with --duration: whichever comes first).")
@click.option("--close", "close", type=click.Choice(["fin", "rst"]), default="fin", show_default=True,
              help="End each connection with a FIN (this host keeps TIME_WAIT) or a reset (SO_LINGER 0).")
@click.option("--send", type=Size(min=0, max=16 * 1024 * 1024), default=0, metavar="BYTES",
              help="Send this many bytes on each connection once it is up.")
@click.option("--expect", type=Size(min=0, max=16 * 1024 * 1024), default=0, metavar="BYTES",
              help="Wait for this many bytes back before closing (a transaction, as TCP_CRR).")
@timeout_option("-W", "--timeout", default="2s",
                help="An attempt (connect and exchange) not done within this counts as a timeout.")
@click.option("--min-rate", type=Number(min=0), default=None, metavar="N",
              help="Exit 1 when the run's connections/s is below N.")
@click.option("--max-errors", type=Count(min=0), default=None, metavar="N",
              help="Exit 1 when more than N attempts failed.")
@family_options
@output_options
def connections(target: Target, concurrency: int, duration: float | None, count: int | None, close: str,
                send: int, expect: int, timeout: float, min_rate: float | None, max_errors: int | None,
                family: int) -> ExitCode:
    """Open new TCP connections as fast as they complete; report the rate and connect latency.

    CONCURRENCY attempts are kept under way; each one that connects (and, with --send/--expect,
    exchanges its bytes) is closed and a new one started. Errors are counted by kind: refused,
    timeout, reset, closed, eaddrnotavail (no free local port: TIME_WAIT piling up), emfile (out
    of descriptors), unreachable, other. The TIME_WAIT sockets toward the target left on this host
    are counted from /proc/net/tcp. --duration is wall clock whatever the target does.

    Exit status: 0 ok, 1 no connection completed or a threshold breached, 2 usage, 3 runtime,
    130 interrupted by Ctrl-C (after the summary of what was measured).

    \b
    Examples:
      netkit measure connections 127.0.0.1:8000 -C 8 -d 5s
      netkit measure connections 127.0.0.1:8000 --close rst --min-rate 5000
      netkit measure connections 127.0.0.1:8000 --send 64 --expect 64 -C 16
    """
    import dataclasses

    from netkit.core.connections_config import CloseMode, ConnectionsConfig
    from netkit.core.connections_result import check_connections_thresholds
    from netkit.io.measure.connection_rate import measure_connections
    from netkit.render.connections import ConnectionsProgress, render_connections

    out = get_output()
    cfg = ConnectionsConfig(
        host=target.host, port=target.port, concurrency=concurrency,
        duration_s=DEFAULT_DURATION_S if duration is None and count is None else duration, count=count,
        close=CloseMode(close), send=send, expect=expect, timeout_s=timeout, family=family,
    )
    with ConnectionsProgress(out) as progress:
        result = measure_connections(cfg, sink=progress.add)
    thresholds = check_connections_thresholds(result, min_rate, max_errors)
    result = dataclasses.replace(result, thresholds=thresholds)
    render_connections(out, result)
    if result.by_sigint:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if thresholds.passed else ExitCode.CHECK_FAILED
