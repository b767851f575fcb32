"""Configuration and result models for ``netkit serve tcp|udp`` (pure: no sockets, no clock).

The summaries are what a server returns when it stops; the CLI renders them and the JSON field
names are the dataclass field names (documented in README, "netkit serve").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from netkit.core.keyed import Key
from netkit.core.limits import Limits

#: Where a server's events go (``{"event": kind, "time": ISO-8601, **fields}``, JSON values only).
ServerEventSink = Callable[[dict[str, Any]], None]

class TcpMode(str, Enum):
    """What ``serve tcp`` does with a plain client's bytes (``--mode``)."""

    ECHO = "echo"  # send them back
    DISCARD = "discard"  # read and drop
    SOURCE = "source"  # ignore them and write a pattern as fast as the client reads
    REPLY = "reply"  # answer each received chunk with ``--reply``


class UdpMode(str, Enum):
    """What ``serve udp`` does with a datagram (``--mode``)."""

    SHOW = "show"  # a ``datagram`` event, no answer
    ECHO = "echo"  # through the reflector, back to its sender


TCP_MODES = tuple(m.value for m in TcpMode)
UDP_MODES = tuple(m.value for m in UdpMode)
DEFAULT_REPLY = "Message received"

class CloseReason(str, Enum):
    """Why a connection ended, as the ``close`` event's ``reason`` names it (the value is published)."""

    EOF = "eof"  # the client closed cleanly
    RESET = "reset"  # a reset or a broken pipe
    ERROR = "error"
    IDLE_TIMEOUT = "idle-timeout"
    MAX_BYTES = "max-bytes"
    SERVER_STOP = "server-stop"
    SESSION = "session"
    TLS_HANDSHAKE = "tls-handshake"
    MAX_REQUEST = "max-request"
    AMPLIFICATION = "amplification"
    REJECTED_BY_KEY = "rejected-by-key"  # a plain client on a keyed server


#: Reasons a connection ends, as they appear in ``close`` events.
CLOSE_REASONS = tuple(r.value for r in CloseReason)
#: Limits a server counts in ``limits_hit``.
LIMITS = ("max_conns", "idle_timeout", "max_bytes", "max_request", "amplification")

KiB = 1024
MiB = 1024 * 1024
#: ``--max-request``: the largest request or reply body a request session accepts.
DEFAULT_MAX_REQUEST = MiB
#: A request session's bytes out never exceed this multiple of its bytes in, plus one
#: ``--max-request`` reply and the ack (the README states this bound).
REQUEST_AMPLIFICATION = 256
#: The largest write a throughput source makes, whatever block size the client announces.
MAX_SOURCE_BLOCK = MiB
#: A throughput source queues at most this much beyond the kernel. Measured on loopback (reverse,
#: 1 MiB blocks, 4 rounds): 4 MiB gave 18.5-26.0 Gbit/s, 1 MiB 21.9-23.5: the kernel's own send
#: buffer keeps the pipe full, a larger queue only costs memory (over TLS about 8 MB per connection).
MAX_SOURCE_BUFFER = MiB
#: TLS: a handshake not done in this long, or a close_notify exchange, is abandoned.
TLS_HANDSHAKE_TIMEOUT_S = 5.0
TLS_SHUTDOWN_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class TcpServerConfig:
    """What ``serve tcp`` does. ``None`` for a limit means no limit."""

    host: str = "127.0.0.1"
    port: int = 8000
    mode: TcpMode | str = TcpMode.ECHO  # a plain string ("echo") is turned into its TcpMode
    reply: bytes = DEFAULT_REPLY.encode()
    max_conns: int | None = 1024
    idle_timeout: float | None = 300.0  # seconds without a byte in either direction
    max_bytes: int | None = None  # bytes in + out per connection
    once: bool = False
    #: Write-buffer high-water mark per connection: above it the server stops reading from that
    #: client (echo, reply) or stops producing (source) until the buffer drains.
    high_water: int = 256 * 1024
    backlog: int = 1024
    #: ``--max-request``: largest request frame body, and largest reply body, of a request session.
    max_request: int = DEFAULT_MAX_REQUEST
    #: Receive threads shared by plain-TCP throughput sinks (the rest are served on the event loop).
    sink_threads: int = 4
    #: ``--tls``: serve TLS with ``tls_cert``/``tls_key`` (PEM files), or an ephemeral self-signed
    #: certificate when they are None.
    tls: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    #: ``--key`` (derived) and the limits a client cannot raise; with neither, no guard is run.
    key: Key | None = None
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.mode not in TCP_MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        object.__setattr__(self, "mode", TcpMode(self.mode))


@dataclass(frozen=True)
class UdpServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    mode: UdpMode | str = UdpMode.SHOW  # a plain string ("show") is turned into its UdpMode
    preview: int = 64  # characters of escaped preview per datagram
    max_senders: int = 1_000_000  # bound on the distinct-sender set
    #: ``--key`` (derived) and the limits: they guard the reflector (echo mode); with neither, none.
    key: Key | None = None
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.mode not in UDP_MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        object.__setattr__(self, "mode", UdpMode(self.mode))


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
    tls_handshake_failed: int = 0  # TLS handshakes that failed or timed out (also in ``errors``)


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


def close_reason(exc: BaseException | None) -> tuple[CloseReason, str | None]:
    """(reason, error) of a connection that ended with ``exc`` (``connection_lost``'s argument):
    ``eof`` for a clean close, ``reset`` for a reset or broken pipe, else ``error`` and its text."""
    if exc is None:
        return CloseReason.EOF, None
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return CloseReason.RESET, None
    return CloseReason.ERROR, f"{type(exc).__name__}: {exc}"


def output_room(max_bytes: int | None, bytes_in: int, bytes_out: int) -> int | None:
    """Bytes a connection may still send under ``--max-bytes`` (in + out); None: no limit."""
    if max_bytes is None:
        return None
    return max(0, max_bytes - bytes_in - bytes_out)


def reply_credit(bytes_in: int, bytes_out: int, max_request: int) -> int:
    """Bytes a request session may still send under its amplification bound:
    ``out <= REQUEST_AMPLIFICATION x in + max_request + 16`` (one largest reply, its header and the ack)."""
    return max(0, REQUEST_AMPLIFICATION * bytes_in + max_request + 16 - bytes_out)


def ms(ns: int) -> float:
    """Nanoseconds to milliseconds, rounded to microseconds for output."""
    return round(ns / 1e6, 3)
