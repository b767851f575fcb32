"""``netkit serve responsiveness``: what the server is asked to do, what it decides, what it did.

The responsiveness draft's server answers four URLs (:mod:`netkit.core.nq_config` names the paths):
the configuration document, an endless ``/large`` object, a 1-byte ``/small`` object and an
``/upload`` sink. Everything here is pure: the routing of a request, the host written into the
configuration document, the limits (the server's own, never a client's announcement), and the
connection and server summaries the I/O layer fills in.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum

from netkit.core.nq_config import LARGE_PATH, SMALL_PATH, UPLOAD_PATH, WELL_KNOWN_PATH, build_nq_config

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: The size /large announces (Content-Length): the draft asks for at least 8 GB, and a loopback
#: link moves 8 GB in about two seconds, so it is 1 TiB: a connection's lifetime cap ends it first.
LARGE_SIZE = 1 << 40
#: The one byte of /small.
SMALL_BODY = b"x"
TLS_HANDSHAKE_TIMEOUT_S = 5.0


class Route(str, Enum):
    """What a request asks for."""

    CONFIG = "config"
    LARGE = "large"
    SMALL = "small"
    UPLOAD = "upload"
    NOT_FOUND = "not-found"
    BAD_METHOD = "bad-method"  # a known path with a method it does not take


ROUTES = tuple(r.value for r in Route)
_PATHS = {WELL_KNOWN_PATH: (Route.CONFIG, "GET"), LARGE_PATH: (Route.LARGE, "GET"),
          SMALL_PATH: (Route.SMALL, "GET"), UPLOAD_PATH: (Route.UPLOAD, "POST")}


def route(method: str, target: str) -> Route:
    """The route of ``method target``; a query string is ignored (clients add cache busters)."""
    path = target.split("?", 1)[0]
    known = _PATHS.get(path)
    if known is None:
        return Route.NOT_FOUND
    return known[0] if method == known[1] else Route.BAD_METHOD


def allowed_method(r: Route, target: str) -> str:
    """The one method a known path takes (the ``Allow`` header of a 405)."""
    known = _PATHS.get(target.split("?", 1)[0])
    return known[1] if known else "GET"


class ConnEnd(str, Enum):
    """Why a connection ended (the ``reason`` of a ``close`` event)."""

    EOF = "eof"  # the client closed
    RESET = "reset"
    ERROR = "error"
    PROTOCOL = "protocol-error"  # garbage, or a frame or request the protocol forbids
    IDLE_TIMEOUT = "idle-timeout"
    MAX_DURATION = "max-duration"  # the connection's lifetime cap
    MAX_UPLOAD = "max-upload"  # an HTTP/1.1 upload over the cap (HTTP/2 resets the stream only)
    WRITE_BUFFER = "write-buffer"  # a client that does not read made the server queue too much
    TLS_HANDSHAKE = "tls-handshake"
    SERVER_STOP = "server-stop"
    DONE = "done"  # the server finished (a /large object sent whole)


CONN_ENDS = tuple(e.value for e in ConnEnd)
#: The limits the server counts (``limits_hit``).
LIMITS = ("max_conns", "max_conns_per_ip", "denied", "max_streams", "max_upload", "max_duration",
          "idle_timeout", "write_buffer", "max_header")


def empty_limits() -> dict[str, int]:
    return dict.fromkeys(LIMITS, 0)


@dataclass(frozen=True)
class NqServerConfig:
    """What ``netkit serve responsiveness`` does. None for a limit means no limit."""

    host: str = "127.0.0.1"
    port: int = 4443
    tls: bool = True
    tls_cert: str | None = None
    tls_key: str | None = None
    cert_out: str | None = None  # write the ephemeral certificate here (a client's --cafile)
    url_host: str | None = None  # the host the configuration's URLs name (default: as the client asked)
    test_endpoint: str | None = None  # the document's optional test_endpoint
    max_conns: int | None = 1024
    max_conns_per_ip: int | None = 256
    max_streams: int = 100  # HTTP/2 concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS)
    max_upload: int | None = 64 * GiB  # bytes one upload request may send
    max_duration_s: float | None = 120.0  # the longest any connection may live
    idle_timeout_s: float | None = 10.0  # no byte either way this long ends a connection
    max_header_bytes: int = 16 * KiB  # a request's header block, at most
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    #: The most a connection holds written but unsent, the top of what each sizes from its own rate
    #: (about 5 ms of it, as the draft advises: see the server's adapt_unsent): its transport's
    #: pause mark and its largest write. A fast connection uses all of it.
    high_water: int = 256 * KiB
    #: The top of each connection's TCP_NOTSENT_LOWAT (the kernel's share of the above). At 1 Gbit/s
    #: 128 KiB is about 1 ms, enough to keep the link busy between two turns of the loop. Unset, the
    #: kernel lets several MiB wait in front of a probe's answer.
    notsent_lowat: int = 128 * KiB
    #: Written data a connection may hold queued in all (the hard cap, beyond high_water: control
    #: frames a client provokes while not reading); over it the connection is cut.
    max_write_buffer: int = 4 * MiB


_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?")


def is_host_text(text: str) -> bool:
    """A host name or IP literal fit for a URL (the Host a client sent is only used if it is)."""
    if not text or len(text) > 253:
        return False
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    return _HOSTNAME.fullmatch(text) is not None


def authority_host(authority: str) -> str | None:
    """The host part of a Host header or ``:authority`` (``[::1]:443`` -> ``::1``), or None when it
    is not a plain host."""
    a = authority.strip()
    if a.startswith("["):
        end = a.find("]")
        host = a[1:end] if end > 0 else ""
    else:
        host = a.rsplit(":", 1)[0] if a.count(":") == 1 else a
    return host if is_host_text(host) else None


def url_host(cfg: NqServerConfig, bound_host: str, authority: str | None) -> str:
    """The host the configuration document's URLs name: ``--url-host``, else the one the client
    used to reach this server (so its certificate check and connections go to the same name),
    else the bound address (``localhost`` for a wildcard bind)."""
    if cfg.url_host:
        return cfg.url_host
    if authority:
        host = authority_host(authority)
        if host is not None:
            return host
    if bound_host in ("0.0.0.0", "::", ""):
        return "localhost"
    return bound_host


def base_url(tls: bool, host: str, port: int) -> str:
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    default = 443 if tls else 80
    return f"{scheme}://{shown}" if port == default else f"{scheme}://{shown}:{port}"


def config_document(cfg: NqServerConfig, tls: bool, port: int, host: str) -> bytes:
    """The configuration document this server answers with, for a client that reached it as ``host``."""
    return build_nq_config(base_url(tls, host, port), test_endpoint=cfg.test_endpoint)


def upload_over(cap: int | None, received: int) -> bool:
    return cap is not None and received > cap


@dataclass(frozen=True)
class NqConnSummary:
    """One connection as the server saw it (the ``close`` event's fields)."""

    id: int
    peer: str
    protocol: str  # h2, h2c, http/1.1, or "-" when it ended before speaking HTTP
    tls: bool
    requests: int
    bytes_in: int
    bytes_out: int
    duration_ms: float
    reason: str  # a ConnEnd value
    large: int = 0  # /large requests
    uploads: int = 0  # /upload requests
    error: str | None = None

    @property
    def carried_load(self) -> bool:
        return self.large > 0 or self.uploads > 0


@dataclass(frozen=True)
class NqServeSummary:
    """What ``netkit serve responsiveness`` did between its start and its stop."""

    host: str
    port: int
    tls: bool
    config_url: str
    connections: int
    peak_concurrent: int
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROUTES, 0))
    protocols: dict[str, int] = field(default_factory=dict)  # connections per protocol
    bytes_in: int = 0
    bytes_out: int = 0
    errors: int = 0  # protocol errors, failed TLS handshakes
    limits_hit: dict[str, int] = field(default_factory=empty_limits)
    elapsed_ms: float = 0.0
    stopped_by: str | None = None


__all__ = [
    "CONN_ENDS",
    "LARGE_SIZE",
    "LIMITS",
    "ROUTES",
    "SMALL_BODY",
    "ConnEnd",
    "NqConnSummary",
    "NqServeSummary",
    "NqServerConfig",
    "Route",
    "allowed_method",
    "authority_host",
    "base_url",
    "config_document",
    "empty_limits",
    "is_host_text",
    "route",
    "upload_over",
    "url_host",
]
