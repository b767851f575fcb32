"""How ``netkit measure latency`` looks: per-reply lines, the live view, the summary tables.

- Off a terminal (or with stderr redirected) each reply is one ping-style line on stdout
  (:func:`reply_line`); ``--format jsonl`` streams one object per reply (:func:`reply_json`).
- On a terminal a live view on stderr (:class:`LatencyLiveView`, a :class:`LiveScreen`) shows each
  target's progress and running figures; it is erased when the run ends (also by Ctrl-C), so the
  summary printed after it is the clean final screen.
- The summary (:func:`print_latency`) is two tables, loss accounting and RTT statistics, whose
  columns are chosen for the width (:func:`netkit.render.tables.fitted_table`): the target and the
  headline figures always show whole; the least telling columns go first.

``measure loss`` shares the summary (``netkit.render.loss``). Every time is shown through
``netkit.core.units.format_ms``, with its unit; counts with thousands separators.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from netkit.core.accounting import ProbeOutcome
from netkit.core.latency_models import (
    LatencyConfig,
    LatencyResult,
    LiveTarget,
    Method,
    ProbeEvent,
    ReflectorKind,
    TargetResult,
    Thresholds,
    fell_short,
    local_drops_note,
    shortfall_note,
)
from netkit.core.packet import ICMP_ECHO_HEADER
from netkit.core.units import format_count, format_ns_as_ms, format_percent
from netkit.render.live import ScreenView

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

    from netkit.render.live import LiveScreen
    from netkit.render.output import Output

#: The live view's sparkline: at most this many recent RTTs, and none when fewer would fit.
SPARK_MAX = 40
SPARK_MIN = 8
#: Columns between two columns of a fitted table.
GAP = 2


# ----- small pieces ------------------------------------------------------------------------------
def where(target: str, address: str | None) -> str:
    """The target as written, with the address it resolved to when that differs."""
    if not address or address in target:
        return target
    return f"{target} ({address})"


def _title(method: Method | str) -> str:
    return f"measure latency --method {method}"


# ----- per reply ---------------------------------------------------------------------------------
def reply_line(ev: ProbeEvent, method: Method | str = Method.UDP) -> str:
    """One ping-style line per reply (or timeout) for output off a terminal."""
    at = where(ev.target, ev.address)
    if ev.kind is ProbeOutcome.TIMEOUT:
        return f"{at}: seq={ev.seq} no reply (timeout)"
    if ev.kind is ProbeOutcome.ERROR:
        return f"{at}: seq={ev.seq} failed: {ev.error or 'error'}"
    rtt = "" if ev.rtt_ns is None else f" time={format_ns_as_ms(ev.rtt_ns)}"
    tags = {ProbeOutcome.DUPLICATE: " (DUP!)", ProbeOutcome.LATE: " (late)"}.get(ev.kind, "")
    if ev.reordered:
        tags += " (reordered)"
    if Method(method) is Method.TCP_CONNECT:
        return f"connected to {at}: seq={ev.seq}{rtt}{tags}"
    # ping counts the ICMP header in its "64 bytes from" (56 of payload): say what it says
    size = ev.size + ICMP_ECHO_HEADER.size if Method(method) is Method.ICMP else ev.size
    return f"{size} bytes from {at}: seq={ev.seq}{rtt}{tags}"


def reply_json(ev: ProbeEvent) -> dict[str, Any]:
    """One ``--format jsonl`` object per reply, timeout or error."""
    failed = ev.kind in (ProbeOutcome.TIMEOUT, ProbeOutcome.ERROR)
    return {"event": ev.kind.value if failed else "reply", "target": ev.target, "address": ev.address,
            "seq": ev.seq, "kind": ev.kind.value, "rtt_ms": None if ev.rtt_ns is None else ev.rtt_ns / 1e6,
            "reordered": ev.reordered, "error": ev.error}


def reply_printer(out: Output, method: Method, *, live: bool) -> Callable[[ProbeEvent], None] | None:
    """What to do with each reply as it comes: a jsonl object, a ping-style line when no live view
    shows (off a terminal), or nothing (None). A closed stdout raises BrokenPipeError from it."""
    if out.quiet:
        return None
    if out.format == "jsonl":
        return lambda ev: out.jsonl(reply_json(ev))
    if out.format == "table" and not live:
        return lambda ev: out.line(reply_line(ev, method))
    return None


# ----- the live view -----------------------------------------------------------------------------
def _width(value: str) -> int:
    from rich.cells import cell_len

    return cell_len(value)


def live_table(method: Method | str, total: int | None, targets: Sequence[LiveTarget],
               width: int | None) -> Table:
    """The live view: per target its probes sent and answered, loss so far, last/avg/p95 RTT and a
    sparkline of the recent RTTs, which shrinks (then goes) before any other column on a narrow
    screen. The target and the loss and RTT figures always show whole."""
    from netkit.core.stats import percentile
    from netkit.render.tables import Col, fit_columns, fitted_table, sparkline

    cols = [Col("target"), Col("sent", "right", drop=2), Col("recv", "right", drop=2),
            Col("loss", "right"), Col("last", "right"), Col("avg", "right", drop=1), Col("p95", "right")]
    rows: list[list[str]] = []
    for t in targets:
        a = t.acc
        rtts = a.rtts_ns
        done = a.received + a.late + a.expired
        loss = None if done == 0 else 100.0 * (done - a.received - a.late) / done
        avg = sum(rtts) / len(rtts) if rtts else None
        p95 = percentile(sorted(rtts[-1000:]), 95) if rtts else None
        rows.append([t.label, format_count(a.sent), format_count(a.received), format_percent(loss),
                     format_ns_as_ms(rtts[-1] if rtts else None), format_ns_as_ms(avg), format_ns_as_ms(p95)])
    title = _title(method) + (f" ({format_count(total)} probes each)" if total else "")
    keep = fit_columns(cols, rows, width)
    used = sum(max([_width(cols[i].name), *(_width(r[i]) for r in rows)]) for i in keep) + GAP * (len(keep) - 1)
    room = SPARK_MAX if width is None else min(SPARK_MAX, width - used - GAP)
    shown_cols = [cols[i] for i in keep]
    shown_rows = [[r[i] for i in keep] for r in rows]
    if room >= SPARK_MIN:
        header = "recent RTTs" if room >= len("recent RTTs") else "recent"  # never wider than its room
        shown_cols.append(Col(header))
        for row, t in zip(shown_rows, targets, strict=True):
            row.append(sparkline(t.acc.rtts_ns[-room:]))
    return fitted_table(shown_cols, shown_rows, width=width, title=title)


class LatencyLiveView(ScreenView):
    """The live view while probes run: ``with view: run_latency(..., on_start=view.attach)``.

    It shows only on a terminal running ``--format table`` (and not ``-q``); :attr:`active` says
    whether it does, so per-reply lines go to stdout exactly when it does not.
    """

    def __init__(self, out: Output, method: Method, total: int | None) -> None:
        from netkit.render.live import LiveScreen

        self.method = method
        self.total = total
        self.targets: list[LiveTarget] = []
        self.enabled = out.format == "table" and out.stdout_is_tty and out.live_ok
        self.screen: LiveScreen | None = LiveScreen(out, self.draw) if self.enabled else None

    @property
    def active(self) -> bool:
        return self.enabled

    def attach(self, targets: list[LiveTarget]) -> None:
        self.targets = targets

    def draw(self) -> RenderableType:
        width = self.screen.width if self.screen is not None else None
        return live_table(self.method, self.total, self.targets, width)


# ----- the summary -------------------------------------------------------------------------------
#: RTT statistics in the order shown, each with its drop rank (0: always shown).
RTT_COLUMNS: tuple[tuple[str, int], ...] = (
    ("min", 1), ("avg", 0), ("max", 1), ("mdev", 4), ("p50", 2), ("p90", 5), ("p95", 0), ("p99", 3),
    ("jitter", 2), ("ipdv", 5),
)


def shows_direction(results: Sequence[TargetResult]) -> bool:
    """Per-direction loss is measured only against netkit's reflector (which counts what it got)."""
    return any(r.reflector is ReflectorKind.NETKIT for r in results)


def loss_table(results: Sequence[TargetResult], title: str, width: int | None) -> Table:
    """Sent, received, lost and the loss percentage per target; by direction when measured."""
    from netkit.render.tables import Col, fitted_table

    direction = shows_direction(results)
    dropped_here = any(r.acc.local_drops for r in results)
    cols = [Col("target"), Col("sent", "right"), Col("recv", "right"), Col("lost", "right"),
            Col("loss", "right")]
    if direction:
        cols += [Col("fwd", "right", drop=2), Col("ret", "right", drop=2)]
    cols += [Col("dup", "right", drop=3), Col("reord", "right", drop=3), Col("late", "right", drop=3)]
    if dropped_here:
        cols.append(Col("local", "right", drop=1))
    rows: list[list[Any]] = []
    for r in results:
        a = r.acc
        row: list[Any] = [where(r.target, r.address), format_count(a.sent), format_count(a.received),
                          format_count(a.lost), format_percent(a.loss_pct)]
        if direction:
            row += [None if v is None else format_count(v) for v in (a.lost_forward, a.lost_return)]
        row += [format_count(a.duplicates), format_count(a.reordered), format_count(a.late)]
        if dropped_here:
            row.append(format_count(a.local_drops or 0))
        rows.append(row)
    return fitted_table(cols, rows, width=width, title=title)


def rtt_table(results: Sequence[TargetResult], width: int | None) -> Table:
    """Round-trip statistics per target, each figure in ms; on a narrow screen min, avg, max, p50,
    p95 and jitter stay and the rest is left to the JSON output."""
    from netkit.render.tables import Col, fitted_table

    cols = [Col("target"), *(Col(name, "right", drop=drop) for name, drop in RTT_COLUMNS)]
    rows = [[r.target, *(format_ns_as_ms(getattr(r.stats, name)) for name, _ in RTT_COLUMNS)] for r in results]
    return fitted_table(cols, rows, width=width, title="round-trip time")


def summary_view(results: Sequence[TargetResult], thresholds: Thresholds, title: str,
                 width: int | None) -> RenderableType:
    """The loss table, its legend, the RTT table, notes and (when one was given) the threshold verdict."""
    from rich.console import Group
    from rich.text import Text

    from netkit.render.tables import cell

    loss = loss_table(results, title, width)
    shown = {str(c.header) for c in loss.columns}
    parts: list[RenderableType] = [loss]
    legend = []
    if "fwd" in shown and "ret" in shown:
        legend.append("  fwd/ret: lost on the way there / back")
    elif "fwd" in shown:  # a narrow screen left out ret (same drop rank, the rightmost goes first)
        legend.append("  fwd: lost on the way there")
    if "local" in shown:
        legend.append("  local: dropped by this host's socket buffer (not loss)")
    if legend:
        parts.append(Text("\n".join(legend), style="dim"))
    parts.append(Text(""))
    parts.append(rtt_table(results, width))
    notes: list[RenderableType] = []
    for r in results:
        if r.acc.local_drops:
            notes.append(cell(local_drops_note(r.target, r.acc.local_drops), style="yellow"))
    for r in results:
        # A target with no reply at all is said once, on stderr, as every failure is.
        if r.error and r.acc.received:
            notes.append(Text.assemble((f"{r.target}: ", "bold"), cell(r.error, style="yellow")))
    if thresholds.given:
        verdict = "PASS" if thresholds.passed else "FAIL"
        notes.append(Text(f"thresholds: {verdict}", style="green" if thresholds.passed else "red bold"))
        notes.extend(cell(f"  {f}", style="red") for f in thresholds.failed)
    if notes:
        parts.append(Text(""))
        parts.extend(notes)
    return Group(*parts)


def histogram_text(result: TargetResult, bins: int = 8, width: int = 30) -> Text:
    """A small RTT histogram for one target (equal-width bins, bars scaled to the largest)."""
    from rich.text import Text

    from netkit.core.stats import histogram

    text = Text()
    if len(result.acc.rtts_ns) < 2:
        return text
    rows = histogram(result.acc.rtts_ns, bins)
    bounds = [(format_ns_as_ms(lo), format_ns_as_ms(hi)) for lo, hi, _ in rows]
    w_lo = max(len(lo) for lo, _ in bounds)
    w_hi = max(len(hi) for _, hi in bounds)
    text.append(f"RTT histogram {result.target}\n", style="bold")
    top = max(c for _, _, c in rows) or 1
    for (lo, hi), (_, _, c) in zip(bounds, rows, strict=True):
        bar = "█" * max(1 if c else 0, round(c * width / top))
        text.append(f"  {lo:>{w_lo}} - {hi:>{w_hi}} | ")
        text.append(bar, style="cyan")
        text.append(f" {format_count(c)}\n")
    text.rstrip()
    return text


def emit_summary(out: Output, doc: dict[str, Any], results: Sequence[TargetResult], thresholds: Thresholds,
                 title: str, *, histograms: bool = True) -> None:
    """The final result in the chosen format (jsonl: one ``summary`` object), then the failures on
    stderr, each once."""
    from netkit.render.output import flatten

    if out.format == "json":
        out.json(doc)
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", **doc})
    elif out.format == "csv":
        # interrupted goes last, beside passed: the columns before it keep the places they had
        extra = {k: v for k, v in doc.items() if k not in ("targets", "thresholds", "interrupted")}
        rows = []
        for t in doc["targets"]:
            row = {**extra, **t, "interrupted": doc["interrupted"], "passed": doc["thresholds"]["passed"]}
            rows.append(flatten(row))
        out.csv_rows(rows)
    else:
        out.print(summary_view(results, thresholds, title, out.width))
        if histograms and out.stdout_is_tty and not out.quiet:
            for r in results:
                chart = histogram_text(r)
                if chart.plain:
                    out.print("")
                    out.print(chart)
    if out.format != "table":  # the table carries this note itself: say it once, not twice
        for r in results:
            if r.acc.local_drops:
                out.info(f"netkit: {local_drops_note(r.target, r.acc.local_drops)}")
    # A target that failed outright (name not resolved, refused) reads as every command says it.
    failed_outright = {f"{r.target}: {r.error}" for r in results if r.acc.received == 0 and r.error}
    for f in thresholds.failed:
        if f in failed_outright:
            out.info(f"netkit: {f}")
        elif not out.table_on_screen:  # on a terminal the table's thresholds lines just said it
            out.info(f"netkit: check failed: {f}")


def print_latency(out: Output, result: LatencyResult, cfg: LatencyConfig, *, samples: bool = False) -> None:
    """Everything ``measure latency`` says after the run: how each target was measured (stderr),
    then the summary in the chosen format."""
    for r in result.targets:
        if r.detail:
            out.debug(f"{r.target}: measured by {r.detail}")
        if result.method is Method.UDP and r.reflector is not None:
            kind = ("netkit's reflector (per-direction loss)" if r.reflector is ReflectorKind.NETKIT
                    else "a plain echo (round trip only)")
            out.info(f"netkit: {r.target}: answered by {kind}")
    if cfg.interval_s > 0:
        wanted = 1.0 / cfg.interval_s
        for r in result.targets:
            if fell_short(r, wanted):
                out.warn(shortfall_note(r.target, wanted, r.achieved_pps or 0.0))
    title = _title(result.method) + (" (stopped early)" if result.interrupted else "")
    emit_summary(out, result.to_json(samples=samples), result.targets, result.thresholds, title)
