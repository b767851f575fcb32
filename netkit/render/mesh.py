"""``netkit mesh matrix``: the loss and RTT matrix for people, the pairs for scripts.

For people, rows are sources and columns targets, each cell the pair's loss and mean RTT on two
lines. A mesh too wide for the screen (80 columns off a terminal, so a piped table reads the
same) is shown as one row per pair instead, worst first: a person looking at a large mesh wants
the bad pairs, and a table that wraps is unreadable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.core.escape import safe_text
from netkit.core.mesh_matrix import RECORD_FIELDS, MeshMatrix, MeshPair, pair_records, pair_state, worst_first
from netkit.core.units import format_count, format_duration, format_ms, format_percent
from netkit.render.tables import Col, cell, fit_columns

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
    by_pair = {(p.source, p.target): p for p in matrix.pairs}
    rows: list[list[Text]] = []
    for source in hosts:
        row = [cell(source)]
        for target in hosts:
            row.append(Text("·", style="dim") if source == target else _pair_cell(by_pair.get((source, target))))
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


def pair_rows(matrix: MeshMatrix) -> list[list[str]]:
    """One row of cells per pair, worst first (plain text: names and figures with their units)."""
    return [[safe_text(p.source), safe_text(p.target), pair_state(p), format_count(p.lost), format_count(p.sent),
             format_ms(p.rtt_mean_ms)] for p in worst_first(matrix.pairs)]


def pairs_text(matrix: MeshMatrix, width: int | None) -> str:
    """One aligned line per pair, worst first, with the columns that fit ``width``.

    Plain lines, not a Rich table: a mesh of 300 hosts has 89,700 pairs, which Rich takes about a
    minute to lay out and this a fraction of a second.
    """
    from rich.cells import cell_len

    rows = pair_rows(matrix)
    keep = fit_columns(PAIR_COLS, rows, width)
    widths = {i: max([len(PAIR_COLS[i].name)] + [cell_len(r[i]) for r in rows]) for i in keep}

    def line(values: list[str]) -> str:
        parts = []
        for i in keep:
            pad = " " * (widths[i] - cell_len(values[i]))  # by cells: a wide character takes two
            parts.append(pad + values[i] if PAIR_COLS[i].justify == "right" else values[i] + pad)
        return "  ".join(parts).rstrip()

    header = line([c.name for c in PAIR_COLS])
    return "\n".join([header, *(line(r) for r in rows)])


def matrix_view(matrix: MeshMatrix, width: int | None) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    title = Text(matrix_title(matrix), style="bold")
    if not matrix.pairs:
        return Group(title, Text("no pairs measured yet", style="dim"))
    if fits_as_matrix(matrix, width):
        table, _ = matrix_table(matrix)
        note = Text("rows: source, columns: target; cell: loss (down: no answer), mean RTT", style="dim")
        return Group(title, note, table)
    note = Text(f"{len(matrix.hosts)} hosts: too wide for a matrix, one row per pair, worst first", style="dim")
    return Group(title, note)


def fits_as_matrix(matrix: MeshMatrix, width: int | None) -> bool:
    screen = width or PLAIN_WIDTH
    # Every column holds at least "0.0 %" and its gap: a mesh past that is not laid out to be measured.
    return bool(matrix.pairs) and len(matrix.hosts) * 7 <= screen and matrix_table(matrix)[1] <= screen


def print_matrix(out: Output, matrix: MeshMatrix) -> None:
    records = pair_records(matrix)
    if out.format != "table" or not matrix.pairs or fits_as_matrix(matrix, out.width):
        out.emit(records, table=lambda: matrix_view(matrix, out.width), rows=records, fields=RECORD_FIELDS)
        return
    out.print(matrix_view(matrix, out.width))
    out.line(pairs_text(matrix, out.width))
