"""Target syntax shared by every command: ``HOST:PORT``, ``[v6]:PORT``, port lists and ranges.

Pure parsing: no name resolution here. A hostname is checked for shape only (RFC 1123 labels,
or an IP literal); whether it resolves is the I/O layer's business.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from netkit.core.errors import InputError, UsageError

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
MAX_PORTS_PER_SPEC = 65535


@dataclass(frozen=True, slots=True)
class Target:
    """One host and one port, as the user wrote the host (not yet resolved)."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


def format_host_port(host: str, port: int) -> str:
    """``host:port``, with IPv6 literals bracketed: ``[::1]:8000``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_sockaddr(addr: object) -> str:
    """A socket address as a person reads it (``[::1]:8000``); ``?`` when there is none."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return format_host_port(str(addr[0]), int(addr[1]))
    return str(addr) if addr else "?"


def is_ip_literal(host: str) -> bool:
    """An IP address as written, IPv6 zone allowed (no lookup happens for it, so no resolution time)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


#: Ports that a URL's scheme implies when it names none (for the hint only).
_SCHEME_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "ssh": 22, "smtp": 25,
                 "imap": 143, "imaps": 993, "ldap": 389, "ldaps": 636, "redis": 6379, "postgres": 5432,
                 "postgresql": 5432, "mysql": 3306, "mongodb": 27017, "amqp": 5672, "dns": 53}


def _url_hint(text: str) -> str:
    """``invalid target 'http://h:8080/x': a URL is not a target; give HOST:PORT, e.g. h:8080``."""
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    port = port if port is not None else _SCHEME_PORTS.get(parts.scheme.lower()) if host else None
    example = f", e.g. {format_host_port(host, port)}" if host and port else ""
    return f"invalid target {text!r}: a URL is not a target; give HOST:PORT{example}"


def validate_host(host: str) -> str:
    """Return ``host`` (IPv6 brackets and zone kept as written) or raise ``InputError``."""
    if not host:
        raise InputError("empty host")
    if len(host) > 253:
        raise InputError(f"invalid host {host[:40]!r}...: longer than 253 characters")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare.split("%", 1)[0])
        if "%" in bare and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", bare.split("%", 1)[1]):
            raise InputError(f"invalid host {host!r}: bad IPv6 zone")
        return bare
    except ValueError:
        pass
    if ":" in bare:
        raise InputError(f"invalid host {host!r}: not an IPv6 address")
    name = bare[:-1] if bare.endswith(".") else bare
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise InputError(f"invalid host {host!r}")
    if re.fullmatch(r"[0-9.]+", name):
        raise InputError(f"invalid host {host!r}: not an IPv4 address")
    return bare


def parse_port(text: str | int, *, allow_zero: bool = False) -> int:
    """A single port 1..65535 (0..65535 with ``allow_zero``: a port to listen on, 0 for a free one)."""
    s = str(text).strip()
    if not (s.isascii() and s.isdigit()):  # "²".isdigit() is True, but int("²") fails
        raise InputError(f"invalid port {text!r}: not a number")
    port = int(s)
    if allow_zero and not 0 <= port <= 65535:
        raise InputError(f"invalid port {text!r}: must be 0-65535 (0: a free one)")
    if not allow_zero and not 1 <= port <= 65535:
        raise InputError(f"invalid port {text!r}: must be 1-65535")
    return port


def parse_ports(spec: str) -> tuple[int, ...]:
    """``22,80,8000-8100`` -> ports in the order written, duplicates dropped."""
    if not spec.strip():
        raise InputError("empty port list")
    seen: dict[int, None] = {}
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            lo_s, _, hi_s = part.partition("-")
            lo, hi = parse_port(lo_s), parse_port(hi_s)
            if lo > hi:
                raise InputError(f"invalid port range {part!r}: start after end")
            for p in range(lo, hi + 1):
                seen[p] = None
        else:
            seen[parse_port(part)] = None
    return tuple(seen)


def split_host_port(text: str) -> tuple[str, str | None]:
    """Split ``HOST:PORTSPEC`` into host and the port part (None when absent).

    ``[v6]:80`` and ``[v6]`` are bracketed; a bare IPv6 literal (``::1``) has no port part.
    """
    text = text.strip()
    if not text:
        raise InputError("empty target")
    if "://" in text:
        raise InputError(_url_hint(text))
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InputError(f"invalid target {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if not rest:
            return validate_host(host), None
        if not rest.startswith(":"):
            raise InputError(f"invalid target {text!r}: expected ':' after ']'")
        return validate_host(host), rest[1:]
    if text.count(":") > 1:
        # An unbracketed IPv6 literal: no way to tell a port apart, so there is none.
        bare = text.split("%", 1)[0]
        if not is_ip_literal(bare):
            raise InputError(f"invalid target {text!r}: give HOST:PORT, or [IPV6]:PORT for an IPv6 address")
        return validate_host(text), None
    host, sep, port = text.partition(":")
    return validate_host(host), (port if sep else None)


def _no_port(text: str) -> InputError:
    """A target without a port; a bare IPv6 literal is told how to add one (``::1:22`` is an address)."""
    if text.count(":") > 1:
        return InputError(f"invalid target {text!r}: no port (an IPv6 address takes one in brackets: "
                          "[IPV6]:PORT)")
    return InputError(f"invalid target {text!r}: no port (write HOST:PORT)")


def parse_target(text: str, default_port: int | None = None) -> Target:
    """Exactly one ``HOST:PORT`` (or ``HOST`` with ``default_port``)."""
    host, port_s = split_host_port(text)
    if port_s is None:
        if default_port is None:
            raise _no_port(text)
        return Target(host, default_port)
    return Target(host, parse_port(port_s))


def parse_target_argument(text: str, default_port: int | None = None) -> Target:
    """:func:`parse_target` for a command-line argument: a bad one is a :class:`UsageError` naming it."""
    try:
        return parse_target(text, default_port)
    except InputError as exc:
        raise at_line(None, exc, text) from None


def expand_target(text: str, default_port: int | None = None) -> list[Target]:
    """``host:22,80,8000-8100`` -> one Target per port, in the order written."""
    host, port_s = split_host_port(text)
    if port_s is None:
        if default_port is None:
            raise _no_port(text)
        return [Target(host, default_port)]
    return [Target(host, p) for p in parse_ports(port_s)]


def target_from_args(args: Iterable[str]) -> Target:
    """One target from ``HOST:PORT`` or the two arguments ``HOST PORT``."""
    items = list(args)
    if len(items) == 1:
        return parse_target(items[0])
    if len(items) == 2:
        host, port_s = split_host_port(items[0])
        if port_s is not None:
            raise InputError(f"target {items[0]!r} already has a port; drop {items[1]!r}")
        return Target(host, parse_port(items[1]))
    raise InputError("expected HOST:PORT or HOST PORT")


def read_target_lines(lines: Iterable[str]) -> Iterator[str]:
    """Target texts from a file or stdin: one a line, ``#`` starts a comment, blanks skipped."""
    for _where, text in numbered_target_lines(lines, "-"):
        yield text


def numbered_target_lines(lines: Iterable[str], source: str) -> Iterator[tuple[str, str]]:
    """``(where, text)`` for every target text of a file: ``where`` is ``SOURCE:LINE`` (1-based),
    the prefix of any error about that text, so a bad line is found at once (``targets.txt:3: ...``)."""
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            for text in line.split():
                yield f"{source}:{number}", text


def at_line(where: str | None, exc: InputError, text: str | None = None) -> InputError:
    """``exc`` with ``where`` (``targets.txt:3``) in front of its message. ``where`` None is a
    command-line argument: a :class:`UsageError` that names the argument ``text`` when the message
    does not already (``invalid target 'db:x': invalid port 'x': not a number``)."""
    if where is not None:
        return InputError(f"{where}: {exc}")
    message = str(exc)
    if text is not None and repr(text) not in message:
        message = f"invalid target {text!r}: {message}"
    return UsageError(message)


def expand_texts(items: Iterable[tuple[str | None, str]]) -> Iterator[Target]:
    """Targets of ``(where, text)`` items (``where`` None for a command-line argument), lazily:
    a bad text raises ``InputError`` with its ``where`` in front (``targets.txt:3: invalid ...``)."""
    for where, text in items:
        try:
            targets = expand_target(text)  # one text: at most 65535 targets
        except InputError as exc:
            raise at_line(where, exc, text) from None
        yield from targets


def check_texts(items: Iterable[tuple[str | None, str]]) -> int:
    """Parse every text once without building its targets; returns how many texts there were."""
    count = 0
    for where, text in items:
        try:
            _host, port_s = split_host_port(text)
            if port_s is None:
                raise _no_port(text)
            parse_ports(port_s)
        except InputError as exc:
            raise at_line(where, exc, text) from None
        count += 1
    return count
