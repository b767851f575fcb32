"""Keys and limits of one server, decided in memory: what a server asks before it works for a peer.

Pure: every clock is passed in (``now_ns`` arguments, the injected ``wall_clock``); the server in
``netkit.io.servers`` reads the clocks and the key file (``netkit.io.servers.server_guard``).

- ``guard.admit(addr, now_ns)``: a new TCP connection or any datagram: ``--allow/--deny`` and
  the per-source token bucket (``--max-pps-per-source``, ``--min-interval``).
- ``guard.check_datagram(data, addr, now_ns)``: a UDP datagram for the reflector: ``admit``, then
  ``--max-packet``, the key (keyed probes only when a key is set), then the session table
  (``--max-sessions``, ``--max-duration``, replay window).
- ``guard.check_header(header37, trailer, addr)``: a keyed TCP session header.
- ``guard.session_opened(addr)`` / ``guard.session_closed()``: ``--max-sessions`` for TCP.
- ``guard.cap_duration_s(asked_s)``: the session length the server grants (``--max-duration``).

Every refusal is counted (:class:`netkit.core.limits.Counters`) and reported as a ``limit`` event
(at most one per cause per second, with the running count, so a flood cannot flood the log).
:class:`GuardedReflector` puts a guard in front of a reflector with the same ``reflect()``/``stats``
interface, and drops any reply longer than its request. :func:`exposure_warning` says when a
server is reachable beyond this host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, Protocol

from netkit.core import keyed, packet
from netkit.core.limits import CidrFilter, Counters, Limits, SessionTable, SourceLimiter
from netkit.core.serve_models import ServerEventSink
from netkit.core.units import format_wall_iso

EVENT_INTERVAL_NS = 1_000_000_000
WRONG_KEY_MESSAGE = "the server did not answer keyed probes: check the key"


class Reflecting(Protocol):
    """What a UDP echo server asks of its reflector (``netkit.io.servers.reflector.Reflector``, a
    :class:`GuardedReflector`, a counting wrapper); a ``stats`` dict, when it has one, goes into
    the summary."""

    def reflect(self, data: bytes, addr: Any, recv_ns: int) -> bytes | None:
        """The reply to ``data`` from ``addr`` received at ``recv_ns`` (perf_counter ns), or None."""


def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, proto: str, key: keyed.Key | None) -> str | None:
    """The warning for a server reachable beyond this host (None when it is loopback-only).

    Without a key it names the abuse risk; with one it still says when every address is bound.
    """
    if is_loopback_host(host):
        return None
    if key is not None:
        if host in ("0.0.0.0", "::", ""):
            return f"serving {proto} on all addresses ({host or '*'}): reachable from every network this host is on"
        return None
    risk = ("reflect floods at a spoofed victim address and " if proto == "udp" else "")
    return (f"serving {proto} on {host} without --key: anyone who can reach this address can use "
            f"it to {risk}burn this link's bandwidth; set --key (or NETKIT_KEY) and consider "
            f"--allow/--deny, --max-duration, --max-pps-per-source")


def _peer(addr: Any) -> tuple[str, str]:
    """(source ip, printable peer) from a socket address tuple or a 'host:port' string."""
    if isinstance(addr, tuple) and addr:
        host = str(addr[0])
        port = addr[1] if len(addr) > 1 else None
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return host, shown
    return str(addr), str(addr)


class Guard:
    """Keys and limits of one server (see module docstring). Clocks are passed in or injected."""

    def __init__(self, limits: Limits | None = None, key: keyed.Key | None = None, *,
                 wall_clock: Callable[[], int], on_event: ServerEventSink | None = None,
                 freshness_ns: int = keyed.DEFAULT_FRESHNESS_NS) -> None:
        self.limits = limits or Limits()
        self.key = key
        self.on_event = on_event
        self.wall_clock = wall_clock
        self.freshness_ns = freshness_ns
        self.counters = Counters()
        self.filter = CidrFilter(self.limits.allow, self.limits.deny)
        rate = self.limits.source_rate
        self.sources = SourceLimiter(rate) if rate else None
        self.sessions = SessionTable(
            max_sessions=self.limits.max_sessions, max_duration_ns=self.limits.max_duration_ns,
            # A session id stays acceptable while its wall-clock second is within freshness (+1 s)
            # of ours, on either side: forgetting a session sooner than 2 x freshness after it was
            # last seen would let its recorded packets be accepted again as a "new" session.
            replay=key is not None, keep_ns=2 * freshness_ns + 2_000_000_000,
        )
        self.replays = keyed.ReplayCache(ttl_ns=2 * freshness_ns)
        self.tcp_sessions = 0
        self._last_event: dict[str, int] = {}

    # ----- reporting -------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        return self.counters.as_dict()

    def reject(self, counter: str, reason: str, addr: Any, now_ns: int, value: Any = None) -> bool:
        """Count a refusal and emit (throttled) a ``limit`` event; always returns False."""
        c = self.counters
        setattr(c, counter, getattr(c, counter) + 1)
        if reason == "replay":
            c.replayed += 1
        if self.on_event is not None:
            last = self._last_event.get(counter)
            if last is None or now_ns - last >= EVENT_INTERVAL_NS:
                self._last_event[counter] = now_ns
                self.on_event({
                    "event": "limit", "time": format_wall_iso(self.wall_clock()), "limit": counter,
                    "reason": reason, "id": None,
                    "peer": _peer(addr)[1], "value": value, "count": getattr(c, counter),
                })
        return False

    # ----- checks ----------------------------------------------------------------------------
    def admit(self, addr: Any, now_ns: int) -> bool:
        """``--allow/--deny``, then the per-source bucket. For connections and datagrams alike."""
        ip = str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)
        if self.filter.active and not self.filter.permits(ip):
            return self.reject("denied", "cidr", addr, now_ns)
        if self.sources is not None and not self.sources.allow(ip, now_ns):
            return self.reject("rate_limited", "per-source", addr, now_ns, self.limits.source_rate)
        return True

    def check_datagram(self, data: bytes | bytearray | memoryview, addr: Any, now_ns: int) -> bool:
        """Should the reflector answer this datagram? (Counts and reports every refusal.)"""
        if not self.admit(addr, now_ns):
            return False
        mp = self.limits.max_packet
        if mp is not None and len(data) > mp:
            return self.reject("over_limit", "max_packet", addr, now_ns, mp)
        ids = packet.peek_seq(data)
        if self.key is not None:
            if ids is None or not keyed.verify_probe(self.key, data):
                return self.reject("rejected_by_key", "bad-key", addr, now_ns)
            if not self.sessions.known(ids[0], now_ns) and not keyed.session_fresh(
                    ids[0], self.wall_clock(), self.freshness_ns):
                return self.reject("rejected_by_key", "stale-session", addr, now_ns)
        if ids is None:
            return True  # plain echo: no session to account (never amplified: see GuardedReflector)
        why = self.sessions.admit(ids[0], ids[1], now_ns, query=bool(data[5] & packet.FLAG_QUERY))
        if why is None:
            return True
        if why == "replay":
            return self.reject("rejected_by_key", "replay", addr, now_ns)
        value = {"max_sessions": self.limits.max_sessions,
                 "max_duration": None if self.limits.max_duration_ns is None
                 else self.limits.max_duration_ns / 1e9}.get(why)
        return self.reject("over_limit", why, addr, now_ns, value)

    def check_header(self, header37: bytes, trailer: bytes | None, addr: Any, now_ns: int) -> bool:
        """A TCP session header: with a key, it must carry a valid, fresh, unseen trailer."""
        if self.key is None:
            return True
        if trailer is None:
            return self.reject("rejected_by_key", "no-key", addr, now_ns)
        v = keyed.verify_header_trailer(self.key, header37, trailer, self.wall_clock(), self.freshness_ns)
        if not v.ok:
            return self.reject("rejected_by_key", v.reason, addr, now_ns)
        if not self.replays.check_and_add(v.nonce, now_ns):
            return self.reject("rejected_by_key", "replay", addr, now_ns)
        return True

    def session_opened(self, addr: Any, now_ns: int) -> bool:
        """A TCP measurement session starts: refuse it past ``--max-sessions``."""
        ms = self.limits.max_sessions
        if ms is not None and self.tcp_sessions >= ms:
            return self.reject("over_limit", "max_sessions", addr, now_ns, ms)
        self.tcp_sessions += 1
        return True

    def session_closed(self) -> None:
        self.tcp_sessions = max(0, self.tcp_sessions - 1)

    def cap_duration_s(self, asked_s: float) -> float:
        """The session length granted: what the client asked, at most ``--max-duration``."""
        if self.limits.max_duration_ns is None:
            return asked_s
        return min(asked_s, self.limits.max_duration_ns / 1e9)


class GuardedReflector:
    """A reflector (:class:`Reflecting`) behind a :class:`Guard` (same interface).

    ``reflect`` returns None for anything the guard refuses, and never returns more bytes than
    it was given (amplification factor <= 1 whatever the inner reflector does).
    """

    def __init__(self, guard: Guard, reflector: Reflecting) -> None:
        self.guard = guard
        self.inner = reflector

    def reflect(self, data: bytes, addr: Any, recv_ns: int) -> bytes | None:
        if not self.guard.check_datagram(data, addr, recv_ns):
            return None
        reply = self.inner.reflect(data, addr, recv_ns)
        if reply is not None and len(reply) > len(data):
            self.guard.reject("over_limit", "amplification", addr, recv_ns, len(data))
            return None
        return reply

    @property
    def stats(self) -> dict[str, int]:
        return {**getattr(self.inner, "stats", {}), **self.guard.stats()}
