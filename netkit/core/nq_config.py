"""The responsiveness test's configuration document (the ``/.well-known/nq`` JSON object).

The IETF IPPM responsiveness draft defines it: ``version`` (1), ``urls`` with ``large_download_url``,
``small_download_url`` and ``upload_url`` (http or https, all on one host so they can share one
connection), and an optional ``test_endpoint`` (a host name to connect to instead of the URLs' host).
A document that breaks any of those rules is ignored whole, so :func:`parse_nq_config` refuses it with
the rule it broke; names it does not know are ignored, as the draft asks of clients.

Pure: the client fetches the bytes and the server serves what :func:`build_nq_config` returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from netkit.core.errors import InputError

WELL_KNOWN_PATH = "/.well-known/nq"
# The paths `netkit serve responsiveness` answers on (Apple's server and goresponsiveness use the same
# shape: one large object, one 1-byte object, one upload sink).
LARGE_PATH = "/large"
SMALL_PATH = "/small"
UPLOAD_PATH = "/upload"
MAX_CONFIG_BYTES = 64 * 1024  # a config document is a few hundred bytes; more is not one
_URL_KEYS = ("large_download_url", "small_download_url", "upload_url")


@dataclass(frozen=True)
class HttpUrl:
    """An http(s) URL taken apart: what a client needs to connect and to form a request."""

    scheme: str  # "http" or "https"
    host: str  # no brackets around an IPv6 literal
    port: int
    target: str  # path and query, as sent on the request line ("/large")

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def authority(self) -> str:
        """Host[:port] for the Host header / :authority (the port left out when it is the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


def parse_url(text: str, *, what: str = "URL") -> HttpUrl:
    """An http:// or https:// URL, or InputError naming what is wrong with it."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise InputError(f"{what} {text!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InputError(f"{what} {text!r} must start with http:// or https://")
    if not parts.hostname:
        raise InputError(f"{what} {text!r} has no host")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return HttpUrl(scheme, parts.hostname, port if port is not None else (443 if scheme == "https" else 80), target)


@dataclass(frozen=True)
class NqConfig:
    """A valid configuration document: the three test URLs and where to connect."""

    large_download_url: HttpUrl
    small_download_url: HttpUrl
    upload_url: HttpUrl
    test_endpoint: str | None = None

    @property
    def connect_host(self) -> str:
        """Where the client connects: ``test_endpoint`` when given, else the URLs' host."""
        return self.test_endpoint or self.large_download_url.host


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InputError(f"the configuration names {key!r} more than once")
        seen[key] = value
    return seen


def parse_nq_config(document: bytes | str) -> NqConfig:
    """Check a configuration document by the draft's rules; InputError names the first rule broken."""
    if len(document) > MAX_CONFIG_BYTES:
        raise InputError(f"the configuration is over {MAX_CONFIG_BYTES // 1024} KiB: not a responsiveness config")
    try:
        obj = json.loads(document, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"the configuration is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InputError("the configuration is not a JSON object")
    version = obj.get("version")
    if version != 1 or isinstance(version, bool):
        raise InputError(f"the configuration's version is {version!r}: netkit reads version 1")
    urls = obj.get("urls")
    if not isinstance(urls, dict):
        raise InputError("the configuration has no \"urls\" object")
    parsed: dict[str, HttpUrl] = {}
    for key in _URL_KEYS:
        value = urls.get(key)
        if not isinstance(value, str):
            raise InputError(f"the configuration has no {key}")
        parsed[key] = parse_url(value, what=key)
    hosts = {u.host.lower() for u in parsed.values()}
    if len(hosts) != 1:
        raise InputError("the configuration's URLs name different hosts (the draft requires one)")
    endpoint = obj.get("test_endpoint")
    if endpoint is not None and (not isinstance(endpoint, str) or not endpoint.strip()):
        raise InputError("the configuration's test_endpoint is not a host name")
    return NqConfig(parsed["large_download_url"], parsed["small_download_url"], parsed["upload_url"],
                    endpoint.strip() if isinstance(endpoint, str) else None)


def build_nq_config(base: str, *, test_endpoint: str | None = None) -> bytes:
    """The document a server at ``base`` (``https://host:port``) serves at :data:`WELL_KNOWN_PATH`."""
    root = base.rstrip("/")
    obj: dict[str, Any] = {
        "version": 1,
        "urls": {
            "large_download_url": root + LARGE_PATH,
            "small_download_url": root + SMALL_PATH,
            "upload_url": root + UPLOAD_PATH,
        },
    }
    if test_endpoint is not None:
        obj["test_endpoint"] = test_endpoint
    return json.dumps(obj, indent=2).encode() + b"\n"


def config_url_for(url: HttpUrl) -> HttpUrl:
    """The config document's URL for what a user typed: a bare ``https://host:port`` (or ``/``) means
    the well-known path; any other path is taken as the document's own URL."""
    if url.target in ("", "/"):
        return HttpUrl(url.scheme, url.host, url.port, WELL_KNOWN_PATH)
    return url


__all__ = [
    "LARGE_PATH",
    "MAX_CONFIG_BYTES",
    "SMALL_PATH",
    "UPLOAD_PATH",
    "WELL_KNOWN_PATH",
    "HttpUrl",
    "NqConfig",
    "build_nq_config",
    "config_url_for",
    "parse_nq_config",
    "parse_url",
]
