"""How ``netkit serve tcp|udp`` shows itself: the ready line, one line per event, the summary.

- :func:`print_ready`: ``listening on HOST:PORT`` on stderr, even with ``-q`` (scripts wait for it).
- :func:`print_event`: jsonl writes every event as it is; a table run writes one readable line
  per event (:func:`event_line`), with units, the peer's bytes escaped.
- :func:`print_summary`: json/jsonl/csv write the summary's fields exactly as published (plus
  ``events_dropped`` when stdout was queued); a table run shows them for people: sizes in IEC
  units, counts with separators, the elapsed time as a duration, booleans as yes/no.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from netkit.core.escape import safe_text
from netkit.core.serve_models import TcpServeSummary, UdpServeSummary
from netkit.core.targets import format_host_port
from netkit.core.units import format_bytes, format_count, format_duration, format_ms, format_rate

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from netkit.render.output import Output

ServeSummary = TcpServeSummary | UdpServeSummary


def print_ready(out: Output, address: str) -> None:
    """The ready line: the one thing printed even with ``-q`` (a script learns the port from it)."""
    out.stderr.write(f"listening on {address}\n")
    out.stderr.flush()


def print_tls_certificate(out: Output, ephemeral: bool, fingerprint_sha256: str) -> None:
    """Shown even with ``-q``, like the ready line: a client needs it to pin the certificate."""
    kind = "ephemeral self-signed certificate" if ephemeral else "certificate"
    out.stderr.write(f"TLS {kind}, SHA-256 fingerprint {fingerprint_sha256}\n")
    out.stderr.flush()


def print_event(out: Output, event: Mapping[str, Any]) -> None:
    """One server event: a jsonl line, or (table) a readable line; json/csv show the summary only."""
    if out.format == "jsonl":
        out.jsonl(event)
    elif out.format == "table" and event["event"] != "listening":
        out.line(event_line(event))


def event_line(event: Mapping[str, Any]) -> str:
    """``12:00:00.123 close  #3 127.0.0.1:5000 in 1.50 KiB, out 1.50 KiB, 2.10 ms, eof``.

    Every value a peer could have chosen goes through ``safe_text``: the line is inert on a terminal.
    """
    t = str(event.get("time", ""))[11:23]
    kind = str(event["event"])
    peer = safe_text(str(event.get("peer", "")))
    if kind == "open":
        return f"{t} open   #{event['id']} {peer}"
    who = f"#{event['id']} " if event.get("id") is not None else ""
    if kind == "close":
        return (f"{t} close  {who}{peer} in {format_bytes(event['bytes_in'])}, "
                f"out {format_bytes(event['bytes_out'])}, {_elapsed(event['duration_ms'])}, "
                f"{safe_text(str(event['reason']))}")
    if kind == "limit":
        name = safe_text(str(event["limit"]))
        why = f" ({safe_text(str(event['reason']))})" if event.get("reason") else ""
        value = event.get("value")
        bound = f", limit {_limit_value(str(event.get('reason') or name), value)}" if value is not None else ""
        count = f", {format_count(event['count'])} so far" if event.get("count") else ""
        return f"{t} limit  {who}{peer} {name}{why}{bound}{count}"
    if kind == "datagram":
        preview = safe_text(str(event.get("preview", "")))
        return f"{t} {peer} {format_bytes(event['size'])}" + (f" {preview}" if preview else "")
    if kind == "session":
        what = [_SESSION_KINDS.get(str(event.get("kind")), safe_text(str(event.get("kind"))))]
        if event.get("direction") is not None:
            what.append(safe_text(str(event["direction"])))
        if event.get("bytes") is not None:
            what.append(format_bytes(event["bytes"]))
        if event.get("requests") is not None:
            what.append(f"{format_count(event['requests'])} requests")
        if event.get("cut"):
            what.append(f"cut at {safe_text(str(event['cut']))}")
        return f"{t} session {who}{what[0]}" + "".join(f", {w}" for w in what[1:])
    rest = " ".join(f"{safe_text(str(k))}={_value(v)}" for k, v in event.items() if k not in ("event", "time"))
    return f"{t} {safe_text(kind)} {rest}".rstrip()


#: How a session's kind reads in a line (the jsonl ``kind`` values stay as they are).
_SESSION_KINDS = {"throughput": "throughput", "requests": "request/response"}


def _elapsed(ms: float) -> str:
    """Milliseconds below a second (``0.412 ms``, ``812 ms``), then a duration (``33m54s``)."""
    return format_ms(ms) if ms < 1000 else format_duration(ms / 1000)


#: Limits whose value is a size in bytes, and those that are seconds.
_SIZE_LIMITS = ("max_bytes", "max_request", "max_packet", "amplification_bytes")
_TIME_LIMITS = ("idle_timeout", "max_duration", "min_interval")


def _limit_value(which: str, value: Any) -> str:
    """A limit's value in its unit; ``which`` is the limit (or, for a guard's counter, its reason)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if which in _SIZE_LIMITS:
            return format_bytes(value)
        if which in _TIME_LIMITS:
            return format_duration(float(value))
        if which == "per-source":
            return format_rate(float(value), "per s")
    return _value(value)


def _value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".")
    if isinstance(v, int):
        return format_count(v)
    return safe_text(str(v))


def _counts(counters: Mapping[str, int]) -> str:
    """The counters that are not zero, ``max_conns 3, idle_timeout 1``; ``none`` when all are."""
    shown = [f"{safe_text(str(k))} {format_count(v)}" for k, v in counters.items() if v]
    return ", ".join(shown) or "none"


def summary_rows(summary: ServeSummary, events_dropped: int | None = None) -> list[tuple[str, str]]:
    """The summary as (label, value) pairs for people; labels are the JSON names, spaced."""
    rows: list[tuple[str, str]] = [("address", format_host_port(summary.host, summary.port)),
                                   ("mode", summary.mode)]
    if isinstance(summary, TcpServeSummary):
        rows += [
            ("tls", "yes" if summary.tls else "no"),
            ("connections", format_count(summary.connections)),
            ("peak concurrent", format_count(summary.peak_concurrent)),
            ("sessions", format_count(summary.sessions)),
            ("bytes in", format_bytes(summary.bytes_in)),
            ("bytes out", format_bytes(summary.bytes_out)),
            ("errors", format_count(summary.errors)),
        ]
        if summary.tls:
            rows.append(("tls handshakes failed", format_count(summary.tls_handshake_failed)))
        rows.append(("limits hit", _counts(summary.limits_hit)))
    else:
        rows += [
            ("datagrams in", format_count(summary.datagrams)),
            ("bytes in", format_bytes(summary.bytes_in)),
            ("datagrams out", format_count(summary.datagrams_out)),
            ("bytes out", format_bytes(summary.bytes_out)),
            ("senders", format_count(summary.senders)),
            ("errors", format_count(summary.errors)),
        ]
        if summary.mode == "echo" or summary.reflector:
            rows.append(("reflector", _counts(summary.reflector)))
    rows += [("elapsed", format_duration(summary.elapsed_ms / 1000)),
             ("stopped by", summary.stopped_by or "-")]
    if events_dropped:
        rows.append(("events dropped", format_count(events_dropped)))
    return rows


def summary_table(summary: ServeSummary, *, width: int | None, title: str,
                  events_dropped: int | None = None) -> Table:
    from netkit.render.tables import Col, fitted_table

    cols = [Col("field"), Col("value", fold=True)]
    return fitted_table(cols, summary_rows(summary, events_dropped), width=width, title=title)


def summary_record(summary: ServeSummary, events_dropped: int | None = None) -> dict[str, Any]:
    """The published summary: the dataclass's fields, then ``events_dropped`` when stdout was queued."""
    from netkit.render.output import to_jsonable

    record: dict[str, Any] = to_jsonable(summary)
    if events_dropped is not None:
        record["events_dropped"] = events_dropped
    return record


def print_summary(out: Output, summary: ServeSummary, title: str, events_dropped: int | None = None) -> None:
    record = summary_record(summary, events_dropped)
    if out.format == "jsonl":
        out.jsonl({"event": "summary", **record})
        return
    out.emit(record, table=lambda: summary_table(summary, width=out.width, title=title,
                                                 events_dropped=events_dropped),
             rows=[record])


__all__ = ["event_line", "print_event", "print_ready", "print_summary", "print_tls_certificate",
           "summary_record", "summary_rows", "summary_table"]
