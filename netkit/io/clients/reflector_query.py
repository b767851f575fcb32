"""The end-of-run count query to netkit's reflector, shared by every UDP probe stream.

Per-direction loss needs the reflector's final count of probes received for the session; the
counts carried by replies cannot say where the probes after the last reply went. The query is a
header-only probe with ``FLAG_QUERY`` (signed when keyed), repeated a few times since it can be
lost too; the caller's receive loop stores the answer and sets ``changed``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from netkit.core import keyed, packet

NS = 1_000_000_000
QUERY_ATTEMPTS = 5
#: After Ctrl-C: the wait for replies in flight and for each count query.
STOP_GRACE_S = 0.2


async def ask_reflector_count(
    sock: socket.socket, session: int, key: keyed.Key | None, changed: asyncio.Event,
    answer: Callable[[], int | None], *, timeout_s: float, hurry: bool = False,
) -> int | None:
    """Send count queries until ``answer()`` has a value or the attempts run out.

    ``hurry`` (after Ctrl-C): two short tries instead of five.
    """
    q = bytearray(packet.HEADER_SIZE if key is None else keyed.KEYED_MIN_SIZE)
    wait_s = min(max(timeout_s, 0.05), STOP_GRACE_S if hurry else 1.0)
    for attempt in range(2 if hurry else QUERY_ATTEMPTS):
        packet.encode_into(q, session, attempt, time.perf_counter_ns(), flags=packet.FLAG_QUERY)
        if key is not None:  # a keyed reflector answers only a query it can verify
            keyed.sign_probe_into(key, q)
        try:
            sock.send(q)
        except OSError:
            return None
        deadline = time.perf_counter_ns() + int(wait_s * NS)
        while answer() is None:
            left = (deadline - time.perf_counter_ns()) / NS
            if left <= 0:
                break
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), left)
            except asyncio.TimeoutError:
                break
        if answer() is not None:
            return answer()
    return None
