"""UDP reflector logic used by ``netkit serve udp --mode echo``.

Stub until issue 4 lands: reflects every datagram verbatim. The interface is fixed:
``Reflector().reflect(data, addr, recv_ns) -> bytes | None`` (None: send nothing) and
``Reflector().stats`` (a dict of counters for the server summary).
"""

from __future__ import annotations

from typing import Any


class Reflector:
    def __init__(self, **options: Any) -> None:
        self.stats: dict[str, int] = {}

    def reflect(self, data: bytes, addr: tuple[Any, ...], recv_ns: int) -> bytes | None:
        return data
