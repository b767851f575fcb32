"""What one ``netkit measure dns`` run does (pure data): the names, the servers, how to ask them.

A server is ``ADDR``, ``ADDR:PORT`` or ``[V6]:PORT`` (:func:`parse_server`); without ``--server``
the CLI reads the system resolver's ``nameserver`` lines (:func:`resolv_conf_servers`). Every query
goes to every server: queries go out one at a time, round by round (each round asks each server
each name), so servers compared side by side see the same load at the same moments.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from netkit.core.dns_wire import DEFAULT_EDNS_SIZE, QTYPES

#: Ports of the transports when a server gives none.
DEFAULT_PORTS = {"udp": 53, "tcp": 53, "tls": 853, "https": 443}
#: Servers compared in one run (each is one row per name).
MAX_SERVERS = 16
#: Queries in one run (rounds x servers x names): each is kept for the statistics and the json.
MAX_QUERIES = 100_000


class Transport(str, enum.Enum):
    """How queries travel: ``udp`` (a truncated answer is asked again over TCP), ``tcp``, ``tls`` (DoT),
    ``https`` (DoH)."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"
    HTTPS = "https"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class DnsServer:
    """One server: an IP address literal and a port."""

    host: str
    port: int

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_server(text: str, default_port: int) -> DnsServer:
    """``ADDR``, ``ADDR:PORT``, ``[V6]`` or ``[V6]:PORT`` (an IP address: a resolver is asked by
    address, never by a name that would itself need resolving)."""
    text = text.strip()
    host, port_text = text, ""
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if m:
        host, port_text = m.group(1), m.group(2) or ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"server {text!r}: give an IP address (ADDR, ADDR:PORT or [V6]:PORT)") from None
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"server {text!r}: port {port_text!r} is not within 1..65535")
        port = int(port_text)
    return DnsServer(addr.compressed, port)


def resolv_conf_servers(text: str, default_port: int) -> tuple[DnsServer, ...]:
    """The ``nameserver`` lines of a resolv.conf's ``text`` (an IPv6 ``%zone`` is dropped)."""
    servers: list[DnsServer] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                server = parse_server(fields[1].split("%")[0], default_port)
            except ValueError:
                continue
            if server not in servers:
                servers.append(server)
    return tuple(servers[:MAX_SERVERS])


@dataclass(frozen=True)
class DnsConfig:
    """What ``measure dns`` does."""

    names: tuple[str, ...]
    servers: tuple[DnsServer, ...]
    qtype: str = "A"
    transport: Transport = Transport.UDP
    count: int = 1  # rounds: each asks every server every name
    interval_s: float = 0.2  # between rounds
    timeout_s: float = 2.0  # each query (with its TCP retry) ends within this
    edns_size: int = DEFAULT_EDNS_SIZE  # 0: no EDNS
    tls_server_name: str | None = None  # DoT/DoH: the name the certificate must hold (None: no check of it)
    doh: tuple[str, str] | None = None  # DoH: the URL's authority (the Host header) and path
    doh_get: bool = False  # DoH: GET with the query in the URL (id 0, cacheable) instead of POST
    http1_only: bool = False  # DoH: offer only HTTP/1.1 by ALPN (default: HTTP/2 when the server has it)

    def __post_init__(self) -> None:
        object.__setattr__(self, "transport", Transport(self.transport))
        if not self.names:
            raise ValueError("give at least one name")
        if not self.servers:
            raise ValueError("no server to ask")
        if len(self.servers) > MAX_SERVERS:
            raise ValueError(f"at most {MAX_SERVERS} servers at once")
        if self.qtype not in QTYPES:
            raise ValueError(f"unknown query type {self.qtype!r}")
        if self.count < 1:
            raise ValueError("--count is at least 1")
        if self.count * len(self.servers) * len(self.names) > MAX_QUERIES:
            raise ValueError(f"at most {MAX_QUERIES:,} queries in a run (--count x servers x names)")
        if self.timeout_s <= 0 or self.interval_s < 0:
            raise ValueError("the timeout must be positive and the interval not negative")
        if (self.transport is Transport.HTTPS) != (self.doh is not None):
            raise ValueError("DNS over HTTPS needs its URL")
        if (self.doh_get or self.http1_only) and self.transport is not Transport.HTTPS:
            raise ValueError("--doh-get and --http1.1 go with --https")
        if self.edns_size != 0 and not 512 <= self.edns_size <= 65535:
            raise ValueError("--edns-size is 0 (no EDNS) or within 512..65535")


def parse_doh_url(url: str) -> tuple[str, int, str, str]:
    """``https://HOST[:PORT]/PATH`` -> (host, port, authority, path); the host as written (an address
    or a name: the caller decides where to connect)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError as e:
        raise ValueError(f"--https {url!r}: {e}") from None
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"--https {url!r}: give an https:// URL (RFC 8484), e.g. https://198.18.0.53/dns-query")
    path = (parts.path or "/dns-query") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, parts.netloc.rsplit("@", 1)[-1], path
