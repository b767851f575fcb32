"""What ``netkit measure dns`` shows: one row per server and name (a resolver benchmark's table).

The answer column is the distinct answer data seen (peer bytes: through ``safe_text``, never
markup), folded within its column; the server, name, rcode and the RTT p50 stay whole. Below the
table: truncated answers retried over TCP, stray datagrams ignored, the last error, and the checks.
jsonl streams one ``query`` object per query, then the summary; csv has one line per row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.core.dns_result import DnsQuery, DnsResult, DnsRow
from netkit.core.escape import safe_text
from netkit.core.units import format_count, format_ms, format_percent
from netkit.render.live import ScreenView
from netkit.render.tables import Col, cell, fit_columns, fitted_table

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType

    from netkit.render.output import Output

#: Server/name rows the live view keeps on screen (the last ones asked).
LIVE_ROWS = 20
#: Characters of answer text shown per row in the table (json keeps every kept answer).
ANSWER_CHARS = 120

#: On a narrow terminal, sent, p90 and p99 go first; then the answer and the rcode leave the table
#: for lines of their own below it (``name @server: RCODE answers``): the server, the name, the
#: p50 and the loss always stay, and whole.
COLUMNS = (Col("server"), Col("name"), Col("answer", fold=True, drop=3), Col("rcode", drop=2), Col("p50", "right"),
           Col("p90", "right", drop=5), Col("p99", "right", drop=4), Col("loss", "right"),
           Col("sent", "right", drop=6))
ANSWER_COL = 2


def _answer_cell(row: DnsRow) -> str:
    if not row.answers:
        return "-"
    text = ", ".join(safe_text(a) for a in row.answers)
    if len(text) <= ANSWER_CHARS:
        return text
    # Cut with the count of what is left out, not an ellipsis: json has every answer whole.
    return f"{text[:ANSWER_CHARS]} (+{format_count(len(text) - ANSWER_CHARS)} chars)"


def _row_cells(row: DnsRow) -> list[str]:
    return [safe_text(row.server), safe_text(row.name), _answer_cell(row), row.rcode or "-",
            format_ms(row.rtt_ms.get("p50")), format_ms(row.rtt_ms.get("p90")), format_ms(row.rtt_ms.get("p99")),
            format_percent(row.loss_pct), format_count(row.sent)]


def dns_summary(result: DnsResult, *, width: int | None = None) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    title = f"measure dns {result.qtype} over {result.transport}" + (" (stopped early)" if result.interrupted else "")
    rows = [_row_cells(r) for r in result.rows]
    parts: list[RenderableType] = [fitted_table(COLUMNS, rows, width=width, title=title)]
    notes: list[str] = []
    if ANSWER_COL not in fit_columns(COLUMNS, [[cell(v) for v in row] for row in rows], width):
        for r, cells in zip(result.rows, rows, strict=True):
            parts.append(cell(f"{safe_text(r.name)} @{r.server}: {r.rcode or '-'} {cells[ANSWER_COL]}"))
    for r in result.rows:
        if r.truncated:
            notes.append(f"{safe_text(r.name)} @{r.server}: {format_count(r.truncated)} truncated UDP "
                         "answers, asked again over TCP")
    ignored = {k: v for k, v in result.ignored.items() if v}
    if ignored:
        notes.append("ignored replies: " + ", ".join(f"{k.replace('_', ' ')} {format_count(v)}"
                                                     for k, v in ignored.items()))
    for r in result.rows:
        if r.last_error and r.answered:  # with no answer at all, the failed check below says it
            notes.append(f"{safe_text(r.name)} @{r.server}: last error: {safe_text(r.last_error)}")
    for n in notes:
        parts.append(cell(n, style="yellow"))
    ch = result.checks
    if ch.failed or ch.expect is not None or ch.max_rtt_ms is not None:
        parts.append(Text(f"checks: {'PASS' if ch.passed else 'FAIL'}", style="green" if ch.passed else "red bold"))
        for f in ch.failed:
            parts.append(cell(f"  {safe_text(f)}", style="red"))
    return Group(*parts)


def query_line(q: DnsQuery) -> str:
    """A plain line per query (``-v`` on stderr): the server, the name, the outcome."""
    if q.answered:
        rtt = format_ms(None if q.rtt_ns is None else q.rtt_ns / 1e6)
        extra = " (truncated, retried over tcp)" if q.truncated else ""
        return (f"#{q.seq} {q.server} {safe_text(q.name)} {q.rcode} {format_count(q.answer_count)} answers "
                f"{rtt}{extra}")
    return f"#{q.seq} {q.server} {safe_text(q.name)} {q.outcome}: {safe_text(q.error or '')}"


LIVE_COLUMNS = (Col("server"), Col("name"), Col("sent", "right"), Col("lost", "right"), Col("last", "right"),
                Col("rcode", drop=1))


class DnsSink(ScreenView):
    """Where queries go as they end: jsonl events on stdout, ``-v`` lines on stderr, or (a table run
    watched on a terminal) a live table of the queries so far, erased when the run ends.

    ``with DnsSink(out) as sink: measure_dns(cfg, sink=sink.add)``.
    """

    def __init__(self, out: Output) -> None:
        self.out = out
        self.rows: dict[tuple[str, str], list[str | int]] = {}
        if out.format == "table" and out.live_ok and not out.verbose:
            from netkit.render.live import LiveScreen

            self.screen = LiveScreen(out, self._draw, refresh_per_second=4)

    def _draw(self) -> RenderableType:
        return self.live_table(self.screen.width if self.screen is not None else None)

    def live_table(self, width: int | None) -> RenderableType:
        """The last :data:`LIVE_ROWS` server/name rows: queries sent and lost, the last RTT and rcode."""
        cells = [[safe_text(server), safe_text(name), format_count(int(r[0])), format_count(int(r[0]) - int(r[1])),
                  str(r[2]), str(r[3])] for (server, name), r in list(self.rows.items())[-LIVE_ROWS:]]
        return fitted_table(LIVE_COLUMNS, cells, width=width, title="measure dns (live)")

    def add(self, q: DnsQuery) -> None:
        row = self.rows.setdefault((q.server, q.name), [0, 0, "-", "-"])
        row[0] = int(row[0]) + 1
        if q.answered:
            row[1] = int(row[1]) + 1
            row[2] = format_ms(None if q.rtt_ns is None else q.rtt_ns / 1e6)
            row[3] = q.rcode or "-"
        else:
            row[2], row[3] = q.outcome, "-"
        if self.out.format == "jsonl":
            self.out.jsonl(q.to_json())
        elif self.out.verbose:
            self.out.info(query_line(q))


def render_dns(out: Output, result: DnsResult) -> None:
    """The summary in the chosen format on stdout; failed checks on stderr."""
    from netkit.render.output import flatten

    doc = result.to_json()
    if out.format == "json":
        out.json(result.to_json(queries=True))
    elif out.format == "jsonl":
        out.jsonl({"event": "summary", **doc})
    elif out.format == "csv":
        rows = []
        for r in result.rows:
            doc_row = r.to_json()
            del doc_row["rcodes"], doc_row["errors"]  # maps with varying keys: one text column each below
            row = flatten(doc_row)
            row["answers"] = ";".join(r.answers)
            row["errors"] = ";".join(f"{k}={v}" for k, v in r.errors.items())
            row["rcodes"] = ";".join(f"{k}={v}" for k, v in r.rcodes.items())
            row["type"] = result.qtype
            row["transport"] = result.transport
            rows.append(row)
        out.csv_rows(rows)
    else:
        out.print(dns_summary(result, width=out.width))
    if not (out.table_on_screen and result.checks.failed):
        for f in result.checks.failed:
            out.info(f"netkit: check failed: {safe_text(f)}")
