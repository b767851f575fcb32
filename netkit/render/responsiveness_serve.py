"""How ``netkit serve responsiveness`` shows itself: the start lines, a line per connection, the totals.

- :func:`print_start`: the configuration document's URL and how to run the client against it,
  on stderr, after the certificate's fingerprint and before ``listening on HOST:PORT`` (both
  :mod:`netkit.render.serve`'s, shown even with ``-q``), so a script waiting for the ready line
  has read them all.
- :func:`print_event`: jsonl writes every event as it is (``close``, ``limit``); a table run
  writes one line per connection that carried load (/large or /upload) or that a limit or an
  error ended, and one per limit event. The many short connections of a test's probes are
  counted in the totals, not listed.
- :func:`print_summary`: json/jsonl/csv write the totals' fields as published; a table run shows them
  for people.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from netkit.core.escape import safe_text
from netkit.core.nq_server import NqServeSummary
from netkit.core.targets import format_host_port
from netkit.core.units import format_bytes, format_count, format_duration, format_ms

if TYPE_CHECKING:  # pragma: no cover

    from netkit.render.output import Output

#: Connection ends worth a line even when the connection carried no load.
_NOTABLE = ("protocol-error", "error", "idle-timeout", "max-duration", "max-upload", "write-buffer",
            "tls-handshake")


def client_command(config_url: str, cafile: str | None, tls: bool) -> str:
    """The command line that runs the client against this server."""
    cmd = f"netkit measure responsiveness {config_url}"
    if tls:
        cmd += f" --cafile {cafile}" if cafile else " -k"
    return cmd


def print_start(out: Output, config_url: str, cafile: str | None, tls: bool) -> None:
    out.info(f"config {config_url}")
    out.info(f"run: {client_command(config_url, cafile, tls)}")
    out.stderr.flush()


def _proto(event: Mapping[str, Any]) -> str:
    """`` h2 tls``; nothing for a connection that never spoke HTTP (a failed TLS handshake)."""
    proto = str(event.get("protocol", "-"))
    if proto == "-":
        return ""
    return f" {safe_text(proto)}" + (" tls" if event.get("tls") else "")


def close_line(event: Mapping[str, Any]) -> str:
    """``12:00:00.123 close #3 127.0.0.1:5000 h2 tls, 4 requests, in 1.50 KiB, out 2.00 GiB, 5.0 s, eof``."""
    t = str(event.get("time", ""))[11:23]
    n = int(event.get("requests", 0))
    secs = float(event.get("duration_ms", 0.0))
    took = format_ms(secs) if secs < 1000 else format_duration(secs / 1000)
    return (f"{t} close #{event['id']} {safe_text(str(event['peer']))}{_proto(event)}, "
            f"{format_count(n)} request{'' if n == 1 else 's'}, in {format_bytes(event['bytes_in'])}, "
            f"out {format_bytes(event['bytes_out'])}, {took}, {safe_text(str(event['reason']))}")


def close_lines(event: Mapping[str, Any]) -> list[str]:
    """The same connection in two lines, for a terminal narrower than :func:`close_line`."""
    t = str(event.get("time", ""))[11:19]
    n = int(event.get("requests", 0))
    secs = float(event.get("duration_ms", 0.0))
    took = format_ms(secs) if secs < 1000 else format_duration(secs / 1000)
    return [f"{t} close #{event['id']} {safe_text(str(event['peer']))}{_proto(event)}: "
            f"{safe_text(str(event['reason']))}",
            f"  {format_count(n)} request{'' if n == 1 else 's'}, in {format_bytes(event['bytes_in'])}, "
            f"out {format_bytes(event['bytes_out'])}, {took}"]


def limit_line(event: Mapping[str, Any]) -> str:
    t = str(event.get("time", ""))[11:23]
    who = f"#{event['id']} " if event.get("id") is not None else ""
    name = safe_text(str(event["limit"]))
    value = event.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if name in ("max_duration", "idle_timeout"):
            shown = format_duration(float(value))
        elif name in ("max_upload", "write_buffer", "max_header"):
            shown = format_bytes(int(value))
        else:
            shown = format_count(int(value))
        bound = f", limit {shown}"
    else:
        bound = ""
    count = f", {format_count(event['count'])} so far" if event.get("count", 0) > 1 else ""
    return f"{t} limit {who}{safe_text(str(event.get('peer', '')))} {name}{bound}{count}"


def print_event(out: Output, event: Mapping[str, Any]) -> None:
    if out.format == "jsonl":
        out.jsonl(event)
        return
    if out.format != "table":
        return
    kind = event["event"]
    if kind == "close":
        if event.get("large") or event.get("uploads") or event.get("reason") in _NOTABLE:
            line = close_line(event)
            width = out.width
            if width is not None and len(line) > width:  # a narrow terminal: two lines, none wrapped
                for part in close_lines(event):
                    out.line(part)
            else:
                out.line(line)
    elif kind == "limit":
        out.line(limit_line(event))


def summary_rows(s: NqServeSummary, events_dropped: int | None = None) -> list[tuple[str, str]]:
    from netkit.render.server_summary import closing_rows, counts_text

    rows = [
        ("address", format_host_port(s.host, s.port)),
        ("config url", s.config_url),
        ("tls", "yes" if s.tls else "no"),
        ("connections", format_count(s.connections)),
        ("peak concurrent", format_count(s.peak_concurrent)),
        ("protocols", counts_text(s.protocols)),
        ("requests", counts_text(s.requests)),
        ("bytes in", format_bytes(s.bytes_in)),
        ("bytes out", format_bytes(s.bytes_out)),
        ("errors", format_count(s.errors)),
        ("limits hit", counts_text(s.limits_hit)),
    ]
    return rows + closing_rows(s.elapsed_ms, s.stopped_by, events_dropped)


def print_summary(out: Output, s: NqServeSummary, title: str, events_dropped: int | None = None) -> None:
    from netkit.render.server_summary import print_server_summary

    print_server_summary(out, s, summary_rows(s, events_dropped), title, events_dropped)


__all__ = ["client_command", "close_line", "close_lines", "limit_line", "print_event", "print_start", "print_summary",
           "summary_rows"]
