"""What ``netkit measure http`` shows.

- ``table``: per URL a header (requests, errors, statuses, bytes, HTTP and TLS versions, the
  certificate's days left), one row per phase with its percentiles, and the median request drawn as a
  waterfall (as httpstat draws one request): fitted to 80 columns, plain text when piped.
- ``json``: the summary document; ``jsonl``: one object per request as it completes (the CLI's
  sink, :func:`request_event`), then a summary; ``csv``: one row per request, the same fields.

Nothing here reads a socket or a clock. Peer text (an error line) was escaped by the I/O layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netkit.core.escape import safe_text
from netkit.core.http_result import CUMULATIVE, PHASES, HttpResult, HttpSample, HttpUrlResult
from netkit.core.units import format_bytes, format_count, format_ms
from netkit.render.live import LiveScreen, ScreenView
from netkit.render.tables import Col, cell, fitted_table

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType

    from netkit.render.output import Output

PHASE_COLUMNS = (Col("phase", "left"), Col("p50", "right"), Col("p90", "right", drop=1),
                 Col("p99", "right"), Col("max", "right", drop=2))
_LABELS = {"dns": "dns lookup", "connect": "tcp connect", "tls": "tls handshake", "send": "request sent",
           "ttfb": "first byte", "transfer": "transfer", "total": "total"}
#: The waterfall's five boxes (httpstat's): the send phase is folded into the server's time as curl's
#: starttransfer - pretransfer is.
_BOXES = ("DNS lookup", "TCP connect", "TLS", "Server (TTFB)", "Transfer")
_BOX = 14


def waterfall_lines(phases_ns: tuple[int, ...]) -> list[str]:
    """The median request as httpstat draws a request, in 76 columns: a box per phase and, below,
    where each of curl's cumulative times falls."""
    dns, conn, tls, send, ttfb, transfer, total = phases_ns
    boxes = [dns, conn, tls, send + ttfb, transfer]
    head = " " + " ".join(f"{label:^{_BOX}}" for label in _BOXES)
    row = "[" + "|".join(f"{format_ms(v / 1e6):^{_BOX}}" for v in boxes) + "]"
    bars = " " + " ".join(" " * (_BOX - 1) + "|" for _ in boxes)
    lines = [head, row]
    cum = [dns, dns + conn, dns + conn + tls, dns + conn + tls, dns + conn + tls + send + ttfb, total]
    # namelookup, connect, appconnect, starttransfer, total: one marker line each, under its bar
    marks = [(0, cum[0]), (1, cum[1]), (2, cum[2]), (3, cum[4]), (4, cum[5])]
    names = [CUMULATIVE[0], CUMULATIVE[1], CUMULATIVE[2], CUMULATIVE[4], CUMULATIVE[5]]
    lines.append(bars)
    for (i, v), name in zip(marks, names, strict=True):
        end = (i + 1) * (_BOX + 1)  # the column of box i's closing bar
        label = f"{name}:{format_ms(v / 1e6)}"
        line = [" "] * (5 * (_BOX + 1) + 1)
        for k in range(i + 1, 5):
            line[(k + 1) * (_BOX + 1)] = "|"
        text = "".join(line)
        start = max(0, end - len(label) + 1)
        lines.append((text[:start] + label + text[start + len(label):]).rstrip())
    return lines


def _header(r: HttpUrlResult) -> list[str]:
    parts = [f"{format_count(r.count)} request{'s' if r.count != 1 else ''}",
             f"{format_count(r.errors_total)} error{'s' if r.errors_total != 1 else ''}"]
    if r.statuses:
        parts.append("status " + ", ".join(f"{k} x{format_count(v)}" for k, v in sorted(r.statuses.items())))
    if r.bytes_min is not None and r.bytes_max is not None:
        same = r.bytes_min == r.bytes_max
        parts.append(f"{format_count(r.bytes_min)} B" if same else
                     f"{format_count(r.bytes_min)}-{format_count(r.bytes_max)} B")
    if r.requests_per_s is not None:
        parts.append(f"{r.requests_per_s:,.1f} req/s")
    parts.append(f"{format_count(r.new_connections)} new connection{'s' if r.new_connections != 1 else ''}")
    return parts


def _fold(parts: list[str], width: int | None) -> list[str]:
    """``parts`` joined by commas into lines of at most ``width`` columns (80 when unknown)."""
    limit = width or 80
    lines: list[str] = []
    for p in parts:
        if lines and len(lines[-1]) + 2 + len(p) <= limit:
            lines[-1] += ", " + p
        else:
            lines.append(p)
    return lines


def _proto(r: HttpUrlResult) -> str:
    bits = []
    if r.http_version:
        bits.append(f"HTTP/{r.http_version}")
    if r.tls_version:
        bits.append(f"{r.tls_version} {r.cipher or ''}".strip())
    if r.cert_days_left is not None:
        bits.append(f"cert {r.cert_days_left:,.1f} days left")
    return ", ".join(bits)


def url_table(r: HttpUrlResult, *, width: int | None, interrupted: bool = False) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    rows = []
    for p in PHASES:
        s = r.stats_ms(p)
        rows.append([_LABELS[p], format_ms(s["p50"]), format_ms(s["p90"]), format_ms(s["p99"]),
                     format_ms(s["max"])])
    parts: list[RenderableType] = [
        cell(f"measure http {safe_text(r.url)}" + (" (stopped early)" if interrupted else ""), style="bold"),
        *(Text(line) for line in _fold(_header(r), width)),
    ]
    if _proto(r):
        parts.append(Text(_proto(r)))
    if r.ok_count:
        parts.append(fitted_table(PHASE_COLUMNS, rows, width=width, title="phases"))
        med = r.median_request_ns()
        if med is not None:
            parts.append(Text("median request:"))
            parts.extend(Text(line) for line in waterfall_lines(med))
    errs = {k: v for k, v in r.errors.items() if v}
    if errs:
        parts.append(Text("errors: " + ", ".join(f"{k} {format_count(v)}" for k, v in errs.items()),
                          style="yellow"))
        if r.last_error:
            parts.append(Text.assemble(("last error: ", "bold"), cell(r.last_error, style="yellow")))
    return Group(*parts)


class HttpProgress(ScreenView):
    """While the run lasts, on a terminal (stderr): one line of figures so far, redrawn by Rich's
    thread twice a second and erased at the end. Elsewhere nothing (jsonl/csv stream their rows)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.url = ""
        self.count = 0
        self.errors = 0
        self.last = ""
        self.screen: LiveScreen | None = None
        if out.format == "table" and out.live_ok:
            self.screen = LiveScreen(out, self._draw, refresh_per_second=2, auto_refresh=True)

    def add(self, s: HttpSample) -> None:
        self.url = s.url
        self.count += 1
        if s.ok:
            self.last = f"last {s.status} in {format_ms(s.phases_ns[-1] / 1e6)}"
        else:
            self.errors += 1
            self.last = f"last {s.error_kind}"

    def _draw(self) -> RenderableType:
        from rich.text import Text

        return Text(f"{format_count(self.count)} requests, {format_count(self.errors)} errors, {self.last}  "
                    f"{safe_text(self.url)}", no_wrap=True, overflow="crop")


def request_event(s: HttpSample) -> dict[str, Any]:
    return {"event": "request", **s.to_json()}


def csv_row(s: HttpSample) -> dict[str, Any]:
    from netkit.render.output import flatten

    doc = s.to_json()
    ms = doc.pop("ms") or dict.fromkeys(PHASES)
    doc.setdefault("error_kind", None)
    doc.setdefault("error", None)
    doc.pop("body_match", None)
    return flatten({**doc, "ms": ms})


def render_http(out: Output, result: HttpResult) -> None:
    """The summary in the chosen format on stdout (jsonl/csv rows were streamed by the sink); failed
    checks on stderr."""
    from rich.text import Text

    doc = result.to_json()
    if out.format == "json":
        out.json(doc)
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", **doc})
    elif out.format == "table":
        for i, r in enumerate(result.urls):
            if i:
                out.print("")
            out.print(url_table(r, width=out.width, interrupted=result.interrupted))
        if result.checks_given or result.failed:
            out.print(Text(f"checks: {'PASS' if not result.failed else 'FAIL'}",
                           style="green" if not result.failed else "red bold"))
            for f in result.failed:
                out.print(cell(f"  {f}", style="red"))
    if not (out.table_on_screen):
        for f in result.failed:
            out.info(f"netkit: check failed: {f}")


__all__ = ["HttpProgress", "csv_row", "format_bytes", "render_http", "request_event", "url_table", "waterfall_lines"]
