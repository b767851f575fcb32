"""UDP reflector logic used by ``netkit serve udp --mode echo`` (and netkit.io.servers.reflector_server).

Interface (fixed, the UDP server calls it per datagram):
``Reflector(**options).reflect(data, addr, recv_ns) -> bytes | None`` (None: send nothing) and
``Reflector.stats`` (a dict of counters for the server summary).

- A netkit probe packet (``netkit.core.packet``) comes back with the reflector fields filled:
  the count of probes received for its session (including this one), the receive time passed in
  and the send time (read here, just before returning). A count QUERY is answered with the count
  and does not change it.
- Any other datagram, including a malformed probe, comes back verbatim.
- A reply is never larger than the request: probe fields are rewritten in place.

Counts are kept per (sender address, session id): another host that reuses a client's session
id (by chance or to fake its forward-loss split) gets a counter of its own.
Memory is bounded: at most ``max_sessions`` session counters, least recently used evicted.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from netkit.core import packet
from netkit.core.guard import Reflecting

__all__ = ["DEFAULT_MAX_SESSIONS", "Reflecting", "Reflector"]

DEFAULT_MAX_SESSIONS = 65536


class Reflector:
    """Per-datagram reflection with per-session probe counts.

    Options: ``max_sessions`` (bound on remembered sessions), ``clock`` (a callable returning
    ns; default ``time.perf_counter_ns``, the same clock the server should pass as ``recv_ns``).
    """

    def __init__(self, **options: Any) -> None:
        self.max_sessions = int(options.get("max_sessions", DEFAULT_MAX_SESSIONS))
        self._clock = options.get("clock") or time.perf_counter_ns
        self._sessions: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._last: tuple[Any, ...] | None = None  # most recent session: already at the LRU end
        self.stats: dict[str, int] = {
            "datagrams": 0,
            "probes": 0,
            "queries": 0,
            "verbatim": 0,
            "malformed_probes": 0,
            "sessions": 0,
            "sessions_evicted": 0,
        }

    def session_count(self, session: int, addr: tuple[Any, ...]) -> int:
        """Probes received so far for ``session`` from ``addr`` (0 when unknown or evicted)."""
        return self._sessions.get((addr[0], addr[1], session), 0)

    def reflect(self, data: bytes, addr: tuple[Any, ...], recv_ns: int) -> bytes | None:
        stats = self.stats
        stats["datagrams"] += 1
        ids = packet.peek_seq(data)  # every check decode() makes, without building a Probe
        if ids is None:
            if packet.looks_like_probe(data):
                stats["malformed_probes"] += 1
            stats["verbatim"] += 1
            return bytes(data)
        session = (addr[0], addr[1], ids[0])
        sessions = self._sessions
        count = sessions.get(session)
        if count is None:
            count = 0
            stats["sessions"] += 1
            if len(sessions) >= self.max_sessions:
                sessions.popitem(last=False)
                stats["sessions_evicted"] += 1
        elif session != self._last:
            sessions.move_to_end(session)
        self._last = session
        if data[5] & packet.FLAG_QUERY:
            stats["queries"] += 1
        else:
            stats["probes"] += 1
            count += 1
        sessions[session] = count
        buf = bytearray(data)
        packet.reflect_into(buf, count, recv_ns, self._clock())
        return bytes(buf)
