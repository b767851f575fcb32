"""``netkit measure http``: where the time of a web request goes (curl -w, httpstat), over many requests.

Options -> :class:`~netkit.core.http_config.HttpConfig` -> one call,
:func:`netkit.io.measure.http.measure_http` -> :class:`~netkit.core.http_result.HttpResult` ->
:mod:`netkit.render.http` -> exit code. Heavy imports happen inside the function.
"""

from __future__ import annotations

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.options import family_options, timeout_option
from netkit.cli.params import Bytes, Count, Duration, Number, usage_error
from netkit.core.exitcodes import ExitCode
from netkit.core.http_config import DEFAULT_COUNT, MAX_DATA, METHODS


@click.command(name="http")
@click.argument("urls", nargs=-1, required=True, metavar="URL...")
@click.option("-n", "--count", type=Count(min=1), default=None,
              help=f"Requests per URL (default {DEFAULT_COUNT} unless --duration is given).")
@click.option("-d", "--duration", type=Duration(min=0.0, min_open=True), default=None,
              help="How long to send requests per URL, wall clock (with --count: whichever ends first).")
@click.option("-i", "--interval", type=Duration(min=0.0), default="0s", show_default=True,
              help="Time between one worker's request starts.")
@click.option("-C", "--concurrency", type=Count(min=1, max=1000), default=1, show_default=True,
              help="Requests under way at once (one connection each; with no --interval, spread over "
                   "one worker process per core).")
@click.option("-X", "--method", type=click.Choice(METHODS, case_sensitive=False), default="GET",
              show_default=True, help="Request method.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Add a request header.")
@click.option("--data", type=Bytes(max_size=MAX_DATA), default=None, metavar="BYTES",
              help=f"Request body (at most {MAX_DATA // 1024} KiB).")
@click.option("--data-file", type=Bytes(allow_file=True, max_size=MAX_DATA), default=None, metavar="@FILE",
              help="Request body read from FILE (give it as @FILE).")
@click.option("--http1.1", "http11", is_flag=True, help="HTTP/1.1 only (no h2 in ALPN).")
@click.option("--http2", "http2", is_flag=True, help="Require HTTP/2 (ALPN h2; https only).")
@click.option("--new-connection", is_flag=True,
              help="A new connection per request (each pays DNS, connect, TLS); default: reuse.")
@click.option("--resolve", "resolve", multiple=True, metavar="HOST:PORT:ADDR",
              help="Connect to ADDR for HOST:PORT without a name lookup (as curl).")
@click.option("-k", "--insecure", is_flag=True, help="Do not verify the server's certificate.")
@click.option("--cafile", type=click.Path(dir_okay=False), default=None, help="Trust the CAs in this PEM file.")
@click.option("--max-redirs", type=Count(min=0, max=50), default=0, show_default=True,
              help="Follow at most this many redirects.")
@timeout_option("-W", "--timeout", default="10s", help="A request (connect and response) not done within this fails.")
@click.option("--expect-status", default=None, metavar="LIST",
              help="Exit 1 unless every status is in LIST (e.g. 2xx,301).")
@click.option("--expect-body", default=None, metavar="REGEX",
              help="Exit 1 unless every body (its first 64 KiB) matches REGEX.")
@click.option("--max-total", type=Number(min=0), default=None, metavar="MS",
              help="Exit 1 when a request's total time is over MS milliseconds.")
@click.option("--min-cert-days", type=Number(min=0), default=None, metavar="DAYS",
              help="Exit 1 when the certificate expires within DAYS days.")
@family_options
@output_options
def http(urls: tuple[str, ...], count: int | None, duration: float | None, interval: float, concurrency: int,
         method: str, headers: tuple[str, ...], data: bytes | None, data_file: bytes | None, http11: bool,
         http2: bool, new_connection: bool, resolve: tuple[str, ...], insecure: bool, cafile: str | None,
         max_redirs: int, timeout: float, expect_status: str | None, expect_body: str | None,
         max_total: float | None, min_cert_days: float | None, family: int) -> ExitCode:
    """Time HTTP requests phase by phase: DNS, connect, TLS, first byte, transfer.

    Each request's phases are measured at the socket, as curl -w reports them; across the requests
    the p50/p90/p99/max of each phase, the statuses, bytes, HTTP and TLS versions and the
    certificate's days left, and a waterfall of the median request (as httpstat draws one).
    Connections are reused (as a browser does) unless --new-connection. HTTP/2 is used where the
    server offers it in ALPN (https). Errors are counted by kind: dns, refused, timeout, tls, reset,
    closed, protocol, other.

    Exit status: 0 ok, 1 a request failed or a check failed (named on stderr), 2 usage, 3 runtime,
    130 interrupted by Ctrl-C (after the summary).

    \b
    Examples:
      netkit measure http https://example.com/ -n 20
      netkit measure http https://127.0.0.1:8443/ -k --http1.1 --new-connection
      netkit measure http https://example.com/ --resolve example.com:443:127.0.0.1 -k
      netkit measure http http://127.0.0.1:8080/health --expect-status 2xx --max-total 50
    """
    from netkit.core.http_config import (
        HttpChecks,
        HttpConfig,
        parse_header,
        parse_resolve,
        parse_status_spec,
        parse_urls,
    )
    from netkit.core.http_result import HttpSample
    from netkit.io.measure.http import measure_http
    from netkit.render.http import HttpProgress, csv_row, render_http, request_event

    if http11 and http2:
        raise usage_error("--http1.1 and --http2 exclude each other")
    if data is not None and data_file is not None:
        raise usage_error("--data and --data-file exclude each other")
    out = get_output()
    parsed = parse_urls(urls)
    if http2 and any(not u.tls for u in parsed):
        raise usage_error("--http2 needs an https:// URL (HTTP/2 is chosen in TLS's ALPN)")
    checks = HttpChecks(
        expect_status=None if expect_status is None else parse_status_spec(expect_status),
        expect_body=expect_body, max_total_ms=max_total, min_cert_days=min_cert_days)
    cfg = HttpConfig(
        urls=parsed, count=DEFAULT_COUNT if count is None and duration is None else count, duration_s=duration,
        interval_s=interval, concurrency=concurrency, method=method.upper(),
        headers=tuple(parse_header(h) for h in headers), data=data if data is not None else data_file,
        http_version="1.1" if http11 else "2" if http2 else "auto", new_connection=new_connection,
        resolve=tuple(parse_resolve(r) for r in resolve), insecure=insecure, cafile=cafile,
        max_redirs=max_redirs, family=family, timeout_s=timeout, checks=checks)
    if cfg.checks.expect_body is not None:
        from netkit.core.http_config import compile_body_regex

        compile_body_regex(cfg.checks.expect_body)

    progress = HttpProgress(out)

    def sink(s: HttpSample) -> None:
        if out.format == "jsonl":
            out.jsonl(request_event(s))
        elif out.format == "csv":
            out.csv_rows([csv_row(s)])
        else:
            progress.add(s)

    with progress:
        result = measure_http(cfg, sink=sink)
    if http2:
        for r in result.urls:
            if r.http_version not in (None, "2"):
                result.failed.append(f"{r.url}: --http2: the server chose HTTP/{r.http_version} in ALPN")
    render_http(out, result)
    if result.by_sigint:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if not result.failed else ExitCode.CHECK_FAILED
