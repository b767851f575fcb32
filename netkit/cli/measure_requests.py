"""``netkit measure requests``: request/response load over persistent connections.

Options -> ``RequestsConfig`` -> ``netkit.io.measure.request_load`` (a connection pool, closed or open
loop) -> ``RequestsResult`` -> per-second rows (live view on a terminal, lines off one, jsonl
events) and a summary (table/json/jsonl/csv) -> exit code. Heavy imports happen inside functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.guard_options import key_options, load_key_option
from netkit.cli.params import TARGET, Bytes, Count, Duration, Number, Size, usage_error
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.request_models import IntervalRow, RequestsResult
    from netkit.render.output import Output

DEFAULT_DURATION_S = 10.0


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def row_line(row: IntervalRow) -> str:
    """One plain per-second line (table format off a terminal, like iperf3's interval lines)."""
    lat = row.latency_ms
    return (f"[{row.start_s:6.2f}-{row.end_s:6.2f}s] {row.requests_per_s:12,.1f} req/s  p50 {_ms(lat['p50'])} ms  "
            f"p99 {_ms(lat['p99'])} ms  max {_ms(lat['max'])} ms  errors {row.errors}  "
            f"reconnects {row.reconnects}  conns {row.open_connections}")


def summary_table(result: RequestsResult) -> Any:
    from rich.console import Group
    from rich.text import Text

    from netkit.core.escape import safe_text
    from netkit.core.units import format_bytes
    from netkit.render.tables import add_row, cell, make_table

    doc = result.to_json()
    # One target per run: it and the mode head the table, so the seven figures keep their full
    # width on an 80-column terminal (as columns they cut req/s to "43,85…").
    target = safe_text(result.target) + (", tls" if result.tls else "")
    t = make_table([("conns", "right"), ("requests", "right"), ("req/s", "right"),
                    ("sent/s", "right"), ("recv/s", "right"), ("errors", "right"), ("reconnects", "right")],
                   title=f"measure requests {target} ({result.mode})", compact=True)
    rps = doc["requests_per_s"]
    bps = doc["bytes_per_s"]
    add_row(t, result.connections, result.requests,
            "-" if rps is None else f"{rps:,.1f}",
            "-" if bps["sent"] is None else format_bytes(bps["sent"]) + "/s",
            "-" if bps["received"] is None else format_bytes(bps["received"]) + "/s",
            doc["errors"]["total"], result.reconnects)
    lat = make_table([("min", "right"), ("avg", "right"), ("p50", "right"), ("p90", "right"), ("p99", "right"),
                      ("p99.9", "right"), ("max", "right")],
                     title="latency (ms, from the " + ("scheduled time)" if result.mode == "open-loop" else "send)"))
    la = doc["latency_ms"]
    add_row(lat, *(_ms(la[k]) for k in ("min", "avg", "p50", "p90", "p99", "p99_9", "max")))
    parts: list[Any] = [t, lat]
    errs = {k: v for k, v in doc["errors"].items() if k != "total" and v}
    if errs:
        parts.append(Text("errors: " + ", ".join(f"{k} {v}" for k, v in errs.items()), style="yellow"))
    if result.drops:
        parts.append(Text(f"connections dropped: {result.drops}, reconnected: {result.reconnects}"))
    if result.error and errs:
        parts.append(Text.assemble(("last error: ", "bold"), cell(result.error, style="yellow")))
    parts.append(Text(f"note: {result.note}", style="dim"))
    lat_v = result.latency
    stalled = lat_v.max is not None and lat_v.p99 is not None and lat_v.max >= max(50.0, 20 * lat_v.p99)
    if result.mode == "closed-loop" and stalled:
        parts.append(Text(f"hint: max {lat_v.max:.3f} ms is far above p99: a stall may be hidden by coordinated "
                          "omission; an open loop (--rate) counts it for every request it delayed", style="yellow"))
    th = result.thresholds
    if th.min_rps is not None or th.max_p99_ms is not None or not th.passed:
        parts.append(Text(f"thresholds: {'PASS' if th.passed else 'FAIL'}", style="green" if th.passed else "red bold"))
        for f in th.failed:
            parts.append(cell(f"  {f}", style="red"))
    return Group(*parts)


class LiveRows:
    """Live view on stderr (a terminal): the last per-second rows, redrawn each second."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.rows: list[IntervalRow] = []
        self.live: Any = None

    def render(self) -> Any:
        from netkit.render.tables import add_row, make_table

        t = make_table(["time", ("req/s", "right"), ("p50 ms", "right"), ("p99 ms", "right"), ("max ms", "right"),
                        ("errors", "right"), ("reconnects", "right"), ("conns", "right")],
                       title="measure requests (live)")
        for r in self.rows[-10:]:
            add_row(t, f"{r.end_s:.1f}s", f"{r.requests_per_s:,.1f}", _ms(r.latency_ms["p50"]),
                    _ms(r.latency_ms["p99"]), _ms(r.latency_ms["max"]), r.errors, r.reconnects, r.open_connections)
        return t

    def add(self, row: IntervalRow) -> None:
        self.rows.append(row)
        if self.live is not None:
            self.live.update(self.render(), refresh=True)

    def __enter__(self) -> LiveRows:
        from rich.live import Live

        self.live = Live(self.render(), console=self.out.err_console, auto_refresh=False, transient=True,
                         redirect_stdout=False, redirect_stderr=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


@click.command(name="requests")
@click.argument("target", type=TARGET, metavar="HOST:PORT")
@click.option("-c", "--connections", type=Count(min=1, max=10000), default=10, show_default=True,
              help="Persistent connections (the pool size).")
@click.option("-d", "--duration", type=Duration(min=0.0, min_open=True), default=None,
              help=f"How long to send (default {DEFAULT_DURATION_S:g}s unless --requests is given).")
@click.option("-n", "--requests", "count", type=Count(min=1), default=None,
              help="Stop after this many requests (with --duration: whichever comes first).")
@click.option("-s", "--size", type=Size(min=1, max=16 * 1024 * 1024), default=None,
              help="Request size in bytes (default 64; with --payload its length).")
@click.option("--reply-size", type=Size(min=1, max=16 * 1024 * 1024), default=None,
              help="A reply is this many bytes (default: the request size, for echo services).")
@click.option("--delimiter", type=Bytes(allow_empty=False), default=None, metavar="TEXT",
              help="A reply ends with TEXT (escapes: \\n \\r \\t \\0 \\xHH), e.g. '\\n' for line services.")
@click.option("--netkit-header", "header", is_flag=True,
              help="Frame requests and replies with netkit's header (against netkit serve tcp; any --reply-size).")
@click.option("--payload", type=Bytes(allow_empty=False, allow_file=True, max_size=16 * 1024 * 1024),
              default=None, metavar="TEXT|@FILE",
              help="Send this request instead of generated bytes (escapes as --delimiter; @FILE reads a file).")
@click.option("--expect", default=None, metavar="REGEX",
              help="Each reply must match REGEX (searched in the reply bytes); others count as unexpected-reply.")
@click.option("-r", "--rate", type=Count(min=0.001, integer=False), default=None,
              help="Open loop: schedule this many requests/s; latency counts from the scheduled time.")
@click.option("-W", "--timeout", type=Duration(min=0.0, min_open=True), default="5s", show_default=True,
              help="A request without a reply this long is an error (its connection is replaced).")
@click.option("--connect-timeout", type=Duration(min=0.0, min_open=True), default="5s", show_default=True,
              help="Give up a connection attempt after this long.")
@click.option("--backoff", type=Duration(min=0.0), default="0.5s", show_default=True,
              help="First reconnect delay after a drop (doubles each attempt, as netkit probe).")
@click.option("--max-backoff", type=Duration(min=0.0), default="10s", show_default=True,
              help="Longest reconnect delay.")
@click.option("--tls", is_flag=True, help="Speak TLS; the certificate is verified.")
@click.option("-k", "--insecure", is_flag=True, help="With --tls: do not verify the certificate.")
@click.option("--cafile", type=click.Path(dir_okay=False), help="With --tls: trust this CA (PEM).")
@click.option("--server-name", help="With --tls: name to send (SNI) and verify (default: HOST).")
@click.option("--min-rps", type=Number(min=0), default=None, metavar="N",
              help="Exit 1 when the run's requests/s is below N.")
@click.option("--max-p99", type=Duration(min=0.0, min_open=True), default=None, metavar="DURATION",
              help="Exit 1 when the latency p99 exceeds DURATION.")
@click.option("-4", "ipv4", is_flag=True, help="IPv4 only.")
@click.option("-6", "ipv6", is_flag=True, help="IPv6 only.")
@key_options(with_key=True)
@output_options
def requests(target: Any, connections: int, duration: float | None, count: int | None, size: int | None,
             reply_size: int | None, delimiter: bytes | None, header: bool, payload: bytes | None, expect: str | None,
             rate: float | None, timeout: float, connect_timeout: float, backoff: float, max_backoff: float,
             tls: bool, insecure: bool, cafile: str | None, server_name: str | None, min_rps: float | None,
             max_p99: float | None, ipv4: bool, ipv6: bool, key: str | None = None,
             key_file: str | None = None) -> ExitCode:
    """Load a TCP service with requests over persistent connections; report rate and latency.

    Closed loop by default: each connection sends its next request when the reply arrives. With
    --rate, an open loop: requests are scheduled at that rate and latency counts from the
    scheduled time, so a stalled server cannot hide its stall (coordinated omission).
    A reply is recognised by length (--reply-size, default the request size), by --delimiter,
    or by netkit's header (--netkit-header, against netkit serve tcp).
    Dropped connections are reconnected with backoff and counted.

    Exit status: 0 ok, 1 no request completed, no connection, or a threshold breached,
    2 usage, 3 runtime, 130 interrupted by Ctrl-C (after the summary of what was measured).

    \b
    Examples:
      netkit measure requests 127.0.0.1:9000 -c 100 -d 10s
      netkit measure requests 127.0.0.1:6379 --payload 'PING\\r\\n' --delimiter '\\r\\n' --expect PONG
      netkit measure requests 127.0.0.1:9000 --rate 5000 -d 30s --max-p99 5ms
      netkit measure requests 127.0.0.1:9000 --netkit-header --size 100 --reply-size 4K
    """
    import socket

    from netkit.core.backoff import Backoff
    from netkit.core.request_models import RequestsConfig

    out = get_output()
    if ipv4 and ipv6:
        raise usage_error("-4 and -6 exclude each other")
    if (insecure or cafile or server_name) and not tls:
        raise usage_error("--insecure/--cafile/--server-name need --tls", "--tls")
    if header and delimiter is not None:
        raise usage_error("--netkit-header and --delimiter exclude each other")
    if payload is not None and size is not None:
        raise usage_error("--size and --payload exclude each other (the payload sets the size)")
    if delimiter is not None and reply_size is not None:
        raise usage_error("--reply-size is for length framing; --delimiter ends replies itself")
    if max_backoff < backoff:
        raise usage_error("--max-backoff must not be below --backoff", "--max-backoff")
    body, delim = payload, delimiter  # bytes already (params.Bytes: escapes, @FILE, not empty)
    if expect is not None:
        import re

        try:
            re.compile(expect.encode())
        except re.error as exc:
            raise usage_error(f"invalid --expect regex: {exc}", "--expect") from None
    mkey = load_key_option(key, key_file)  # issue 10: a keyed `netkit serve tcp` (--key, NETKIT_KEY)
    if mkey is not None and not header:
        if key is not None or key_file is not None:  # NETKIT_KEY alone: just not used here
            raise usage_error("--key needs --netkit-header (a keyed netkit serve tcp)", "--key")
        mkey = None
    if insecure:
        out.warn("--insecure: the server's certificate is not verified")
    if duration is None and count is None:
        duration = DEFAULT_DURATION_S
    framing = "header" if header else ("delimiter" if delim else "length")
    family = socket.AF_INET if ipv4 else (socket.AF_INET6 if ipv6 else 0)
    ns = 1_000_000_000
    cfg = RequestsConfig(
        host=target.host, port=target.port, connections=connections, duration_s=duration, requests=count,
        size=size if size is not None else 64, reply_size=reply_size, framing=framing, delimiter=delim,
        payload=body, expect=expect, rate=rate, timeout_s=timeout, connect_timeout_s=connect_timeout,
        tls=tls, insecure=insecure, cafile=cafile, server_name=server_name,
        backoff=Backoff(int(backoff * ns), 2.0, int(max_backoff * ns)), family=family, key=mkey,
    )
    return _run(out, cfg, min_rps, None if max_p99 is None else max_p99 * 1000.0)


def _run(out: Output, cfg: Any, min_rps: float | None, max_p99_ms: float | None) -> ExitCode:
    import contextlib
    import dataclasses

    from netkit.core.request_models import check_thresholds
    from netkit.io.aio import StopSignal, run
    from netkit.io.measure.request_load import run_requests
    from netkit.render.output import flatten

    live = out.live_ok and out.format == "table"
    view = LiveRows(out) if live else None
    lines = out.format == "table" and not live and not out.quiet

    def sink(row: IntervalRow) -> None:
        if out.format == "jsonl":
            out.jsonl(row.to_json())
        elif view is not None:
            view.add(row)
        elif lines:
            out.line(row_line(row))

    async def main() -> tuple[RequestsResult, int | None]:
        async with StopSignal() as stop:
            ctx = view if view is not None else contextlib.nullcontext()
            with ctx:
                res = await run_requests(cfg, sink=sink, stop=stop)
            return res, stop.signum

    result, signum = run(main())
    if cfg.key is not None and result.requests == 0 and signum is None:
        from netkit.core.errors import CheckFailed

        # A keyed server closes a session whose header it cannot verify, every time: no request
        # can complete, and the one useful thing to say is which key to check.
        raise CheckFailed("the server refused the keyed session header: check the key")
    thresholds = check_thresholds(result, min_rps, max_p99_ms)
    result = dataclasses.replace(result, thresholds=thresholds)
    doc = result.to_json()
    if out.format == "json":
        out.json(result.to_json(intervals=True))
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", **doc})
    elif out.format == "csv":
        row = flatten(doc)
        row["thresholds.failed"] = ";".join(thresholds.failed)
        out.csv_rows([row])
    else:
        out.print(summary_table(result))
    if cfg.rate is not None and result.elapsed_ns > 0:
        from netkit.core.pacing import fell_behind

        sent_rate = result.sent / result.elapsed_s
        if fell_behind(cfg.rate, sent_rate):
            if result.unsent:
                why = (f"the sender could not keep up: {result.unsent:,} scheduled requests never left this "
                       "host (a shortfall of this client, not errors of the server)")
            else:
                why = (f"all {cfg.connections} connections were busy: {result.errors.get('overload', 0):,} "
                       "requests found none within --timeout (counted as overload; more --connections "
                       "offer more load)")
            out.warn(f"{result.target}: {sent_rate:,.0f} requests/s sent of {cfg.rate:,.0f} asked: {why}")
    for f in thresholds.failed:
        out.info(f"netkit: check failed: {f}")
    import signal

    if signum == signal.SIGINT:  # as measure throughput: the summary first, then 130
        return ExitCode.INTERRUPTED
    return ExitCode.OK if thresholds.passed else ExitCode.CHECK_FAILED
