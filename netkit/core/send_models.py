"""Configuration and result models for ``netkit send tcp|udp`` (pure: no sockets, no clock)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: json output keeps at most this much of a reply (received_bytes still counts all of it).
REPLY_KEEP_BYTES = 1024 * 1024
#: send udp keeps at most this many replies in its result.
UDP_REPLIES_KEEP = 1000


@dataclass(frozen=True)
class TcpSendConfig:
    host: str
    port: int
    timeout: float = 5.0  # connect (and TLS handshake) timeout, seconds
    wait: float = 5.0  # silence after sending that ends the read, seconds
    tls: bool = False
    insecure: bool = False
    cafile: str | None = None
    server_name: str | None = None
    family: int = 0  # socket.AF_UNSPEC


@dataclass(frozen=True)
class TcpSendResult:
    """``send tcp --format json``: published fields, never renamed (new ones are only appended)."""

    target: str
    sent_bytes: int
    received_bytes: int
    connect_ms: float
    elapsed_ms: float
    reply: str  # escaped text (safe_text) of the first REPLY_KEEP_BYTES bytes
    #: Why the reply ended abnormally ("connection reset by peer after N bytes"), else None.
    error: str | None = None
    #: Stopped by SIGINT/SIGTERM/SIGHUP before the exchange ended: the figures are partial.
    interrupted: bool = False


@dataclass(frozen=True)
class UdpSendConfig:
    host: str
    port: int
    count: int = 1
    interval: float = 1.0  # seconds between datagrams
    wait: float = 0.0  # seconds to listen for replies after the last datagram (0: do not)
    family: int = 0


@dataclass(frozen=True)
class UdpReply:
    peer: str
    size: int
    elapsed_ms: float  # since the first datagram was sent
    reply: str  # escaped text


@dataclass(frozen=True)
class UdpSendResult:
    target: str
    datagrams_sent: int
    sent_bytes: int
    datagrams_received: int
    received_bytes: int
    elapsed_ms: float
    replies: list[UdpReply] = field(default_factory=list)
    error: str | None = None  # e.g. "port unreachable (nothing listening)", else null
    #: Stopped by SIGINT/SIGTERM/SIGHUP before every datagram was sent or the wait ended.
    interrupted: bool = False
