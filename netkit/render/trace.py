"""How ``netkit trace`` looks: one table per target, mtr-style, live on a terminal.

- The report (:func:`print_trace`): per target a title (target, address, method, reached or not,
  hop count) and a table with one row per TTL: the responder(s), loss, sent, received and the RTT
  figures, each with its unit. Columns are chosen for the width
  (:func:`netkit.render.tables.fitted_table`): Hop, Host and Loss always show whole; the least
  telling figures go first. A hop that never answered shows ``???``; further responders of the
  same hop (ECMP, a route change) follow on their own lines with their share of the replies.
  A hop whose loss is the router's ICMP rate limit carries ``*`` beside its loss, and the note
  that says what that means follows the table once. The path MTU section follows with ``--pmtu``.
- On a terminal a live view on stderr (:class:`TraceLiveView`) draws the same tables from each
  target's snapshot while the rounds go on; it is erased at the end (Ctrl-C too), so the report
  printed after it is the clean final screen.
- ``--format jsonl`` streams one ``hop`` object per probe as it completes (:func:`hop_json`), then
  one ``summary`` object per target; ``json`` is the one document; ``csv`` one row per hop.

Every name and address is shown through :func:`netkit.render.tables.cell` (escaped, never markup):
a reverse-DNS name is whatever the owner of the address chose to publish.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from netkit.core.escape import safe_text
from netkit.core.trace_models import (
    RATE_LIMIT_NOTE,
    HopEvent,
    HopResult,
    PmtuResult,
    Responder,
    TargetTrace,
    TraceResult,
)
from netkit.core.units import format_count, format_ns_as_ms, format_percent
from netkit.render.live import ScreenView

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

    from netkit.render.live import LiveScreen
    from netkit.render.output import Output
    from netkit.render.tables import Col

#: The Host cell of a hop that never answered (as mtr and traceroute show it).
SILENT = "???"
#: Beside the loss of a hop whose loss is the router's ICMP rate limit; the note under the table says so.
RATE_LIMIT_MARK = "*"
#: The live view redraws at most this often (the snapshot is taken only when a probe completed since).
LIVE_REFRESH_PER_S = 4.0


class LiveTraceLike(Protocol):
    """What the live view needs of ``netkit.io.measure.trace.LiveTrace`` (render does not import io)."""

    label: str

    @property
    def snapshot(self) -> Callable[[], TargetTrace]: ...


# ----- small pieces ------------------------------------------------------------------------------
def host_label(r: Responder) -> str:
    """``name (address)`` when a reverse name is known and differs, else the address."""
    if r.name and r.name != r.address:
        return f"{r.name} ({r.address})"
    return r.address


def trace_title(t: TargetTrace, *, stopped: bool = False) -> str:
    """``trace example.test (198.18.0.9) udp: reached in 5 hops, 10 rounds``."""
    at = t.target if not t.address or t.address == t.target else f"{t.target} ({t.address})"
    dest = t.destination
    if dest is not None:
        hops = "1 hop" if dest.ttl == 1 else f"{dest.ttl} hops"
        state = f"reached in {hops}"
    elif t.hops:
        state = f"not reached ({t.hops[-1].ttl} hops probed)"
    else:
        state = "not reached"
    rounds = "1 round" if t.rounds == 1 else f"{format_count(t.rounds)} rounds"
    return f"trace {at} {t.method}: {state}, {rounds}" + (" (stopped early)" if stopped else "")


def loss_text(h: HopResult) -> str:
    """The loss with a trailing mark for rate limiting (a space otherwise, so the figures align)."""
    return format_percent(h.loss_pct) + (RATE_LIMIT_MARK if h.rate_limited else " ")


#: The table's columns: name, the HopResult figure (None: not an RTT) and the drop rank (0: always).
FIGURES: tuple[tuple[str, str, int], ...] = (
    ("Last", "last", 2), ("Avg", "avg", 1), ("Best", "min", 3), ("Wrst", "max", 2), ("StDev", "mdev", 5),
    ("p50", "p50", 4), ("p95", "p95", 1), ("Jttr", "jitter", 6),
)


def _figure(h: HopResult, attr: str) -> str:
    if attr == "last":
        return format_ns_as_ms(h.last_ns)
    return format_ns_as_ms(getattr(h.rtt, attr))


class HostCell:
    """A Host cell: the reverse name (if any), the address and the share of an ECMP responder.

    :meth:`lines` gives it on one line (``name (address) [60.0 %]``) or, where that is wider than
    the room, on two (``name`` then ``(address) [60.0 %]``), so that a long name costs lines, not
    the figures beside it."""

    def __init__(self, address: str | None, name: str | None = None, share: str = "", *,
                 style: str = "") -> None:
        self.address, self.name, self.share, self.style = address, name, share, style

    @property
    def share_suffix(self) -> str:
        """`` [60.0 %]``: in brackets, so that a share never reads as the loss in the next column."""
        return f" [{self.share}]" if self.share else ""

    def one_line(self) -> str:
        if self.address is None:
            return SILENT
        label = f"{self.name} ({self.address})" if self.name and self.name != self.address else self.address
        return label + self.share_suffix

    def one_line_width(self) -> int:
        from rich.cells import cell_len

        return cell_len(safe_text(self.one_line()))

    def short_width(self) -> int:
        """The width of its narrowest form's widest line but for the name (which may fold)."""
        from rich.cells import cell_len

        if self.address is None or not self.name or self.name == self.address:
            return cell_len(safe_text(self.one_line()))
        return cell_len(safe_text(f"({self.address})" + self.share_suffix))

    def text(self, room: int | None) -> Text:
        from rich.cells import cell_len
        from rich.text import Text

        from netkit.render.tables import cell

        whole = self.one_line()
        if self.address is None:
            return cell(whole, style="dim")
        if room is None or cell_len(safe_text(whole)) <= room or not self.name or self.name == self.address:
            return cell(whole, style=self.style)
        tail = safe_text(f"({self.address})" + self.share_suffix)
        lines = wrap_name(safe_text(self.name), room)
        if cell_len(f"{lines[-1]} {tail}") <= room:  # the address after the name's last line
            lines[-1] = f"{lines[-1]} {tail}"
        else:
            lines.append(tail)
        return Text("\n".join(lines), style=self.style)


def wrap_name(name: str, room: int) -> list[str]:
    """A (safe) DNS name on lines at most ``room`` wide, broken after its dots where it can be
    (``xe-0-0-12.core-router-5.`` / ``frankfurt.example.test``), a label longer than a line cut
    into pieces: every character is kept."""
    from rich.cells import cell_len

    room = max(room, 1)
    pieces: list[str] = []
    for label in (part + "." for part in name.split(".")):
        while cell_len(label) > room:
            pieces.append(label[:room])
            label = label[room:]
        pieces.append(label)
    if pieces and not name.endswith("."):
        pieces[-1] = pieces[-1][:-1]  # the dot added to the last label
    lines: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if lines and cell_len(lines[-1] + piece) <= room:
            lines[-1] += piece
        else:
            lines.append(piece)
    return lines or [name]


def hop_rows(h: HopResult) -> list[list[Any]]:
    """One row for the hop, then one short row per further responder (and one for the addresses
    beyond the kept ones), each with its share of the hop's replies. The Host cells are
    :class:`HostCell` (laid out by :func:`hop_table`)."""
    figures = [_figure(h, attr) for _name, attr, _drop in FIGURES]
    counts = [format_count(h.sent), format_count(h.received)]
    if h.silent or not h.responders:
        return [[str(h.ttl), HostCell(None), loss_text(h), *counts, *figures]]
    several = len(h.responders) > 1 or h.other_replies > 0
    style = "bold" if h.destination else ""
    hosts = [HostCell(r.address, r.name, format_percent(100.0 * r.share(h.received)) if several else "",
                      style=style if i == 0 else "")
             for i, r in enumerate(h.responders)]
    if h.other_replies:
        hosts.append(HostCell("other addresses", None, format_percent(100.0 * h.other_replies / h.received)))
    blank = [""] * (len(counts) + len(figures))
    rows: list[list[Any]] = [[str(h.ttl), hosts[0], loss_text(h), *counts, *figures]]
    rows += [["", host, "", *blank] for host in hosts[1:]]
    return rows


HOST = 1  # the Host column's index


#: Figures a table keeps before it gives a Host cell a second line: the headline figures (Avg, p95).
HEADLINE_DROP = 1


def _host_budget_columns(cols: Sequence[Col], rows: Sequence[Sequence[Any]], width: int) -> list[int]:
    """The columns to show: the Host column as wide as the widest one-line host that still leaves
    room for the headline figures (so a hop reads on one line, as in mtr, where that costs only the
    minor figures), else as narrow as the addresses allow (names on lines of their own)."""
    from netkit.render.tables import fit_columns

    hosts = [r[HOST] for r in rows]
    one_line = sorted({h.one_line_width() for h in hosts}, reverse=True)
    for budget in one_line:
        placeholder = [[("x" * max(min(h.one_line_width(), budget), h.short_width()) if i == HOST else v)
                        for i, v in enumerate(r)] for r, h in zip(rows, hosts, strict=True)]
        keep = fit_columns(cols, placeholder, width)
        if all(i in keep for i, c in enumerate(cols) if c.drop <= HEADLINE_DROP):
            return keep
    narrow = [[("x" * r[HOST].short_width()) if i == HOST else v for i, v in enumerate(r)] for r in rows]
    return fit_columns(cols, narrow, width)


def _columns_and_rows(t: TargetTrace) -> tuple[list[Col], list[list[Any]]]:
    from netkit.render.tables import Col

    cols = [Col("Hop", "right"), Col("Host"), Col("Loss%", "right"), Col("Sent", "right", drop=2),
            Col("Recv", "right", drop=4), *(Col(name, "right", drop=drop) for name, _a, drop in FIGURES)]
    rows: list[list[Any]] = []
    for h in t.hops:
        rows += hop_rows(h)
    return cols, rows


def shared_columns(targets: Sequence[TargetTrace], width: int | None) -> list[int] | None:
    """The columns every target's table shows: those that fit in each (the tables of several
    targets read side by side with the same figures). None off a terminal: every column."""
    if width is None:
        return None
    keeps = [set(_host_budget_columns(*_columns_and_rows(t), width)) for t in targets if t.hops]
    return sorted(set.intersection(*keeps)) if keeps else None


def hop_table(t: TargetTrace, width: int | None, keep: list[int] | None = None) -> Table:
    """The table of one target's hops (see the module's docstring); its title is :func:`trace_title`,
    a line of its own above it (a table's title would wrap at the table's width).

    On a terminal the columns are ``keep`` (see :func:`shared_columns`) or those that fit; the Host
    column then takes the rest of the width, and a name wider still takes more lines."""
    from rich.cells import cell_len

    from netkit.render.tables import fitted_table

    cols, rows = _columns_and_rows(t)
    if width is None:
        return fitted_table(cols, [[r[HOST].text(None) if i == HOST else v for i, v in enumerate(r)] for r in rows],
                            width=None)
    if keep is None:
        keep = _host_budget_columns(cols, rows, width)
    others = sum(max([cell_len(cols[i].name), *(cell_len(str(r[i])) for r in rows)]) for i in keep if i != HOST)
    room = max(width - others - 2 * (len(keep) - 1), min(r[HOST].short_width() for r in rows) if rows else 4)
    laid = [[r[i].text(room) if i == HOST else r[i] for i in keep] for r in rows]
    return fitted_table([replace(cols[i], drop=0) for i in keep], laid, width=width)


BLACK_HOLE_LEAD = "  PMTU black hole: "
BLACK_HOLE_TEXT = ("big packets vanished without \"fragmentation needed\" from any router; the MTU was found by "
                   "search with don't-fragment probes")


def pmtu_lines(p: PmtuResult, t: TargetTrace) -> list[str]:
    """``path MTU 1,280 bytes (first link 1,500 bytes)``, then each drop with its hop and router
    (escaped), then the black hole's line: the section as plain lines."""
    first = "" if p.first_mtu is None else f" (first link {format_count(p.first_mtu)} bytes)"
    if p.mtu is None:
        why = "" if t.reached else " (destination not reached)"
        lines = [f"path MTU: not found{why}{first}"]
    else:
        lines = [f"path MTU {format_count(p.mtu)} bytes{first}"]
    by_ttl = {h.ttl: h for h in t.hops}
    for d in p.drops:
        # Numbered as tracepath does: the drop applies from hop ``d.ttl`` on; the router in front of
        # the smaller link, which reports it, is the hop before.
        line = f"  hop {d.ttl} on: {format_count(d.mtu)} bytes"
        if d.address is not None:
            h = by_ttl.get(d.ttl - 1)
            named = next((r for r in h.responders if r.address == d.address), None) if h is not None else None
            line += f", reported by hop {d.ttl - 1} " + safe_text(host_label(named) if named is not None else d.address)
        else:
            line += " (no report: found by search)"
        lines.append(line)
    if p.black_hole:
        lines.append(BLACK_HOLE_LEAD + BLACK_HOLE_TEXT)
    return lines


def pmtu_text(p: PmtuResult, t: TargetTrace) -> Text:
    """:func:`pmtu_lines` as one Text, the black hole in red."""
    from rich.text import Text

    lines = pmtu_lines(p, t)
    text = Text("\n".join(line for line in lines if not line.startswith(BLACK_HOLE_LEAD)))
    if p.black_hole:
        text.append("\n" + BLACK_HOLE_LEAD, style="red bold")
        text.append(BLACK_HOLE_TEXT, style="red")
    return text


def target_view(t: TargetTrace, width: int | None, *, stopped: bool = False,
                keep: list[int] | None = None) -> RenderableType:
    """One target: its title, its table and what stopped it (when it got anywhere), its PMTU section."""
    from rich.console import Group
    from rich.text import Text

    from netkit.render.tables import cell

    parts: list[RenderableType] = [Text(trace_title(t, stopped=stopped), style="bold")]
    if t.hops:
        parts.append(hop_table(t, width, keep))
    if t.error and t.hops:  # a target that failed outright is said once, on stderr, as every failure is
        parts.append(Text.assemble(("  ", ""), cell(t.error, style="yellow")))
    if t.pmtu is not None:
        parts.append(pmtu_text(t.pmtu, t))
    return Group(*parts)


def report_view(result: TraceResult, width: int | None) -> RenderableType:
    """Every target's table, a blank line apart; the rate-limit note once; the threshold verdict."""
    from rich.console import Group
    from rich.text import Text

    from netkit.render.tables import verdict_lines

    parts: list[RenderableType] = []
    keep = shared_columns(result.targets, width)
    for i, t in enumerate(result.targets):
        if i:
            parts.append(Text(""))
        parts.append(target_view(t, width, stopped=result.interrupted, keep=keep))
    for note in result.notes:
        mark = f"{RATE_LIMIT_MARK} " if note == RATE_LIMIT_NOTE else "note: "
        parts.append(Text(""))
        parts.append(Text(f"{mark}{note}", style="dim"))
    th = result.thresholds
    if th.max_loss_pct is not None or th.max_rtt_ms is not None:
        parts.append(Text(""))
        parts.extend(verdict_lines(th.passed, th.failed))
    return Group(*parts)


# ----- the live view -----------------------------------------------------------------------------
class TraceLiveView(ScreenView):
    """The live mtr-style view: ``with view: run_trace(..., on_event=view.on_event, on_start=view.attach)``.

    It shows where a person watches stderr (a terminal, not ``-q``), unless stdout is that same
    terminal taking json/jsonl/csv. The snapshot of each target is taken on Rich's refresh thread
    only when a probe completed since the last one; if taking it fails (the engine changed its
    state under it), the previous snapshot is drawn again.
    """

    def __init__(self, out: Output, cfg_rounds: int | None) -> None:
        from netkit.render.live import LiveScreen

        self.out = out
        self.rounds = cfg_rounds
        self.traces: list[LiveTraceLike] = []
        self._shown: list[TargetTrace] = []
        self._dirty = True
        self.enabled = out.live_ok and (out.format == "table" or not out.stdout_is_tty)
        self.screen: LiveScreen | None = (LiveScreen(out, self.draw, refresh_per_second=LIVE_REFRESH_PER_S)
                                          if self.enabled else None)

    def attach(self, traces: Sequence[LiveTraceLike]) -> None:
        self.traces = list(traces)
        self._dirty = True

    def on_event(self, _label: str, _ev: HopEvent) -> None:
        self._dirty = True

    def snapshots(self) -> list[TargetTrace]:
        if self._dirty or len(self._shown) != len(self.traces):
            self._dirty = False
            try:
                self._shown = [t.snapshot() for t in self.traces]
            except RuntimeError:  # a dict the engine was changing: draw what was shown before
                self._dirty = True
        return self._shown

    def draw(self) -> RenderableType:
        from rich.console import Group
        from rich.constrain import Constrain
        from rich.text import Text

        width = self.screen.width if self.screen is not None else None
        shown = self.snapshots()
        if not shown:
            return Text("trace: starting...", style="dim")
        parts: list[RenderableType] = []
        keep = shared_columns(shown, width)
        for i, t in enumerate(shown):
            if i:
                parts.append(Text(""))
            parts.append(target_view(t, width, keep=keep))
        if any(t.rate_limited_hops for t in shown):
            parts.append(Text(f"{RATE_LIMIT_MARK} loss at this hop only: the router's ICMP rate limit",
                              style="dim"))
        hint = f"round {max(t.rounds for t in shown)}" + (f" of {self.rounds}" if self.rounds else "")
        parts.append(Text(f"{hint}  (Ctrl-C stops and prints the report)", style="dim"))
        # The notes wrap within the view's width too (it leaves room for the echo of ^C).
        return Constrain(Group(*parts), width)


def _width(text: str) -> int:
    """Terminal cells of (escaped) text, without importing Rich: East Asian wide characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _plain_table(t: TargetTrace) -> list[str]:
    """The hop table as aligned plain lines, every column, one line per responder: what Rich draws
    off a terminal, drawn without it (a near trace's whole run costs less than importing Rich)."""
    cols, rows = _columns_and_rows(t)
    cells = [[c.name for c in cols]]
    cells += [[safe_text(v.one_line()) if i == HOST else str(v) for i, v in enumerate(r)] for r in rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(cols))]
    # As Rich draws it: the columns are as wide as their cells, and a cell's trailing space (a loss
    # keeps one where the rate-limit mark goes) is dropped when it is aligned.
    cells = [[text.rstrip() for text in row] for row in cells]
    lines: list[str] = []
    for row in cells:
        parts = []
        for i, (text, col) in enumerate(zip(row, cols, strict=True)):
            pad = " " * (widths[i] - _width(text))
            parts.append(pad + text if col.justify == "right" else text + pad)
        lines.append("  ".join(parts).rstrip())
    return lines


def plain_report(result: TraceResult) -> str:
    """:func:`report_view` off a terminal, as plain text (no box, no colour, nothing cut)."""
    lines: list[str] = []
    for i, t in enumerate(result.targets):
        if i:
            lines.append("")
        lines.append(safe_text(trace_title(t, stopped=result.interrupted)))
        if t.hops:
            lines += _plain_table(t)
        if t.error and t.hops:
            lines.append("  " + safe_text(t.error))
        if t.pmtu is not None:
            lines += pmtu_lines(t.pmtu, t)
    for note in result.notes:
        mark = f"{RATE_LIMIT_MARK} " if note == RATE_LIMIT_NOTE else "note: "
        lines += ["", f"{mark}{note}"]
    th = result.thresholds
    if th.max_loss_pct is not None or th.max_rtt_ms is not None:
        lines += ["", f"thresholds: {'PASS' if th.passed else 'FAIL'}"]
        lines += [f"  {safe_text(f)}" for f in th.failed]
    return "\n".join(lines)


def event_sink(out: Output, view: TraceLiveView) -> Callable[[str, HopEvent], None] | None:
    """What to do with each probe outcome: a jsonl ``hop`` object, a mark for the live view, both
    or neither (None). A closed stdout raises BrokenPipeError from it (the engine stops)."""
    stream = out.format == "jsonl" and not out.quiet
    if stream and view.enabled:
        def both(label: str, ev: HopEvent) -> None:
            view.on_event(label, ev)
            out.jsonl(hop_json(label, ev))
        return both
    if stream:
        return lambda label, ev: out.jsonl(hop_json(label, ev))
    if view.enabled:
        return view.on_event
    return None


# ----- machine formats ---------------------------------------------------------------------------
def hop_json(label: str, ev: HopEvent) -> dict[str, Any]:
    """One ``--format jsonl`` object per probe outcome; a timeout has ``address`` and ``rtt_ms`` null."""
    return {"event": "hop", "target": label, "round": ev.round, "ttl": ev.ttl, "address": ev.address,
            "rtt_ms": None if ev.rtt_ns is None else round(ev.rtt_ns / 1e6, 6),
            "answer": None if ev.answer is None else str(ev.answer),
            "mtu": ev.mtu}


CSV_FIELDS = ("target", "address", "ttl", "host", "name", "share", "loss_pct", "sent", "received",
              "last_ms", "min_ms", "avg_ms", "max_ms", "mdev_ms", "p50_ms", "p95_ms", "jitter_ms",
              "rate_limited", "destination", "mtu", "reached")


def csv_rows(result: TraceResult) -> list[dict[str, Any]]:
    """One row per hop: the target, the hop's main responder (``host`` empty for a silent hop), its
    counts and figures in ms, the flags. Every responder is in the JSON; here the main one."""
    rows: list[dict[str, Any]] = []
    for t in result.targets:
        for h in t.hops:
            j = h.to_json()
            main = h.responders[0] if h.responders else None
            rtt = j["rtt_ms"]
            rows.append({
                "target": t.target, "address": t.address, "ttl": h.ttl,
                "host": None if main is None else main.address, "name": None if main is None else main.name,
                "share": None if main is None else round(main.share(h.received), 4),
                "loss_pct": h.loss_pct, "sent": h.sent, "received": h.received,
                **{f"{k}_ms": rtt[k] for k in ("last", "min", "avg", "max", "mdev", "p50", "p95", "jitter")},
                "rate_limited": h.rate_limited, "destination": h.destination, "mtu": h.mtu, "reached": t.reached,
            })
    return rows


# ----- the report --------------------------------------------------------------------------------
def print_trace(out: Output, result: TraceResult) -> None:
    """Everything ``netkit trace`` says after the run, in the chosen format, then on stderr each
    failed target (once) and the breached thresholds when the table is not on a terminal."""
    if out.format == "json":
        out.json(result.to_json())
    elif out.format == "jsonl":
        for t in result.targets:
            out.jsonl({"event": "summary", **t.to_json(), "interrupted": result.interrupted,
                       "thresholds": result.thresholds.to_json(), "notes": list(result.notes)})
    elif out.format == "csv":
        out.csv_rows(csv_rows(result), CSV_FIELDS)
    elif not out.stdout_is_tty:
        out.print(plain_report(result))
    else:
        out.print(report_view(result, out.width))
    for t in result.targets:
        out.debug(f"{safe_text(t.target)}: {t.method}, {t.timestamps} timestamps, "
                  f"{format_count(t.rounds)} rounds in {t.elapsed_ns / 1e9:.3f} s")
    failed_outright = {f"{t.target}: {t.error}" for t in result.targets if t.error and not t.hops}
    for f in result.thresholds.failed:
        if f in failed_outright:
            out.info(f"netkit: {safe_text(f)}")
        elif not out.table_on_screen:  # on a terminal the table's thresholds lines just said it
            out.info(f"netkit: check failed: {safe_text(f)}")

