"""Name resolution with timing and one-line errors, shared by every client command."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

from netkit.core.errors import CheckFailed

Sockaddr = tuple  # (host, port) or (host, port, flowinfo, scope_id)


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
    """The name did not resolve (a check failure for the target: exit 1)."""


def family_of(ipv4: bool = False, ipv6: bool = False) -> int:
    if ipv4 and not ipv6:
        return socket.AF_INET
    if ipv6 and not ipv4:
        return socket.AF_INET6
    return socket.AF_UNSPEC


async def resolve_all(
    host: str, port: int, *, family: int = socket.AF_UNSPEC, type: int = socket.SOCK_STREAM,
    timeout: float = 5.0,
) -> list[Resolved]:
    """Every address for ``host`` (in getaddrinfo's preference order), each with the lookup time."""
    loop = asyncio.get_running_loop()
    start = time.perf_counter_ns()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, family=family, type=type), timeout
        )
    except asyncio.TimeoutError:
        raise ResolveError(f"{host}: name resolution timed out after {timeout:g}s") from None
    except socket.gaierror as exc:
        raise ResolveError(f"{host}: name not resolved ({exc.strerror})") from None
    except UnicodeError:
        raise ResolveError(f"{host}: invalid name") from None
    elapsed = time.perf_counter_ns() - start
    seen: set[tuple[int, Sockaddr]] = set()
    out: list[Resolved] = []
    for fam, _type, _proto, _canon, sockaddr in infos:
        key = (fam, tuple(sockaddr))
        if key in seen:
            continue
        seen.add(key)
        out.append(Resolved(host, port, fam, tuple(sockaddr), elapsed))
    if not out:
        raise ResolveError(f"{host}: name not resolved (no addresses)")
    return out


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
    except socket.gaierror as exc:
        raise ResolveError(f"{host}: name not resolved ({exc.strerror})") from None
    except UnicodeError:
        raise ResolveError(f"{host}: invalid name") from None
    fam, _t, _p, _c, sockaddr = infos[0]
    return Resolved(host, port, fam, tuple(sockaddr), time.perf_counter_ns() - start)
