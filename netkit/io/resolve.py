"""Name resolution, and the one wording of a target's failure, shared by every client command.

Every command that takes a target says the same thing for the same failure, and exits 1 for it
(the target is not as required: a check failure, not a fault of this host):

- ``HOST:PORT: name not resolved (Name or service not known)`` (:class:`ResolveError`),
- ``HOST:PORT: connection refused``, ``HOST:PORT: port unreachable (nothing listening)``,
  ``HOST:PORT: connect timed out after 5s`` (:func:`failure_reason` gives the part after the colon).

Code that resolves goes through :func:`resolve` / :func:`resolve_all` / :func:`resolve_sync`; code
that lets the socket layer resolve (``socket.create_connection``) turns the ``gaierror`` into the
same error with :func:`resolve_error`.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass

from netkit.core.errors import CheckFailed
from netkit.core.targets import format_host_port

Sockaddr = tuple  # (host, port) or (host, port, flowinfo, scope_id)

REFUSED = "connection refused"
#: An ICMP port unreachable answered a datagram (reported as ECONNREFUSED on a connected socket).
PORT_UNREACHABLE = "port unreachable (nothing listening)"


@dataclass(frozen=True)
class Resolved:
    host: str
    port: int
    family: int
    sockaddr: Sockaddr
    resolve_ns: int

    @property
    def address(self) -> str:
        return str(self.sockaddr[0])


class ResolveError(CheckFailed):
    """The name did not resolve (a check failure for the target: exit 1).

    ``reason`` is the wording without the target (``name not resolved (...)``), for reports that
    show the target in a column of their own.
    """

    def __init__(self, host: str, port: int, reason: str) -> None:
        where = format_host_port(host, port) if port else host
        super().__init__(f"{where}: {reason}")
        self.host, self.port, self.reason = host, port, reason


def _is_timeout(exc: BaseException) -> bool:
    """A lookup that ran out of time. asyncio's TimeoutError is a class of its own before Python 3.11,
    and asyncio is imported only by the code that uses it (a command without it starts faster)."""
    if isinstance(exc, TimeoutError):
        return True
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(exc, aio.TimeoutError)


def not_resolved_reason(exc: BaseException, timeout: float | None = None) -> str:
    """The one wording of a failed lookup, from what getaddrinfo raised."""
    if _is_timeout(exc):
        return "name not resolved (timed out" + (f" after {timeout:g}s)" if timeout is not None else ")")
    if isinstance(exc, UnicodeError):
        return "name not resolved (invalid name)"
    if isinstance(exc, socket.gaierror):
        return f"name not resolved ({exc.strerror or exc})"
    return f"name not resolved ({exc})"


def resolve_error(host: str, port: int, exc: BaseException, timeout: float | None = None) -> ResolveError:
    """The :class:`ResolveError` for a lookup that raised ``exc`` (gaierror, UnicodeError, timeout)."""
    return ResolveError(host, port, not_resolved_reason(exc, timeout))


def failure_reason(exc: BaseException, *, udp: bool = False, timeout: float | None = None) -> str:
    """The one wording (without the target) of a failed connect, send or lookup."""
    if isinstance(exc, ResolveError):
        return exc.reason
    if isinstance(exc, (socket.gaierror, UnicodeError)):
        return not_resolved_reason(exc)
    if isinstance(exc, ConnectionRefusedError):
        return PORT_UNREACHABLE if udp else REFUSED
    if _is_timeout(exc):
        return "connect timed out" + (f" after {timeout:g}s" if timeout is not None else "")
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc)).lower()
    return str(exc)


def family_of(ipv4: bool = False, ipv6: bool = False) -> int:
    if ipv4 and not ipv6:
        return socket.AF_INET
    if ipv6 and not ipv4:
        return socket.AF_INET6
    return socket.AF_UNSPEC


def _dedupe(host: str, port: int, infos: list, elapsed: int) -> list[Resolved]:
    seen: set[tuple[int, Sockaddr]] = set()
    out: list[Resolved] = []
    for fam, _type, _proto, _canon, sockaddr in infos:
        key = (fam, tuple(sockaddr))
        if key in seen:
            continue
        seen.add(key)
        out.append(Resolved(host, port, fam, tuple(sockaddr), elapsed))
    if not out:
        raise ResolveError(host, port, "name not resolved (no addresses)")
    return out


async def resolve_all(
    host: str, port: int, *, family: int = socket.AF_UNSPEC, type: int = socket.SOCK_STREAM,
    timeout: float = 5.0,
) -> list[Resolved]:
    """Every address for ``host`` (in getaddrinfo's preference order), each with the lookup time."""
    import asyncio

    loop = asyncio.get_running_loop()
    start = time.perf_counter_ns()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, family=family, type=type), timeout
        )
    except (asyncio.TimeoutError, socket.gaierror, UnicodeError) as exc:
        raise resolve_error(host, port, exc, timeout) from None
    return _dedupe(host, port, infos, time.perf_counter_ns() - start)


async def resolve(
    host: str, port: int, *, family: int = socket.AF_UNSPEC, type: int = socket.SOCK_STREAM,
    timeout: float = 5.0,
) -> Resolved:
    """The first address for ``host``."""
    return (await resolve_all(host, port, family=family, type=type, timeout=timeout))[0]


def resolve_sync(
    host: str, port: int, *, family: int = socket.AF_UNSPEC, type: int = socket.SOCK_STREAM,
) -> Resolved:
    """Blocking twin for code on plain sockets (timing-critical loops)."""
    start = time.perf_counter_ns()
    try:
        infos = socket.getaddrinfo(host, port, family=family, type=type)
    except (socket.gaierror, UnicodeError) as exc:
        raise resolve_error(host, port, exc) from None
    return _dedupe(host, port, infos, time.perf_counter_ns() - start)[0]
