"""``netkit measure http``: what to request, how often, and what to check.

Pure: the options a person gave, checked and taken apart (URLs, ``--resolve`` entries, the status
classes of ``--expect-status``), as frozen dataclasses the I/O layer reads.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from netkit.core.errors import InputError
from netkit.core.nq_config import HttpUrl, parse_url

DEFAULT_COUNT = 10
MAX_DATA = 60 * 1024  # a request body fits HTTP/2's initial flow-control window (64 KiB - 1)
#: Body bytes kept for ``--expect-body`` (the rest is counted only): memory stays bounded.
BODY_KEEP = 64 * 1024
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")


@dataclass(frozen=True)
class StatusSpec:
    """``--expect-status 2xx,301``: status classes (2 for 2xx) and single codes."""

    classes: frozenset[int] = frozenset({2})
    codes: frozenset[int] = frozenset()
    text: str = "2xx"

    def matches(self, status: int) -> bool:
        return status in self.codes or status // 100 in self.classes


def parse_status_spec(text: str) -> StatusSpec:
    classes: set[int] = set()
    codes: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        if re.fullmatch(r"[1-5]xx", part):
            classes.add(int(part[0]))
        elif re.fullmatch(r"[1-5][0-9][0-9]", part):
            codes.add(int(part))
        else:
            raise InputError(f"--expect-status {text!r}: {part!r} is not a status (200) or a class (2xx)")
    return StatusSpec(frozenset(classes), frozenset(codes), ",".join(p.strip() for p in text.split(",")))


@dataclass(frozen=True)
class ResolveEntry:
    """``--resolve HOST:PORT:ADDR`` (as curl): connect to ADDR for HOST:PORT, no name lookup."""

    host: str
    port: int
    addr: str


def parse_resolve(text: str) -> ResolveEntry:
    host, sep, rest = text.partition(":")
    port_s, sep2, addr = rest.partition(":")
    addr = addr.strip("[]")
    if not sep or not sep2 or not host or not addr or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise InputError(f"--resolve {text!r}: expected HOST:PORT:ADDR (e.g. example.com:443:127.0.0.1)")
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise InputError(f"--resolve {text!r}: {addr!r} is not an IP address") from None
    return ResolveEntry(host.lower(), int(port_s), addr)


@dataclass(frozen=True)
class HttpChecks:
    """The checks of a run (blackbox_exporter's prober has the same ones); None: not checked."""

    expect_status: StatusSpec | None = None
    expect_body: str | None = None  # a regular expression searched in the body's first BODY_KEEP bytes
    max_total_ms: float | None = None
    min_cert_days: float | None = None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.expect_status, self.expect_body, self.max_total_ms,
                                           self.min_cert_days))


def compile_body_regex(pattern: str) -> re.Pattern[bytes]:
    try:
        return re.compile(pattern.encode())
    except re.error as exc:
        raise InputError(f"--expect-body {pattern!r} is not a regular expression: {exc}") from None


@dataclass(frozen=True)
class HttpConfig:
    """One ``measure http`` run."""

    urls: tuple[HttpUrl, ...]
    count: int | None = DEFAULT_COUNT
    duration_s: float | None = None
    interval_s: float = 0.0
    concurrency: int = 1
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    data: bytes | None = None
    http_version: str = "auto"  # "auto" (ALPN h2 then http/1.1), "1.1", "2"
    new_connection: bool = False
    resolve: tuple[ResolveEntry, ...] = ()
    insecure: bool = False
    cafile: str | None = None
    max_redirs: int = 0
    family: int = 0
    timeout_s: float = 10.0
    checks: HttpChecks = field(default_factory=HttpChecks)

    def resolved(self, host: str, port: int) -> str | None:
        for r in self.resolve:
            if r.host == host.lower() and r.port == port:
                return r.addr
        return None


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
        raise InputError(f"-H {text!r}: expected 'Name: value'")
    if "\r" in value or "\n" in value:
        raise InputError(f"-H {text!r}: a header value cannot hold a line break")
    return name, value.strip()


def parse_urls(texts: tuple[str, ...] | list[str]) -> tuple[HttpUrl, ...]:
    return tuple(parse_url(t) for t in texts)


__all__ = [
    "BODY_KEEP",
    "DEFAULT_COUNT",
    "MAX_DATA",
    "METHODS",
    "HttpChecks",
    "HttpConfig",
    "ResolveEntry",
    "StatusSpec",
    "compile_body_regex",
    "parse_header",
    "parse_resolve",
    "parse_status_spec",
    "parse_urls",
]
