"""``netkit measure responsiveness``: the IETF responsiveness test (RPM), networkQuality-compatible.

Options -> :class:`~netkit.core.responsiveness_config.ResponsivenessConfig` -> one call,
:func:`netkit.io.measure.responsiveness.measure_responsiveness` -> :class:`~netkit.core.
responsiveness_result.ResponsivenessResult` -> :mod:`netkit.render.responsiveness` -> exit code.
"""

from __future__ import annotations

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.options import family_options, timeout_option
from netkit.cli.params import Count, Duration, Number, usage_error
from netkit.core.exitcodes import ExitCode
from netkit.core.responsiveness_config import DEFAULT_MAX_DURATION_S

NO_URL = ("netkit: measure responsiveness needs a server's URL: start one with "
          "`netkit serve responsiveness` and pass the URL it prints")


@click.command(name="responsiveness", short_help="Responsiveness under load (RPM), the IETF way.")
@click.argument("url", required=False, metavar="[URL]")
@click.option("--direction", type=click.Choice(["download", "upload", "both"]), default="both",
              show_default=True, help="Which load to generate.")
@click.option("--download-only", is_flag=True, help="Same as --direction download.")
@click.option("--upload-only", is_flag=True, help="Same as --direction upload.")
@click.option("--parallel", is_flag=True,
              help="Download and upload at once (networkQuality's default) instead of one after the other.")
@click.option("--http1.1", "http1", is_flag=True, help="Use HTTP/1.1 even where the server offers HTTP/2.")
@click.option("--max-duration", type=Duration(min=0.0, min_open=True), default=f"{DEFAULT_MAX_DURATION_S:g}s",
              show_default=True, help="Bound on the whole run, wall clock.")
@click.option("--load-connections", type=Count(min=1, max=64), default=1, show_default=True, metavar="N",
              help="Load-generating connections to start with (the draft's INP); one more is added each "
                   "interval until the throughput is stable.")
@click.option("--max-connections", type=Count(min=1, max=64), default=16, show_default=True, metavar="N",
              help="At most this many load-generating connections per direction (MNP).")
@click.option("--interval", type=Duration(min=0.1, max=10.0), default="1s", show_default=True,
              help="The algorithm's interval (ID). The draft says 5s; 1s ends a direction in about "
                   "10-20 s, as networkQuality does.")
@click.option("--min-rpm", type=Number(min=0), default=None, metavar="RPM",
              help="Exit 1 when a direction's RPM is below this.")
@click.option("--max-added-latency", type=Duration(min=0.0), default=None, metavar="DURATION",
              help="Exit 1 when a direction's latency under load exceeds its idle latency by more.")
@click.option("-k", "--insecure", is_flag=True, help="Do not verify the server's certificate.")
@click.option("--cafile", type=click.Path(dir_okay=False), default=None,
              help="Verify the server's certificate against these CAs (PEM).")
@timeout_option("--connect-timeout", default="5s", help="A connection not up within this fails.")
@family_options
@output_options
def responsiveness(url: str | None, direction: str, download_only: bool, upload_only: bool, parallel: bool,
                   http1: bool, max_duration: float, load_connections: int, max_connections: int,
                   interval: float, min_rpm: float | None, max_added_latency: float | None, insecure: bool,
                   cafile: str | None, connect_timeout: float, family: int) -> ExitCode:
    """Measure responsiveness under working conditions: round trips per minute (RPM) while the link
    is loaded, by the IETF IPPM draft's method (Apple's networkQuality measures the same).

    URL is a responsiveness server: a bare https://host:port reads its /.well-known/nq
    configuration; any other path is taken as the configuration's URL. HTTP/2 over TLS is used where
    the server offers it (ALPN), else HTTP/1.1; http:// URLs work too (RPM without the TLS term).

    A few probes on an idle link come first. Then, per direction, load-generating connections (an
    endless download of the large object, or an endless upload) are added one an interval until
    the throughput is stable, while probes run: foreign probes on new connections (TCP handshake,
    TLS handshake per round trip, a GET of the 1-byte object) and self probes on the loaded
    connections (a GET over HTTP/2; over HTTP/1.1 the kernel's RTT of the connection, as the draft
    allows). RPM = 60000 / round-trip ms, from the trimmed means of the last 4 intervals. Bands:
    poor < 300, fair < 1,000, good < 6,000, excellent. Added latency: the foreign probes' round trip
    under load minus idle. Confidence: low (stopped before 4 intervals), medium (no stability), high.

    Exit status: 0 ok, 1 a threshold missed or the server unreachable, 2 usage, 3 runtime,
    130 interrupted by Ctrl-C (after the summary of what was measured).

    \b
    Examples:
      netkit measure responsiveness https://127.0.0.1:4443 -k
      netkit measure responsiveness https://host:4443 --download-only --min-rpm 1000
      netkit measure responsiveness http://host:8080 --parallel --format json
    """
    if url is None:
        from netkit.core.errors import InputError

        raise InputError(NO_URL.removeprefix("netkit: "))
    if download_only and upload_only:
        raise usage_error("--download-only and --upload-only exclude each other (both is the default)")
    if download_only:
        direction = "download"
    elif upload_only:
        direction = "upload"
    if load_connections > max_connections:
        raise usage_error("--load-connections cannot exceed --max-connections")

    from netkit.core.nq_config import parse_url
    from netkit.core.responsiveness_config import AlgorithmParams, Direction, ResponsivenessConfig, stage_budget_s
    from netkit.core.responsiveness_result import check_rpm_thresholds
    from netkit.io.measure.responsiveness import measure_responsiveness
    from netkit.render.responsiveness import ResponsivenessProgress, render_responsiveness

    parse_url(url)  # a malformed URL is a usage error before anything starts
    out = get_output()
    sequential = 1 if parallel or direction != "both" else 2
    params = AlgorithmParams(interval_s=interval, initial_connections=load_connections,
                             max_connections=max_connections,
                             stage_max_s=stage_budget_s(max_duration, sequential, interval_s=interval))
    cfg = ResponsivenessConfig(url=url, direction=Direction(direction), parallel=parallel, http1=http1,
                               params=params, max_duration_s=max_duration, connect_timeout_s=connect_timeout,
                               insecure=insecure, cafile=cafile, family=family)
    with ResponsivenessProgress(out) as progress:
        result = measure_responsiveness(cfg, sink=progress.add)
    import dataclasses

    thresholds = check_rpm_thresholds(result, min_rpm, None if max_added_latency is None else max_added_latency * 1000)
    result = dataclasses.replace(result, thresholds=thresholds)
    render_responsiveness(out, result)
    if result.by_sigint:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if thresholds.passed else ExitCode.CHECK_FAILED
