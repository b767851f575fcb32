"""Configuration and result models for ``netkit serve tcp|udp`` (pure: no sockets, no clock).

The summaries are what a server returns when it stops; the CLI renders them and the JSON field
names are the dataclass field names (documented in README, "netkit serve").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TCP_MODES = ("echo", "discard", "source", "reply")
UDP_MODES = ("show", "echo")
DEFAULT_REPLY = "Message received"

#: Reasons a connection ends, as they appear in ``close`` events.
CLOSE_REASONS = ("eof", "reset", "error", "idle-timeout", "max-bytes", "server-stop", "session")
#: Limits a server counts in ``limits_hit``.
LIMITS = ("max_conns", "idle_timeout", "max_bytes")


@dataclass(frozen=True)
class TcpServerConfig:
    """What ``serve tcp`` does. ``None`` for a limit means no limit."""

    host: str = "127.0.0.1"
    port: int = 8000
    mode: str = "echo"
    reply: bytes = DEFAULT_REPLY.encode()
    max_conns: int | None = 1024
    idle_timeout: float | None = 300.0  # seconds without a byte in either direction
    max_bytes: int | None = None  # bytes in + out per connection
    once: bool = False
    #: Write-buffer high-water mark per connection: above it the server stops reading from that
    #: client (echo, reply) or stops producing (source) until the buffer drains.
    high_water: int = 256 * 1024
    backlog: int = 1024

    def __post_init__(self) -> None:
        if self.mode not in TCP_MODES:
            raise ValueError(f"unknown mode {self.mode!r}")


@dataclass(frozen=True)
class UdpServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    mode: str = "show"
    preview: int = 64  # characters of escaped preview per datagram
    max_senders: int = 1_000_000  # bound on the distinct-sender set

    def __post_init__(self) -> None:
        if self.mode not in UDP_MODES:
            raise ValueError(f"unknown mode {self.mode!r}")


def empty_limits() -> dict[str, int]:
    return dict.fromkeys(LIMITS, 0)


@dataclass(frozen=True)
class TcpServeSummary:
    """What a TCP server did between its start and its stop."""

    host: str
    port: int
    mode: str
    tls: bool
    connections: int
    peak_concurrent: int
    bytes_in: int
    bytes_out: int
    errors: int
    limits_hit: dict[str, int] = field(default_factory=empty_limits)
    sessions: int = 0  # connections handed to a measurement session
    elapsed_ms: float = 0.0
    stopped_by: str | None = None  # "SIGINT", "SIGTERM", "once" or None


@dataclass(frozen=True)
class UdpServeSummary:
    host: str
    port: int
    mode: str
    datagrams: int
    bytes_in: int
    datagrams_out: int
    bytes_out: int
    senders: int
    errors: int
    reflector: dict[str, Any] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    stopped_by: str | None = None


def close_reason(exc: BaseException | None) -> tuple[str, str | None]:
    """(reason, error) of a connection that ended with ``exc`` (``connection_lost``'s argument):
    ``eof`` for a clean close, ``reset`` for a reset or broken pipe, else ``error`` and its text."""
    if exc is None:
        return "eof", None
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "reset", None
    return "error", f"{type(exc).__name__}: {exc}"


def ms(ns: int) -> float:
    """Nanoseconds to milliseconds, rounded to microseconds for output."""
    return round(ns / 1e6, 3)
