"""What ``netkit measure responsiveness`` shows: per-interval rows while it runs, then the summary.

- On a terminal (stderr), a live table of the last intervals (throughput and RPM converging), erased
  at the end; off a terminal one plain line per interval; ``--format jsonl`` one ``interval`` event.
- The summary: per direction the throughput, RPM, the draft's band and confidence, idle, loaded and
  added latency (ms); then the probes' percentiles (``tcp_f``, ``tls_f``, ``http_f``, ``http_l``).

Nothing here reads a socket or a clock: it formats a
:class:`netkit.core.responsiveness_result.ResponsivenessResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from netkit.core.escape import safe_text
from netkit.core.responsiveness_algo import METRICS
from netkit.core.responsiveness_result import DirectionResult, ResponsivenessInterval, ResponsivenessResult
from netkit.core.units import format_bitrate, format_count, format_ms
from netkit.render.live import IntervalProgress
from netkit.render.tables import Col, cell, fitted_table, verdict_lines

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType
    from rich.table import Table

    from netkit.render.output import Output

LIVE_ROWS = 10
_GAP = "  "


def _rpm(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f} RPM"


# ----- interval lines and the live view ----------------------------------------------------------

def responsiveness_interval_line(row: ResponsivenessInterval, *, width: int | None = None) -> str:
    r = row.record
    fields = [f"{row.elapsed_s:6.1f} s", f"{r.direction:<8}", f"{format_bitrate(r.goodput_ma_bps):>13}",
              f"{_rpm(r.rpm):>11}", f"conns {r.connections:>2}", f"{r.stage.value}"]
    line = _GAP.join(fields)
    if width is not None and len(line) > width:
        line = _GAP.join(fields[:4])
    return line.rstrip()


LIVE_COLUMNS = (Col("time", "right"), Col("direction"), Col("throughput", "right"), Col("RPM", "right"),
                Col("conns", "right", drop=1), Col("probes", "right", drop=2), Col("stage", drop=3))


def responsiveness_live_table(rows: Sequence[ResponsivenessInterval], *, width: int | None) -> Table:
    cells = [[f"{r.elapsed_s:.1f} s", r.record.direction, format_bitrate(r.record.goodput_ma_bps),
              _rpm(r.record.rpm), format_count(r.record.connections),
              format_count(r.record.foreign + r.record.self_), r.record.stage.value]
             for r in rows[-LIVE_ROWS:]]
    return fitted_table(LIVE_COLUMNS, cells, width=width, title="measure responsiveness (live)")


class ResponsivenessProgress(IntervalProgress[ResponsivenessInterval]):
    """``with ResponsivenessProgress(out) as p: measure_responsiveness(cfg, sink=p.add)``."""

    live_rows = LIVE_ROWS

    def live_table(self, rows: Sequence[ResponsivenessInterval], width: int | None) -> Table:
        return responsiveness_live_table(rows, width=width)

    def line(self, row: ResponsivenessInterval, width: int | None) -> str:
        return responsiveness_interval_line(row, width=width)


# ----- the summary -------------------------------------------------------------------------------

SUMMARY_COLUMNS = (Col("direction"), Col("throughput", "right"), Col("RPM", "right"), Col("band"),
                   Col("confidence", drop=2), Col("loaded", "right", drop=3), Col("added", "right"),
                   Col("conns", "right", drop=1))
PROBE_COLUMNS = (Col("direction"), Col("probe"), Col("p50", "right"), Col("p90", "right"), Col("p99", "right"),
                 Col("trimmed mean", "right", drop=1))
_PROBE_NAMES = {"tcp_f": "tcp_f (connect)", "tls_f": "tls_f (TLS/RT)", "http_f": "http_f (new conn)",
                "http_l": "http_l (loaded)"}


def _confidence(d: DirectionResult) -> str:
    return d.rpm_confidence.value if d.rpm_confidence == d.goodput_confidence else \
        f"{d.goodput_confidence.value}/{d.rpm_confidence.value}"


def responsiveness_summary_table(result: ResponsivenessResult, *, width: int | None = None) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    title = f"measure responsiveness {safe_text(result.url)}" + (" (stopped early)" if result.interrupted else "")
    rows = [[d.direction, format_bitrate(d.goodput_bps), _rpm(d.rpm), "-" if d.band is None else d.band.value,
             _confidence(d), format_ms(d.loaded_ms),
             "-" if d.added_ms is None else ("+" if d.added_ms >= 0 else "") + format_ms(d.added_ms),
             format_count(d.connections)] for d in result.directions]
    parts: list[Any] = [fitted_table(SUMMARY_COLUMNS, rows, width=width, title=title)]
    proto = result.protocol + (f" over {result.tls_version}" if result.tls_version else " (no TLS)")
    selfp = "a GET on a load connection" if result.self_probe == "http" else \
        "the kernel's RTT of a load connection (HTTP/1.1)"
    parts.append(Text(f"idle latency {format_ms(result.idle_ms)} ({format_count(result.idle.foreign)} probes); "
                      f"{proto}; http_l is {selfp}"))
    if any(d.rpm_confidence != d.goodput_confidence for d in result.directions):
        parts.append(Text("confidence a/b: the throughput's, then the RPM's (low: stopped before "
                          "enough intervals; medium: never stable)"))
    parts.append(Text(""))
    prow: list[list[Any]] = []
    tm_of = {"tcp_f": "tm_tcp", "tls_f": "tm_tls", "http_f": "tm_http_f", "http_l": "tm_http_l"}
    for d in result.directions:
        for m in METRICS:
            pc = d.stats.percentiles[m]
            if pc.get("p50") is None:
                continue
            prow.append([d.direction, _PROBE_NAMES[m], format_ms(pc["p50"]), format_ms(pc["p90"]),
                         format_ms(pc["p99"]), format_ms(getattr(d.stats, tm_of[m]))])
    if prow:
        parts.append(fitted_table(PROBE_COLUMNS, prow, width=width, title="probes under load"))
        parts.append(Text("probes: " + ", ".join(
            f"{d.direction} {format_count(d.stats.foreign)} foreign + {format_count(d.stats.self_)} self"
            + (f" ({format_count(d.probes_unfinished)} never answered, counted with the time they waited)"
               if d.probes_unfinished else "") for d in result.directions)))
    if result.error:
        parts.append(Text.assemble(("note: ", "bold"), cell(result.error, style="yellow")))
    th = result.thresholds
    if th.given:
        parts.extend(verdict_lines(th.passed, th.failed))
    return Group(*parts)


def render_responsiveness(out: Output, result: ResponsivenessResult) -> None:
    """The summary in the chosen format on stdout; failed checks on stderr."""
    from netkit.render.output import flatten

    doc = result.to_json()
    if out.format == "json":
        out.json(doc)
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", **doc})
    elif out.format == "csv":
        base = {k: v for k, v in doc.items() if k not in ("directions", "thresholds", "idle")}
        rows = []
        for d in doc["directions"] or [{}]:
            row = flatten({**base, **{"direction": None}, **d})
            row["thresholds.passed"] = result.thresholds.passed
            row["thresholds.failed"] = ";".join(result.thresholds.failed)
            rows.append(row)
        out.csv_rows(rows)
    else:
        out.print(responsiveness_summary_table(result, width=out.width))
    if not (out.table_on_screen and result.thresholds.given):
        for f in result.thresholds.failed:
            out.info(f"netkit: check failed: {f}")
