"""Tables and lines of ``netkit info``: interfaces, connections and traffic rates.

Every table is a :func:`netkit.render.tables.fitted_table`: on an 80-column terminal the
identifying column (interface, socket endpoints) and the headline figures stay whole and the
least important columns go first; off a terminal (``width`` None) every column is printed.
Rates are bits per second (SI), like every rate netkit prints; ``in_bytes`` switches the
traffic figures to bytes per second (IEC) for people who read counters that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from netkit.core.escape import safe_text
from netkit.core.sysinfo_models import IpFamily
from netkit.core.units import (
    format_bitrate,
    format_byte_rate,
    format_bytes,
    format_count,
    format_rate,
    seconds_text,
    three_digits,
)
from netkit.render.tables import Col, fitted_table

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Group
    from rich.table import Table

    from netkit.core.sysinfo_models import Connection, InterfaceInfo, TrafficReport, TrafficSample
    from netkit.render.output import Output


# ----- interfaces --------------------------------------------------------------------------------
INTERFACE_COLS = (
    Col("interface"),
    Col("state"),
    Col("rx", "right"),
    Col("tx", "right"),
    Col("errors rx/tx", "right", drop=2),
    Col("drops rx/tx", "right", drop=2),
    Col("rx pkts", "right", drop=4),
    Col("tx pkts", "right", drop=4),
    Col("mtu", "right", drop=5),
    Col("speed", "right", drop=6),
    Col("duplex", drop=7),
    Col("addresses", drop=1),
)


def _pair(a: int | None, b: int | None) -> str:
    return f"{'-' if a is None else format_count(a)}/{'-' if b is None else format_count(b)}"


def _opt(value: int | None, fmt: str = "count") -> str | None:
    if value is None:
        return None
    return format_bytes(value) if fmt == "bytes" else format_count(value)


def interface_table(ifaces: Sequence[InterfaceInfo], *, width: int | None) -> Table:
    """One row per interface. On a terminal the addresses stack one per line; off it they are
    joined on the row (``, ``) so each interface stays one line for grep and awk."""
    from rich.text import Text

    rows = []
    for i in ifaces:
        addrs = [*i.ipv4, *i.ipv6, *([f"link {i.mac}"] if i.mac else [])]
        # Text, not str: a multi-line cell keeps its line breaks (each address made inert first).
        joined = Text(("\n" if width is not None else ", ").join(safe_text(a) for a in addrs)) if addrs else None
        rows.append((
            i.name, "up" if i.up else "down",
            _opt(i.rx_bytes, "bytes"), _opt(i.tx_bytes, "bytes"),
            _pair(i.rx_errors, i.tx_errors), _pair(i.rx_drops, i.tx_drops),
            _opt(i.rx_packets), _opt(i.tx_packets),
            i.mtu, format_bitrate(i.speed_mbps * 1e6) if i.speed_mbps else None, i.duplex, joined,
        ))
    return fitted_table(INTERFACE_COLS, _styled(rows, state_at=1), width=width)


# ----- connections -------------------------------------------------------------------------------
CONNECTION_COLS = (
    Col("proto"),
    Col("state"),
    Col("local"),
    Col("remote"),
    Col("pid", "right", drop=2),
    Col("process", drop=1),
)


def endpoint(addr: str | None, port: int | None) -> str:
    """``127.0.0.1:22``, ``[::1]:22``; ``*`` for no address, ``addr:*`` for no port."""
    if addr is None:
        return "*"
    shown = f"[{addr}]" if ":" in addr else addr
    return f"{shown}:{port if port else '*'}"


STACKED_CONNECTION_COLS = (
    Col("proto"),
    Col("state"),
    Col("local / remote"),
    Col("pid", "right", drop=2),
    Col("process", drop=1),
)


def connection_table(conns: Sequence[Connection], *, width: int | None) -> Table:
    """One row per socket. When the two addresses cannot stand side by side (long IPv6 addresses
    on a narrow terminal), each row shows its local address above its remote one: never cut."""
    from rich.text import Text

    rows = [(c.proto.value if c.family == IpFamily.IPV4 else f"{c.proto.value}6", str(c.state),
             endpoint(c.local_address, c.local_port), endpoint(c.remote_address, c.remote_port), c.pid, c.process)
            for c in conns]
    if width is None or _widest(rows, 4) <= width:
        return fitted_table(CONNECTION_COLS, rows, width=width)
    stacked = [(p, st, Text(f"{safe_text(local)}\n{safe_text(remote)}"), pid, proc)
               for p, st, local, remote, pid, proc in rows]
    return fitted_table(STACKED_CONNECTION_COLS, stacked, width=width)


def _widest(rows: Sequence[tuple[object, ...]], first: int) -> int:
    """The width of the first ``first`` columns side by side (headers included, two-space gaps)."""
    names = [c.name for c in CONNECTION_COLS[:first]]
    widths = [max([len(n)] + [len(str(r[i])) for r in rows]) for i, n in enumerate(names)]
    return sum(widths) + 2 * (len(widths) - 1)


def hidden_owners_note(owners_hidden: int, processes_hidden: int) -> str:
    return (f"netkit: note: {owners_hidden} socket(s) shown without PID and process: they belong to "
            f"{processes_hidden} process(es) this user may not inspect (run as root to see them)")


# ----- traffic -----------------------------------------------------------------------------------
def traffic_rate(bytes_per_s: float, *, in_bytes: bool = False) -> str:
    """A byte counter's rate: ``12.3 Mbit/s`` (SI bits, the default), or ``1.47 MiB/s`` (IEC bytes)."""
    return format_byte_rate(bytes_per_s) if in_bytes else format_bitrate(bytes_per_s * 8)


def _pps(value: float) -> str:
    return format_rate(value, "pkt/s")


TRAFFIC_COLS = (
    Col("interface"),
    Col("rx", "right"),
    Col("tx", "right"),
    Col("packets rx/tx", "right", drop=2),
    Col("err rx/tx", "right", drop=1),
    Col("drop rx/tx", "right", drop=1),
)


def traffic_table(samples: Sequence[TrafficSample], *, width: int | None, title: str | None = None,
                  in_bytes: bool = False) -> Table:
    """Rates per interface (one interval, or the whole run); errors and drops are counts."""
    rows = [(s.interface, traffic_rate(s.rx_bytes_per_s, in_bytes=in_bytes),
             traffic_rate(s.tx_bytes_per_s, in_bytes=in_bytes),
             f"{three_digits(s.rx_packets_per_s)}/{three_digits(s.tx_packets_per_s)} pkt/s",
             _pair(s.rx_errors, s.tx_errors), _pair(s.rx_drops, s.tx_drops)) for s in samples]
    return fitted_table(TRAFFIC_COLS, rows, width=width, title=title)


def traffic_live_title(interval_s: float, rounds: int) -> str:
    every = seconds_text(interval_s)
    if rounds == 0:
        return f"traffic every {every}: waiting for the first interval"
    return f"traffic every {every}, interval {rounds} (Ctrl-C stops)"


def traffic_summary_title(summary: Sequence[TrafficSample], interval_s: float, rounds: int) -> str:
    elapsed = max((s.elapsed_s for s in summary), default=0.0)
    intervals = "1 interval" if rounds == 1 else f"{format_count(rounds)} intervals"
    return f"traffic averaged over {elapsed:.1f}s ({intervals} of {seconds_text(interval_s)})"


TRAFFIC_LINE_WIDTHS = (12, 15, 14, 13, 14, 13, 12, 12)


def traffic_header() -> str:
    """The header of the per-interval lines written off a terminal."""
    names = ("time", "interface", "rx/s", "rx pkt/s", "tx/s", "tx pkt/s", "err rx/tx", "drop rx/tx")
    return _line(names)


def traffic_line(s: TrafficSample, *, in_bytes: bool = False) -> str:
    """One interface in one interval, aligned under :func:`traffic_header` (a pipe or a file)."""
    clock = (s.timestamp or "")[11:23]
    return _line((clock, safe_text(s.interface), traffic_rate(s.rx_bytes_per_s, in_bytes=in_bytes),
                  _pps(s.rx_packets_per_s), traffic_rate(s.tx_bytes_per_s, in_bytes=in_bytes),
                  _pps(s.tx_packets_per_s), _pair(s.rx_errors, s.tx_errors), _pair(s.rx_drops, s.tx_drops)))


class TrafficView:
    """Everything ``info traffic`` shows, by format: the live table on a terminal (then the
    whole-run table), plain lines off a terminal, jsonl/csv samples as they come, json at the end."""

    def __init__(self, out: Output, interval_s: float, *, in_bytes: bool = False) -> None:
        from netkit.render.live import LiveScreen

        self.out = out
        self.interval_s = interval_s
        self.in_bytes = in_bytes
        self.rounds = 0
        self.latest: list[TrafficSample] = []
        # The live table needs both streams on a terminal: the run's table follows it on stdout.
        self.live_view = out.format == "table" and out.stdout_is_tty and out.live_ok
        self.plain_lines = out.format == "table" and not self.live_view
        self._screen = LiveScreen(out, self.draw, auto_refresh=False)

    def draw(self) -> Group:
        from netkit.render.monitor import live_frame

        return live_frame(traffic_table(self.latest, width=self._screen.width, in_bytes=self.in_bytes,
                                        title=traffic_live_title(self.interval_s, self.rounds)))

    def screen(self) -> AbstractContextManager[object]:
        """The live view's lifetime (nothing off a terminal)."""
        return self._screen if self.live_view else nullcontext()

    def on_start(self) -> None:
        if self.plain_lines:
            self.out.line(traffic_header())

    def on_batch(self, batch: list[TrafficSample]) -> None:
        from netkit.core.sysinfo_models import TRAFFIC_FIELDS

        self.rounds += 1
        self.latest[:] = batch
        out = self.out
        if self.live_view:
            self._screen.refresh()
        elif self.plain_lines:
            for s in batch:
                out.line(traffic_line(s, in_bytes=self.in_bytes))
        elif out.format == "jsonl":
            for s in batch:
                out.jsonl(s)
        elif out.format == "csv":
            out.csv_rows(batch, TRAFFIC_FIELDS)

    def finish(self, report: TrafficReport) -> None:
        """The end of a run: the json document, or on a terminal the table of the whole run."""
        if self.out.format == "json":
            self.out.json(report)
        elif self.live_view and report.summary:
            self.out.print(traffic_table(report.summary, width=self.out.width, in_bytes=self.in_bytes,
                                         title=traffic_summary_title(report.summary, self.interval_s, self.rounds)))


def _line(values: Sequence[str]) -> str:
    parts = [f"{v:<{w}}" if i < 2 else f"{v:>{w}}" for i, (v, w) in enumerate(zip(values, TRAFFIC_LINE_WIDTHS,
                                                                                    strict=True))]
    return " ".join(parts).rstrip()


def _styled(rows: Sequence[tuple[object, ...]], *, state_at: int) -> list[tuple[object, ...]]:
    """The state column coloured as everywhere (green up, red down)."""
    from rich.text import Text

    return [(*r[:state_at], Text(str(r[state_at]), style="green" if r[state_at] == "up" else "red"),
             *r[state_at + 1:]) for r in rows]
