"""``netkit mesh matrix``: the loss and RTT matrix for people, the pairs for scripts.

For people, rows are sources and columns targets, each cell the pair's loss and mean RTT on two
lines. A mesh too wide for the screen (80 columns off a terminal, so a piped table reads the
same) is shown as one row per pair instead, worst first: a person looking at a large mesh wants
the bad pairs, and a table that wraps is unreadable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.core.mesh_matrix import RECORD_FIELDS, MeshMatrix, MeshPair, pair_records, pair_state, worst_first
from netkit.core.units import format_count, format_duration, format_ms, format_percent
from netkit.render.tables import Col, cell, fitted_table

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

    from netkit.render.output import Output

#: Off a terminal the matrix must fit this many columns, as on the narrowest terminal people use.
PLAIN_WIDTH = 80
_GAP = 2


def matrix_title(matrix: MeshMatrix) -> str:
    over = (f"over the last {format_duration(matrix.window_s)} (Prometheus)" if matrix.window_s is not None
            else "since each monitor started (/metrics)")
    return f"mesh {matrix.mesh}, {matrix.method} probes: loss and mean RTT {over}"


def _loss_style(pct: float | None) -> str:
    if pct is None or pct == 0:
        return ""
    return "red" if pct >= 100 else "yellow"


def _pair_cell(pair: MeshPair | None) -> Text:
    from rich.text import Text

    if pair is None:
        return Text("-", style="dim")
    if pair.reachable is False and not pair.sent:
        return Text("down", style="red")
    text = Text(format_percent(pair.loss_pct), style=_loss_style(pair.loss_pct))
    text.append("\n" + format_ms(pair.rtt_mean_ms))
    return text


def _cell_width(text: Text) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.plain.splitlines()), default=0)


def matrix_table(matrix: MeshMatrix) -> tuple[Table, int]:
    """Rows sources, columns targets; the table and the width it needs."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    hosts = matrix.hosts
    rows: list[list[Text]] = []
    for source in hosts:
        row = [cell(source)]
        for target in hosts:
            row.append(Text("·", style="dim") if source == target else _pair_cell(matrix.pair(source, target)))
        rows.append(row)
    heads = ["source \\ target", *hosts]
    widths = [max([_cell_width(cell(h))] + [_cell_width(r[i]) for r in rows]) for i, h in enumerate(heads)]
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", show_edge=False, pad_edge=False, padding=(0, 1),
                  collapse_padding=True)
    for i, head in enumerate(heads):
        table.add_column(head, justify="left" if i == 0 else "right", no_wrap=True)
    for n, row in enumerate(rows):
        table.add_row(*row, end_section=n < len(rows) - 1)
    return table, sum(widths) + _GAP * (len(widths) - 1)


PAIR_COLS = (
    Col("source"),
    Col("target"),
    Col("loss", "right"),
    Col("lost", "right", drop=2),
    Col("sent", "right", drop=2),
    Col("RTT mean", "right"),
)


def pairs_table(matrix: MeshMatrix, width: int | None) -> Table:
    """One row per pair, worst first."""
    rows = []
    for p in worst_first(matrix.pairs):
        state = pair_state(p)
        rows.append([cell(p.source), cell(p.target),
                     cell(state, style="red" if state == "unreachable" else _loss_style(p.loss_pct)),
                     cell(format_count(p.lost)), cell(format_count(p.sent)), cell(format_ms(p.rtt_mean_ms))])
    return fitted_table(PAIR_COLS, rows, width=width)


def matrix_view(matrix: MeshMatrix, width: int | None) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    title = Text(matrix_title(matrix), style="bold")
    if not matrix.pairs:
        return Group(title, Text("no pairs measured yet", style="dim"))
    table, needed = matrix_table(matrix)
    if needed <= (width or PLAIN_WIDTH):
        note = Text("rows: source, columns: target; cell: loss (down: no answer), mean RTT", style="dim")
        return Group(title, note, table)
    note = Text(f"{len(matrix.hosts)} hosts: too wide for a matrix, one row per pair, worst first", style="dim")
    return Group(title, note, pairs_table(matrix, width))


def print_matrix(out: Output, matrix: MeshMatrix) -> None:
    records = pair_records(matrix)
    out.emit(records, table=lambda: matrix_view(matrix, out.width), rows=records, fields=RECORD_FIELDS)
