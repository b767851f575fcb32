"""``netkit probe`` on the screen and in files: the result table, the TLS table, the summary line,
the progress while it runs, and the records streamed as targets finish.

- :func:`render_probe` prints a finished :class:`ProbeRunResult` as tables (``--format table``).
- :class:`ProbeReport` is the run's :class:`~netkit.core.probe_models.ProbeListener`: it streams
  jsonl lines as targets finish, writes json/csv a batch at a time, shows the progress (a live line
  on a terminal, plain lines off one for ``--wait`` and ``--repeat``), and prints the result at the end.

Tables fit the width they are given: the target, the state, the connect time and the error never
drop, and nothing is cut with an ellipsis (an error wraps in its column).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from netkit.core.escape import safe_text
from netkit.core.probe_models import (
    REPEAT_FIELDS,
    RESULT_FIELDS,
    TLS_FIELDS,
    ProbeAttempt,
    ProbeResult,
    ProbeRunConfig,
    ProbeRunResult,
    ProbeState,
    RepeatedResult,
)
from netkit.core.targets import Target, is_ip_literal
from netkit.core.units import format_count, format_ms, format_percent
from netkit.render.live import LiveScreen, ScreenView
from netkit.render.output import Output, StreamedJsonDocument, to_jsonable
from netkit.render.tables import FOLD_MIN, Col, fit_columns, fitted_table, state_cell

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType
    from rich.table import Table

#: Above this many rows the table is plain aligned text: Rich needs ~0.5 ms a row.
PLAIN_TABLE_ROWS = 2000
#: Characters the error column should have on a terminal before it wraps ("connection refused" is 18).
ERROR_ROOM = 24
#: The live line stays blank this long, so a quick run does not flash a line on the terminal.
LIVE_AFTER_S = 0.25


# ----- the result table ----------------------------------------------------------------------------
def _table_columns(rows: Sequence[ProbeResult], repeated: bool, *,
                   terse: bool, udp: bool = False) -> tuple[list[Col], bool, bool]:
    """The columns (dropped first when narrow: resolve, attempts, address, total), and whether the
    resolve and address columns show. ``terse`` (a terminal): no address column when every address
    is its target's own IP literal, so the error has the room instead. ``udp``: nothing connects,
    the time is the reply's (``connect_ms`` in json/csv)."""
    show_resolve = any(not is_ip_literal(r.host) for r in rows)
    show_address = not terse or any(r.address not in (None, r.host) for r in rows)
    cols = [Col("target")]
    if show_address:
        cols.append(Col("address", drop=3))
    cols += [Col("state"), Col("attempts", "right", drop=4), Col("reply" if udp else "connect", "right")]
    if show_resolve:
        cols.append(Col("resolve", "right", drop=5))
    cols.append(Col("total", "right", drop=2))
    if repeated:
        cols += [Col("ok/rounds", "right"), Col("success", "right", drop=1)]
    cols.append(Col("error", fold=True))
    return cols, show_resolve, show_address


def _row_texts(r: ProbeResult, show_resolve: bool, show_address: bool,
               a: RepeatedResult | None) -> list[str | None]:
    """One row's cells as text (None shows as '-'); figures carry their unit."""
    vals: list[str | None] = [r.target, r.address] if show_address else [r.target]
    vals += [r.state.value, str(r.attempts), format_ms(r.connect_ms)]
    if show_resolve:
        vals.append(format_ms(r.resolve_ms))
    vals.append(format_ms(r.elapsed_ms))
    if a is not None:
        vals += [f"{a.opens}/{a.rounds}",
                 format_percent(None if a.success_rate is None else a.success_rate * 100)]
    vals.append(r.error)
    return vals


def probe_table(rows: Sequence[ProbeResult], repeated: Sequence[RepeatedResult] | None, *,
                width: int | None, udp: bool = False) -> RenderableType:
    """The result table: a fitted Rich table for a screenful, plain aligned text for a large scan."""
    cols, show_resolve, show_address = _table_columns(rows, repeated is not None, terse=width is not None,
                                                      udp=udp)
    data = [_row_texts(r, show_resolve, show_address, None if repeated is None else repeated[i])
            for i, r in enumerate(rows)]
    if len(data) > PLAIN_TABLE_ROWS:
        return _plain_table(cols, data, width)
    if width is not None:
        # The error is what a failed row is read for: columns give way until it has ERROR_ROOM
        # characters (the fitted table alone would stop at a narrower fold and wrap every error).
        longest = max((len(vals[-1] or "-") for vals in data), default=0)
        keep = fit_columns(cols, data, width - max(0, min(ERROR_ROOM, longest) - FOLD_MIN))
        cols = [cols[i] for i in keep]
        data = [[vals[i] for i in keep] for vals in data]
    state_at = [c.name for c in cols].index("state")
    cells = [[state_cell(v or "") if i == state_at else v for i, v in enumerate(vals)] for vals in data]
    return fitted_table(cols, cells, width=width)


def _plain_table(cols: list[Col], data: list[list[str | None]], width: int | None) -> str:
    """The same columns as plain aligned text, a row a line (thousands of rows in milliseconds)."""
    texts = [[("-" if v is None else safe_text(v)) for v in vals] for vals in data]
    keep = fit_columns(cols, texts, width)
    widths = {i: max(len(cols[i].name), *(len(row[i]) for row in texts)) for i in keep}

    def line(cells: list[str]) -> str:
        parts = [cells[i].rjust(widths[i]) if cols[i].justify == "right" else cells[i].ljust(widths[i])
                 for i in keep]
        return "  ".join(parts).rstrip()

    return "\n".join([line([c.name for c in cols]), *(line(row) for row in texts)])


def tls_table(rows: Sequence[ProbeResult], *, width: int | None) -> Table:
    """What each TLS handshake found: protocol, certificate, days left, verified."""
    cols = [Col("target"), Col("protocol"), Col("days left", "right"), Col("verified", drop=1),
            Col("cipher", drop=3), Col("subject", drop=2, fold=True), Col("issuer", drop=4, fold=True)]
    data = []
    for r in rows:
        t = r.tls
        if t is None:
            continue
        days = None if t.days_left is None else f"{t.days_left:.1f} d"
        data.append([r.target, t.protocol, days, "yes" if t.verified else "no", t.cipher, t.subject, t.issuer])
    return fitted_table(cols, data, width=width, title="TLS")


# ----- the summary line ----------------------------------------------------------------------------
def summary_line(result: ProbeRunResult) -> str:
    """``3 targets: 1 open, 2 failed``; with ``--repeat``, the rounds and the share of probes open.

    A silent UDP port (open|filtered: no reply, no refusal) counts as up for the exit status, but
    it is not called open: it is counted by its own name.
    """
    s = result.summary
    head = f"{format_count(s.total)} {'target' if s.total == 1 else 'targets'}"
    if result.rounds is not None:
        head += f", {result.rounds_done or 0}/{result.rounds} rounds"
    if result.interrupted:
        head += " (interrupted)"
    counts = [f"{format_count(s.open)} open"]
    if s.open_filtered:
        counts.append(f"{format_count(s.open_filtered)} open|filtered (no reply)")
    counts.append(f"{format_count(s.failed)} failed")
    line = f"{head}: {', '.join(counts)}"
    if result.rounds is not None and s.success_rate is not None:
        line += f"; success {format_percent(s.success_rate * 100)}"
    return line


def render_probe(out: Output, result: ProbeRunResult, config: ProbeRunConfig) -> None:
    """The finished run as tables and the summary line (``--format table``); with no row to show
    (``--only`` kept none), the summary alone."""
    if result.rows:
        out.print(probe_table(result.rows, result.repeated, width=out.width, udp=config.options.udp))
    if config.options.tls and any(r.tls is not None for r in result.rows):
        out.print(tls_table(result.rows, width=out.width))
    out.line(summary_line(result))


# ----- while it runs ---------------------------------------------------------------------------------
def _csv_fields(config: ProbeRunConfig) -> list[str]:
    fields = [f for f in RESULT_FIELDS if f != "tls"]
    fields += [f"tls.{f}" for f in TLS_FIELDS] if config.options.tls else ["tls"]
    if config.repeat is not None:
        fields += list(REPEAT_FIELDS)
    return fields


def _failure_words(target: Target | str, state: ProbeState, error: str | None) -> str:
    """``127.0.0.1:1 closed, connection refused``: one failure, said once, with no nested brackets."""
    return f"{target} {state.value}" + (f", {error}" if error else "")


class ProbeReport(ScreenView):
    """Reports one run as it goes and prints it at the end (see the module docstring).

    Use as ``with ProbeReport(out, config) as report: result = run(..., report)``, then
    ``report.finish(result)`` once the live line is gone.
    """

    def __init__(self, out: Output, config: ProbeRunConfig) -> None:
        self.out = out
        self.config = config
        self.fields = _csv_fields(config)
        self.csv_started = False
        self.document = (StreamedJsonDocument(out, "targets", "summary")
                         if out.format == "json" and config.streaming else None)
        # What the progress shows: written by the run (possibly from the scan thread) and read by the
        # live view's refresh thread, so both hold the lock.
        self._lock = threading.Lock()
        self.total: int | None = None
        self.done = 0
        self.up = 0
        self.round_no = 1
        self.passes = 0
        self.attempts: dict[str, int] = {}
        self.up_targets: set[str] = set()
        self.failures: dict[str, str] = {}  # the latest failure of each target not (yet) up
        self.started_at = time.monotonic()
        self._printed = ""
        self.watched = False  # a live line was shown: the progress needs no log lines, not even at the end
        # A live line only where a person watches and nothing else is being written to the same screen.
        self.screen = LiveScreen(out, self._draw) if out.format == "table" or not out.stdout_is_tty else None

    # ----- the live screen ---------------------------------------------------------------------------
    def __enter__(self) -> ProbeReport:
        self.started_at = time.monotonic()
        super().__enter__()
        if self.screen is not None:
            self.watched = self.screen.active
        return self

    def progress_line(self, elapsed_s: float) -> str:
        """What the run is doing, in one line (two when a failed attempt is about to be retried)."""
        with self._lock:
            return self._progress_line(elapsed_s)

    def _progress_line(self, elapsed_s: float) -> str:
        total = "?" if self.total is None else format_count(self.total)
        clock = f"{elapsed_s:.1f} s"
        if self.config.wait:
            # The counts and the clock on the first line, the failure (free text of any length) under
            # them: on one line it pushed the clock past the edge, to wrap between "20" and "s".
            waiting = (self.total or 0) - len(self.up_targets)
            text = f"waiting: {len(self.up_targets)}/{total} up"
            if waiting and self.failures:
                text += f", {waiting} not yet"
            text += f" [{clock} of {self.config.options.deadline_s:g} s]"
            if waiting and self.failures:
                text += f"\nnot up yet: {next(iter(self.failures.values()))}"
            return text
        head = f"round {self.round_no}/{self.config.repeat}: " if self.config.repeat is not None else "probing: "
        of = "" if self.total is None else f"/{total}"  # a streaming run does not know its total
        text = f"{head}{format_count(self.done)}{of} done, {format_count(self.up)} up [{clock}]"
        retries = self.config.options.retries
        pending = [k for k in self.failures if k in self.attempts]
        if retries and pending:
            key = pending[-1]
            text += (f"\nattempt {self.attempts[key]} of {retries + 1} failed: {self.failures[key]}"
                     + ("; retrying" if self.attempts[key] <= retries else ""))
        return text

    def _draw(self) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        elapsed = time.monotonic() - self.started_at
        if elapsed < LIVE_AFTER_S:
            return Group()  # nothing at all: not even an empty line to erase
        lines = self.progress_line(elapsed).split("\n")
        return Text("\n".join(safe_text(line) for line in lines), no_wrap=False, overflow="fold")

    def _log_progress(self) -> None:
        """``--wait`` off a terminal: one line on stderr whenever the state changes."""
        if self.watched or self.out.quiet or not self.config.wait:
            return
        head, _, failure = self.progress_line(time.monotonic() - self.started_at).partition("\n")
        counts, _, clock = head.rpartition(" [")
        # A log line, not a screen: the failure on the line it belongs to, the clock at the end.
        core = counts + (f"; {failure.removeprefix('not up yet: ')}" if failure else "")
        if core != self._printed:
            self._printed = core
            self.out.info(safe_text(f"{core} [{clock}", limit=200))

    # ----- the ProbeListener protocol ----------------------------------------------------------------
    def started(self, total: int | None) -> None:
        with self._lock:
            self.passes += 1
            self.round_no = self.passes
            self.total, self.done, self.up = total, 0, 0
            self.attempts.clear()

    def attempted(self, target: Target, attempts: int, attempt: ProbeAttempt) -> None:
        key = str(target)
        with self._lock:
            self.attempts[key] = attempts
            if attempt.state.ok:
                self.up_targets.add(key)
                self.failures.pop(key, None)
            else:
                self.failures[key] = _failure_words(key, attempt.state, attempt.error)
        self._log_progress()

    def result(self, index: int, result: ProbeResult, round_no: int | None,
               repeated: RepeatedResult | None) -> None:
        with self._lock:
            self.done += 1
            self.up += result.ok
            self.attempts.pop(result.target, None)
            if not self.config.wait:
                self.failures.pop(result.target, None)
        if self.out.format == "jsonl" and self.config.shows(result.ok):
            record = result.record() if repeated is None else {"round": round_no, **repeated.record()}
            self.out.jsonl(record)

    def batch(self, results: Sequence[ProbeResult]) -> None:
        shown = [r.record() for r in results if self.config.shows(r.ok)]
        if self.document is not None:
            self.document.add(shown)
        elif self.out.format == "csv" and shown:
            self.out.csv_rows(shown, self.fields)
            self.csv_started = True

    def round_ended(self, round_no: int, up: int, total: int) -> None:
        if not self.watched and not self.out.machine:
            self.out.info(f"round {round_no}/{self.config.repeat}: {up}/{total} up")

    # ----- the end -----------------------------------------------------------------------------------
    def finish(self, result: ProbeRunResult) -> None:
        """Print the finished run in the chosen format (what was not streamed already)."""
        out = self.out
        if out.format == "jsonl":
            return
        if out.format == "table":
            if not out.quiet:
                render_probe(out, result, self.config)
            return
        if self.config.streaming:
            if self.document is not None:
                self.document.finish(result.summary)
            elif not self.csv_started and not out.quiet:
                out.stdout.write(",".join(self.fields) + "\n")
            return
        records = ([a.record() for a in result.repeated] if result.repeated is not None
                   else [r.record() for r in result.rows])
        if out.format == "json":
            out.json({"targets": records, "summary": to_jsonable(result.summary)})
        elif records:
            out.csv_rows(records, self.fields)
        elif not out.quiet:
            out.stdout.write(",".join(self.fields) + "\n")

