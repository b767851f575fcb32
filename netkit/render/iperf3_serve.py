"""How ``netkit serve iperf3`` shows itself: the events, a row per finished test, the totals.

- :func:`print_event`: jsonl writes every event as it is (``test_start``, ``test``, ``limit``,
  ``refused``); a table run writes one aligned row per finished test (:func:`test_row`, the
  header before the first), or two labelled lines on a terminal too narrow for the row
  (:func:`test_lines`), and one readable line for limits and refusals.
- :func:`print_summary`: json/jsonl/csv write the totals' fields as published; a table run
  shows them for people.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from netkit.core.escape import safe_text
from netkit.core.iperf3_server import Iperf3ServeSummary
from netkit.core.targets import format_host_port
from netkit.core.units import format_bitrate, format_bytes, format_count

if TYPE_CHECKING:  # pragma: no cover

    from netkit.render.output import Output

HEADER = f"{'time':<12} {'#':>4} {'client':<24} {'mode':<12} {'str':>3} {'secs':>6} " \
         f"{'received':>11} {'sent':>11} {'bitrate':>14} {'retr/loss':>10} outcome"


class EventState:
    """What the event printer remembers: whether the rows' header is out."""

    header_done = False


def _retr_or_loss(event: Mapping[str, Any]) -> str:
    if event.get("lost_packets") is not None:
        return f"{event['lost_packets']}/{event.get('packets', 0)}"
    if event.get("retransmits") is not None:
        return format_count(event["retransmits"])
    return "-"


def test_row(event: Mapping[str, Any]) -> str:
    """One finished test: when, who, mode, streams, span, bytes each way, bit rate, retransmits
    (TCP) or lost/packets (UDP), outcome. Peer-chosen text goes through ``safe_text``."""
    t = str(event.get("time", ""))[11:23]
    return (f"{t:<12} {event['id']:>4} {safe_text(str(event['peer'])):<24} {safe_text(str(event['mode'])):<12} "
            f"{event['streams']:>3} {event['duration_s']:>6.2f} {format_bytes(event['bytes_received']):>11} "
            f"{format_bytes(event['bytes_sent']):>11} {format_bitrate(event['bits_per_second']):>14} "
            f"{_retr_or_loss(event):>10} {safe_text(str(event.get('outcome', '')))}")


def test_lines(event: Mapping[str, Any]) -> list[str]:
    """The same test in two labelled lines, for a terminal narrower than :func:`test_row`: who and
    what, then the figures (each line wraps whole words only if the terminal is narrower still)."""
    t = str(event.get("time", ""))[11:19]
    streams = "1 stream" if event["streams"] == 1 else f"{event['streams']} streams"
    kind = "loss" if event.get("lost_packets") is not None else "retr"
    return [f"{t} #{event['id']} {safe_text(str(event['peer']))} {safe_text(str(event['mode']))}, {streams}, "
            f"{event['duration_s']:.2f} s: {safe_text(str(event.get('outcome', '')))}",
            f"  received {format_bytes(event['bytes_received'])}  sent {format_bytes(event['bytes_sent'])}  "
            f"{format_bitrate(event['bits_per_second'])}  {kind} {_retr_or_loss(event)}"]


def print_event(out: Output, event: Mapping[str, Any], state: EventState) -> None:
    if out.format == "jsonl":
        out.jsonl(event)
        return
    if out.format != "table":
        return
    kind = event["event"]
    if kind == "test":
        row = test_row(event)
        width = out.width
        if width is not None and len(row) > width:  # a terminal too narrow for the row: two lines
            for line in test_lines(event):
                out.line(line)
            return
        if not state.header_done:
            state.header_done = True
            out.line(HEADER)
        out.line(row)
    elif kind in ("limit", "refused"):
        t = str(event.get("time", ""))[11:23]
        rest = " ".join(f"{safe_text(str(k))}={safe_text(str(v))}" for k, v in event.items()
                        if k not in ("event", "time"))
        out.line(f"{t} {kind} {rest}")


def summary_rows(s: Iperf3ServeSummary, events_dropped: int | None = None) -> list[tuple[str, str]]:
    from netkit.render.server_summary import closing_rows, counts_text

    rows = [
        ("address", format_host_port(s.host, s.port)),
        ("tests", format_count(s.tests)),
        ("completed", format_count(s.completed)),
        ("cut", format_count(s.cut)),
        ("refused", format_count(s.refused)),
        ("peak concurrent", format_count(s.peak_concurrent)),
        ("bytes received", format_bytes(s.bytes_received)),
        ("bytes sent", format_bytes(s.bytes_sent)),
        ("refused by", counts_text(s.refused_by)),
        ("limits hit", counts_text(s.limits_hit)),
    ]
    return rows + closing_rows(s.elapsed_ms, s.stopped_by, events_dropped)


def print_summary(out: Output, s: Iperf3ServeSummary, title: str, events_dropped: int | None = None) -> None:
    from netkit.render.server_summary import print_server_summary

    print_server_summary(out, s, summary_rows(s, events_dropped), title, events_dropped)


__all__ = ["HEADER", "EventState", "print_event", "print_summary", "summary_rows", "test_lines", "test_row"]
