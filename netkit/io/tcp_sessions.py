"""Measurement sessions on ``netkit serve tcp`` (throughput, requests), entered by a header.

Stub until issue 5 lands. The interface is fixed:
- ``sniff(prefix: bytes) -> bool | None``: True when ``prefix`` begins with a complete session
  header magic, False when it cannot, None when more bytes are needed to tell.
- ``MAGIC_LEN``: how many bytes ``sniff`` needs at most to decide.
- ``open_session(transport, first_bytes, server) -> asyncio.BaseProtocol``: the server hands the
  connection over (``transport.set_protocol(proto)``) and then feeds ``first_bytes`` to it.
"""

from __future__ import annotations

import asyncio
from typing import Any

MAGIC = b"\x00NKTS"
MAGIC_LEN = len(MAGIC)


def sniff(prefix: bytes) -> bool | None:
    n = min(len(prefix), MAGIC_LEN)
    if prefix[:n] != MAGIC[:n]:
        return False
    return True if n == MAGIC_LEN else None


def open_session(transport: asyncio.BaseTransport, first_bytes: bytes, server: Any) -> asyncio.BaseProtocol:
    raise NotImplementedError("measurement sessions are not built yet")
