"""How ``netkit measure throughput --latency`` shows its result.

- While it runs: each loaded phase gets the throughput command's own view
  (:class:`netkit.render.throughput.ThroughputView`: the live view on a terminal, interval lines
  or jsonl events off one), with the probes' recent RTT above it on a terminal (the idle phase:
  the RTT and a bar); a line on stderr names each phase as it begins.
- ``table``: each phase's throughput summary, then one table of the phases (phase, throughput,
  probes, loss, RTT p50/p90/p99, added latency), and the probes' own rate under it.
- ``json``: one loaded phase: the throughput document as without ``--latency`` plus a ``latency``
  object; several: ``phases`` (each phase's throughput document with its ``phase``) plus
  ``latency``. ``jsonl``: the intervals as they come (each with its ``phase``), then one ``phase``
  event per phase and the ``summary``. ``csv``: one row per phase.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from netkit.core.loaded_latency import (
    LoadedLatency,
    LoadedLatencyRun,
    Phase,
    PhaseLatency,
    ProbeSample,
    format_added,
    latency_json,
    phase_json,
)
from netkit.core.throughput_models import ThroughputInterval
from netkit.core.units import format_bitrate, format_count, format_ms, format_percent
from netkit.render.tables import Col, fitted_table
from netkit.render.throughput import (
    BAR_WIDTH,
    ThroughputView,
    interval_event,
    jsonable,
    print_notes,
    summary_table,
)

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType
    from rich.text import Text

    from netkit.render.output import Output

CSV_FIELDS = ["phase", "start_s", "end_s", "bits_per_second", "probes", "lost", "loss_percent",
              "rtt_p50_ms", "rtt_p90_ms", "rtt_p99_ms", "added_p50_ms", "added_p90_ms",
              "send_bits_per_second", "recv_bits_per_second"]

PHASE_COLS = (
    Col("phase", drop=0),
    Col("throughput", "right", drop=0),
    Col("probes", "right", drop=3),
    Col("loss", "right", drop=2),
    Col("p50", "right", drop=0),
    Col("p90", "right", drop=1),
    Col("p99", "right", drop=1),
    Col("added", "right", drop=0),
)


def _rate_cell(p: PhaseLatency) -> str:
    if p.rate is None:
        return "-"
    r = p.rate
    if r.send_bits_per_second is not None and r.recv_bits_per_second is not None:
        # bidir: each direction is a throughput (up/down), their sum is not; one unit when they share it
        up, down = format_bitrate(r.send_bits_per_second), format_bitrate(r.recv_bits_per_second)
        if up.split(" ")[1] == down.split(" ")[1]:
            return f"{up.split(' ')[0]}/{down}"
        return f"{up}/{down}"
    return "-" if r.bits_per_second is None else format_bitrate(r.bits_per_second)


def phase_rows(latency: LoadedLatency) -> list[list[str]]:
    return [[str(p.phase), _rate_cell(p), format_count(p.probes), format_percent(p.loss_percent),
             format_ms(p.p50_ms), format_ms(p.p90_ms), format_ms(p.p99_ms),
             "-" if p.phase == Phase.IDLE else format_added(p.added_p50_ms)] for p in latency.phases]


def latency_table(target: str, latency: LoadedLatency, *, width: int | None) -> RenderableType:
    """The phases side by side, and the lines under them (the probes, the verdict)."""
    from rich.console import Group

    every = f"{latency.interval_s * 1000:g} ms"
    title = f"latency under load {target} ({latency.probe} every {every}"
    title += ", stopped early)" if latency.interrupted else ")"
    table = fitted_table(PHASE_COLS, phase_rows(latency), width=width, title=title)
    parts: list[RenderableType] = [table, *latency_notes(latency)]
    return Group(*parts)


def latency_notes(latency: LoadedLatency) -> list[Text]:
    from rich.text import Text

    load = latency.load
    share = "" if load.share_percent is None else f", {format_percent(load.share_percent)} of the measured rate"
    lines = [Text("added: loaded p50 minus idle p50 (the delay the load's queue adds)", style="dim")]
    if any(p.rate is not None and p.rate.send_bits_per_second is not None for p in latency.phases):
        lines.append(Text("bidir throughput: up/down", style="dim"))
    lines += [
             Text(f"probes: {latency.probe_detail}", style="dim"),
             Text(f"probe traffic: {format_bitrate(load.bits_per_second)}{share}", style="dim")]
    th = latency.thresholds
    if th.max_added_latency_ms is not None or not th.passed:
        lines.append(Text(f"thresholds: {'PASS' if th.passed else 'FAIL'}", style="green" if th.passed else "red bold"))
        lines += [Text(f"  {f}", style="red") for f in th.failed]
    return lines


def csv_rows(latency: LoadedLatency) -> list[dict[str, Any]]:
    rows = []
    for p in latency.phases:
        rows.append({"phase": str(p.phase), "start_s": p.start_s, "end_s": p.end_s,
                     "bits_per_second": None if p.rate is None else p.rate.bits_per_second,
                     "probes": p.probes, "lost": p.lost, "loss_percent": p.loss_percent,
                     "rtt_p50_ms": p.p50_ms, "rtt_p90_ms": p.p90_ms, "rtt_p99_ms": p.p99_ms,
                     "added_p50_ms": p.added_p50_ms, "added_p90_ms": p.added_p90_ms,
                     # bidir: each direction apart (their sum is not a throughput of either)
                     "send_bits_per_second": None if p.rate is None else p.rate.send_bits_per_second,
                     "recv_bits_per_second": None if p.rate is None else p.rate.recv_bits_per_second})
    return rows


def document(run: LoadedLatencyRun, *, intervals: bool = True) -> dict[str, Any]:
    """The JSON document: the throughput one (one phase) or each phase's, plus ``latency``."""
    lat = latency_json(run.latency)
    if len(run.throughput) == 1:
        return {**jsonable(run.throughput[0].result, intervals=intervals), "latency": lat}
    return {"target": run.target, "interrupted": run.interrupted,
            "phases": [{"phase": str(t.phase), **jsonable(t.result, intervals=intervals)} for t in run.throughput],
            "latency": lat}


class _PhaseView(ThroughputView):
    """The throughput view of one phase (for the idle one: the bar alone), with the probes' RTT
    above it on a terminal; its jsonl interval events name the phase (``start_s`` restarts at 0
    in every phase)."""

    def __init__(self, out: Output, total_s: float, multi: bool, phase: Phase, probes: RecentRtt) -> None:
        super().__init__(out, total_s, multi)
        self.phase = phase
        self.probes = probes

    def draw(self, width: int | None = None, height: int | None = None) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        rtt = Text(f"{self.phase}: {self.probes.line()}")
        if self.phase != Phase.IDLE:
            return Group(rtt, super().draw(width, None if height is None else height - 1))
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=max(self.total_s, 1e-9), completed=min(self.elapsed, self.total_s),
                                width=BAR_WIDTH), Text(f"{self.elapsed:5.1f}/{self.total_s:.1f} s"))
        return Group(rtt, bar)

    def interval(self, row: ThroughputInterval) -> None:
        if self.out.format != "jsonl":
            super().interval(row)
            return
        self.rows.append(row)
        self.elapsed = max(self.elapsed, row.end_s)
        self.out.jsonl({**interval_event(row), "phase": str(self.phase)})


class RecentRtt:
    """The last probes' RTTs for the live view (appended from the probe thread), and the idle p50."""

    def __init__(self, keep: int = 20) -> None:
        self.recent: deque[int | None] = deque(maxlen=keep)
        self.idle: deque[int] = deque(maxlen=10_000)
        self.idle_p50_ms: float | None = None
        self.in_idle = False

    def add(self, sample: ProbeSample) -> None:
        self.recent.append(sample.rtt_ns)
        if self.in_idle and sample.rtt_ns is not None:
            self.idle.append(sample.rtt_ns)

    def end_idle(self) -> None:
        self.in_idle = False
        if self.idle:
            self.idle_p50_ms = sorted(self.idle)[len(self.idle) // 2] / 1e6

    def line(self) -> str:
        recent = list(self.recent)
        got = [r for r in recent if r is not None]
        lost = len(recent) - len(got)
        if not got:
            return f"{lost} probes lost" if lost else "waiting for the probes"
        now = sorted(got)[len(got) // 2] / 1e6
        text = f"RTT p50 {format_ms(now)} (last {len(recent)} probes" + (f", {lost} lost)" if lost else ")")
        if self.idle_p50_ms is not None and not self.in_idle:
            text += f", added {format_added(now - self.idle_p50_ms)}"
        return text


class PhaseViews:
    """Gives each loaded phase its throughput view (``measure_loaded_latency``'s ``view``)."""

    def __init__(self, out: Output, phase_s: float, idle_s: float, multi_stream: bool, several: bool) -> None:
        self.out = out
        self.phase_s = phase_s
        self.idle_s = idle_s
        self.multi_stream = multi_stream
        self.several = several
        self.streamed = False
        #: the probes' recent RTTs: hand ``probes.add`` to the measurement as its ``on_sample``
        self.probes = RecentRtt()

    @contextlib.contextmanager
    def __call__(self, phase: Phase) -> Iterator[_PhaseView]:
        idle = phase == Phase.IDLE
        view = _PhaseView(self.out, self.idle_s if idle else self.phase_s,
                          self.multi_stream or phase == Phase.BIDIR, phase, self.probes)
        self.probes.in_idle = idle
        if view.stream_lines and self.several and not idle:
            self.out.line(f"[{phase}]")  # interval lines of several phases: say whose they are
        try:
            with view:
                yield view
        finally:
            if idle:
                self.probes.end_idle()
        self.streamed = self.streamed or (view.streamed and not idle)


def emit_run(out: Output, run: LoadedLatencyRun, *, streamed: bool) -> None:
    """The final result in the chosen format (``streamed``: the interval lines already went out)."""
    for t in run.throughput:
        print_notes(out, t.result)
    for w in run.warnings:
        out.warn(w)
    if out.format == "json":
        out.json(document(run))
    elif out.format == "jsonl":
        for p in run.latency.phases:
            out.jsonl({"event": "phase", **phase_json(p)})
        out.jsonl({"event": "summary", **document(run, intervals=False)})
    elif out.format == "csv":
        out.csv_rows(csv_rows(run.latency), fields=CSV_FIELDS)
    else:
        several = len(run.throughput) > 1
        for t in run.throughput:
            if several:
                out.print(f"{t.phase}:")
            if not streamed:
                from netkit.render.throughput import intervals_table

                out.print(intervals_table(t.result.intervals, width=out.width))
            out.print(summary_table(t.result, width=out.width))
        out.print(latency_table(run.target, run.latency, width=out.width))
    if not out.table_on_screen:
        for t in run.throughput:
            for f in t.result.thresholds.failed:
                out.info(f"netkit: check failed: {t.phase}: {f}")
        for f in run.latency.thresholds.failed:
            out.info(f"netkit: check failed: {f}")
