"""What ``netkit monitor`` shows: per-round output by format, the live dashboard, the final totals.

The dashboard is drawn by :class:`netkit.render.live.LiveScreen` on stderr (transient: after Ctrl-C
the final screen is the totals table alone, printed once). It must stay readable at 70 columns:
the target's name, its state and the headline figures (RTT, loss) are never cut; the sparkline
goes first, then the method is abbreviated (``tcp`` for ``tcp-connect``), then the up count and
the method are dropped; an error folds onto more lines instead of being cut, and when a name
leaves no room for even a narrow error column the errors are written under the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netkit.core.escape import safe_text
from netkit.core.monitor_models import (
    GroupRound,
    MonitorMethod,
    MonitorOutcome,
    MonitorState,
    TargetRound,
    round_record,
)
from netkit.core.units import format_count, format_ms, format_ns_as_ms, format_percent
from netkit.render.tables import FOLD_MIN, Col, cell, fit_columns, fitted_table, sparkline, state_cell

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Group, RenderableType
    from rich.table import Table
    from rich.text import Text

    from netkit.render.output import Output

CSV_FIELDS = ("time", "round", "target", "method", "address", "success", "state", "attempts", "duration_s", "sent",
              "received", "lost", "loss_pct", "rtt_ms.min", "rtt_ms.avg", "rtt_ms.max", "rtt_ms.last", "error")
#: Short method names for a narrow dashboard.
SHORT_METHOD = {MonitorMethod.TCP_CONNECT: "tcp"}
#: The most RTTs the sparkline shows (the newest at the right).
MAX_POINTS = 40
_GAP = 2  # characters between two columns of a fitted table (render.tables draws them so)


def dashboard_on(out: Output) -> bool:
    """The live view runs when stderr is a terminal, unless per-round lines (jsonl, csv) go to
    that same terminal on stdout, where the two would overwrite each other."""
    return out.live_ok and not (out.format in ("jsonl", "csv") and out.stdout_is_tty)


# ----- per round, on stdout ----------------------------------------------------------------------
def round_line(r: TargetRound) -> str:
    """A plain line per target per round (a pipe or a file with the default format)."""
    rtt = f" rtt={r.rtts_ns[-1] / 1e6:.3f}ms" if r.rtts_ns else ""
    loss = f" loss={r.lost}/{r.sent}" if r.sent else ""
    err = f" ({r.error})" if r.error else ""
    hops = f" hops={r.hop_count}" if r.hop_count is not None else ""
    return safe_text(f"{r.target} {r.method.value} {r.state.value}{rtt}{loss}{hops} attempts={r.attempts}{err}")


class RoundPrinter:
    """What each round writes to stdout, by format (the dashboard is separate, on stderr)."""

    def __init__(self, out: Output) -> None:
        self.out = out

    def on_round(self, gr: GroupRound) -> None:
        from netkit.render.output import flatten

        out = self.out
        if out.format == "jsonl":
            out.jsonl(round_record(gr.round, gr.time_iso, gr.interval_s, gr.results))
        elif out.format == "csv":
            out.csv_rows([flatten({"time": gr.time_iso, "round": gr.round, **r.to_json()}) for r in gr.results],
                         CSV_FIELDS)
        elif out.format == "table" and not (dashboard_on(out) and out.stdout_is_tty):
            for r in gr.results:
                out.line(f"{gr.time_iso} {round_line(r)}")


# ----- the live dashboard ------------------------------------------------------------------------
@dataclass(frozen=True)
class DashboardRow:
    """One target's line of the dashboard, copied out of the state under its lock."""

    name: str
    method: MonitorMethod
    last: TargetRound | None
    loss_pct: float | None
    up_rounds: int
    window_rounds: int
    rtts_ns: tuple[int, ...]


def dashboard_rows(state: MonitorState) -> list[DashboardRow]:
    """The rows to draw, in config order (take the monitor's lock around this)."""
    rows = []
    for t in state.config.targets:
        win = state.windows.get(t.key)
        if win is None:
            continue
        rows.append(DashboardRow(t.name, t.method, win.last, win.loss_pct, win.up_rounds, len(win.rounds),
                                 tuple(win.rtts_ns)))
    return rows


DASHBOARD_COLS = (
    Col("target"),
    Col("method", drop=2),
    Col("state"),
    Col("rtt", "right"),
    Col("loss", "right"),
    Col("up", "right", drop=3),
    Col("error", fold=True),
)
SPARK_COL = Col("recent RTTs")


def _dashboard_cells(rows: Sequence[DashboardRow], *, short: bool) -> list[list[Text]]:
    out = []
    for r in rows:
        last = r.last
        out.append([
            cell(r.name), cell(SHORT_METHOD.get(r.method, r.method.value) if short else r.method.value),
            state_cell(last.state.value if last else "-"),
            cell(format_ns_as_ms(last.rtts_ns[-1]) if last and last.rtts_ns else None),
            cell(None if r.loss_pct is None else format_percent(r.loss_pct)), cell(f"{r.up_rounds}/{r.window_rounds}"),
            cell(last.error if last and last.error else None, style="yellow"),
        ])
    return out


def _needed(cols: Sequence[Col], cells: Sequence[Sequence[Text]], keep: Sequence[int], *, folded: bool) -> int:
    """Columns ``keep`` side by side: at their natural widths, or with ``folded`` the free-text
    columns at the narrowest they read well (``FOLD_MIN``)."""
    from rich.cells import cell_len

    widths = []
    for i in keep:
        natural = max([cell_len(cols[i].name)] + [cell_len(r[i].plain) for r in cells])
        widths.append(min(natural, FOLD_MIN) if folded and cols[i].fold else natural)
    return sum(widths) + _GAP * (len(widths) - 1)


@dataclass(frozen=True)
class DashboardView:
    """The dashboard as drawn for one width: the table, and the errors written under it when even
    the narrowest error column would not fit beside the names (very long target names)."""

    table: Table
    notes: tuple[str, ...] = ()


def dashboard_view(rows: Sequence[DashboardRow], *, window: int, width: int | None) -> DashboardView:
    """The dashboard for ``width`` columns (None: as wide as it needs, every column)."""
    title = f"netkit monitor (loss % and up over the last {window} rounds)"
    cols = list(DASHBOARD_COLS)
    cells = _dashboard_cells(rows, short=False)
    keep = fit_columns(cols, cells, width)
    if len(keep) < len(cols):  # something would give way: first write the method short
        cells = _dashboard_cells(rows, short=True)
        keep = fit_columns(cols, cells, width)
    error = cols.index(DASHBOARD_COLS[-1])
    notes: tuple[str, ...] = ()
    if width is not None and _needed(cols, cells, keep, folded=True) > width:
        # Not even a narrow error column fits beside the names: the errors go under the table.
        keep = [i for i in keep if i != error]
        notes = tuple(safe_text(f"{r.name}: {r.last.error}") for r in rows if r.last and r.last.error)
    # The sparkline takes what is left once every other column, the error included, is whole:
    # the newest RTTs that fit, up to MAX_POINTS (cut by the table it would show the oldest).
    room = MAX_POINTS if width is None else width - _needed(cols, cells, keep, folded=False) - _GAP
    if len(keep) == len(cols) and room >= max(len(SPARK_COL.name), 6):
        points = min(MAX_POINTS, room)
        cols.insert(error, SPARK_COL)
        for r, c in zip(rows, cells, strict=True):
            c.insert(error, cell(sparkline(list(r.rtts_ns)[-points:]), style="cyan"))
        keep = list(range(len(cols)))
    shown = [cols[i] for i in keep]
    return DashboardView(fitted_table(shown, [[c[i] for i in keep] for c in cells], width=width, title=title), notes)


def dashboard_table(rows: Sequence[DashboardRow], *, window: int, width: int | None) -> Table:
    """The dashboard's table alone (see :func:`dashboard_view`)."""
    return dashboard_view(rows, window=window, width=width).table


def monitor_dashboard(state: MonitorState, lock: AbstractContextManager[Any], width: int | None) -> Group:
    """Draw the dashboard from the live state (copied under ``lock``, drawn outside it)."""
    from rich.text import Text

    with lock:
        rows = dashboard_rows(state)
        window = state.config.window
    view = dashboard_view(rows, window=window, width=width)
    return live_frame(view.table, *(Text(n, style="yellow") for n in view.notes))


def live_frame(*parts: RenderableType) -> Group:
    """A live view (a table, and any lines under it) with an empty last line.

    The terminal echoes Ctrl-C as ``^C`` where the cursor is: at the end of a full-width last row it
    would wrap onto a new line, and erasing the transient view would then leave its first line (the
    title) on screen. On an empty line the echo stays within the view, which is erased whole.
    """
    from rich.console import Group
    from rich.text import Text

    return Group(*parts, Text(""))


# ----- the totals when stopped -------------------------------------------------------------------
SUMMARY_COLS = (
    Col("target"),
    Col("method", drop=2),
    Col("rounds", "right", drop=3),
    Col("up", "right", drop=3),
    Col("last"),
    Col("sent", "right", drop=4),
    Col("lost", "right", drop=4),
    Col("loss", "right"),
    Col("avg rtt", "right"),
)


def summary_table(targets: Sequence[dict[str, Any]], *, width: int | None) -> Table:
    rows = []
    for rec in targets:
        last = "-" if rec["success"] is None else ("ok" if rec["success"] else "fail")
        rows.append((rec["target"], rec["method"], format_count(rec["rounds"]), format_count(rec["up_rounds"]),
                     state_cell(last), format_count(rec["sent"]), format_count(rec["lost"]),
                     format_percent(rec["loss_pct"]), format_ms(rec["rtt_avg_ms"])))
    return fitted_table(SUMMARY_COLS, rows, width=width, title="netkit monitor: totals since start")


def emit_outcome(out: Output, outcome: MonitorOutcome) -> None:
    """When stopped: one row per target with its totals (json: the document; jsonl: one line)."""
    if out.format == "json":
        out.json({"targets": outcome.targets})
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", "targets": outcome.targets})
    elif out.format == "table":
        out.print(summary_table(outcome.targets, width=out.width))


def textfile_name_warning(path: str) -> str | None:
    """node_exporter reads only ``*.prom`` files: say so for any other name."""
    if path.endswith(".prom"):
        return None
    return f"{path}: node_exporter's textfile collector reads only files named *.prom"

