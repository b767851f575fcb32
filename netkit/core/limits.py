"""Server-side limits a client cannot raise: pure code, times are int ns passed in.

- :class:`TokenBucket` / :class:`SourceLimiter`: packets (or connections) per source address,
  ``--max-pps-per-source`` and ``--min-interval`` (the bucket's rate is the smaller of the two).
- :class:`CidrFilter`: ``--allow`` / ``--deny`` (deny wins; with any allow, only allowed sources).
- :class:`SessionTable`: UDP measurement sessions: ``--max-sessions`` (sessions active at once),
  ``--max-duration`` (a session's packets are dropped after it) and, for keyed probes, the
  per-session :class:`netkit.core.keyed.ReplayWindow`.
- :class:`Counters`: what the server summary and jsonl events report.

Every table is bounded: a flood of new sources or sessions costs a bounded amount of memory.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

from netkit.core.keyed import ReplayWindow

NS = 1_000_000_000
BURST_S = 0.1  # a bucket holds this many seconds' worth of packets (at least 1): send-time jitter
MAX_SOURCES = 65_536
MAX_KNOWN_SESSIONS = 65_536
ACTIVE_IDLE_NS = 10 * NS  # a UDP session with no packet for this long no longer counts as active

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limits:
    """The limits of one server. None means no limit."""

    max_duration_ns: int | None = None
    min_interval_ns: int | None = None
    max_pps_per_source: float | None = None
    max_packet: int | None = None
    max_sessions: int | None = None
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @property
    def source_rate(self) -> float | None:
        """Packets per second allowed per source: min of --max-pps-per-source and 1/--min-interval."""
        rates = []
        if self.max_pps_per_source:
            rates.append(float(self.max_pps_per_source))
        if self.min_interval_ns:
            rates.append(NS / self.min_interval_ns)
        return min(rates) if rates else None

    def as_dict(self) -> dict[str, object]:
        return {
            "max_duration_s": None if self.max_duration_ns is None else self.max_duration_ns / NS,
            "min_interval_s": None if self.min_interval_ns is None else self.min_interval_ns / NS,
            "max_pps_per_source": self.max_pps_per_source, "max_packet": self.max_packet,
            "max_sessions": self.max_sessions, "allow": list(self.allow), "deny": list(self.deny),
        }


@dataclass
class Counters:
    """Rejections by cause. ``replayed`` is the part of ``rejected_by_key`` that was a replay."""

    rejected_by_key: int = 0
    replayed: int = 0
    rate_limited: int = 0
    over_limit: int = 0
    denied: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; one token per packet."""

    __slots__ = ("burst", "last_ns", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now_ns: int) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.last_ns = now_ns

    def allow(self, now_ns: int, cost: float = 1.0) -> bool:
        elapsed = now_ns - self.last_ns
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate / NS)
            self.last_ns = now_ns
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class SourceLimiter:
    """One :class:`TokenBucket` per source address, least recently used evicted past ``max_sources``.

    An evicted source starts again with a full bucket: the bound costs at most one burst per
    eviction, never unbounded memory.
    """

    def __init__(self, rate: float, burst: float | None = None, max_sources: int = MAX_SOURCES) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate * BURST_S)
        self.max_sources = max_sources
        self._buckets: OrderedDict[object, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source: object, now_ns: int) -> bool:
        buckets = self._buckets
        b = buckets.get(source)
        if b is None:
            if len(buckets) >= self.max_sources:
                buckets.popitem(last=False)
            b = buckets[source] = TokenBucket(self.rate, self.burst, now_ns)
        else:
            buckets.move_to_end(source)
        return b.allow(now_ns)


def parse_cidr(text: str) -> IpNetwork:
    """``10.0.0.0/8``, ``::1/128`` or a bare address; ValueError with a one-line message."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not an address or CIDR block: {text!r}") from None


def _ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:10.0.0.1 on a dual-stack socket is 10.0.0.1
    return ip


class CidrFilter:
    """Who may use the server at all: deny wins; when any allow is given, only allowed sources."""

    def __init__(self, allow: tuple[str, ...] | list[str] = (), deny: tuple[str, ...] | list[str] = ()) -> None:
        self.allow = tuple(parse_cidr(a) for a in allow)
        self.deny = tuple(parse_cidr(d) for d in deny)
        self._cache: dict[str, bool] = {}  # per source: parsing an address costs ~1 us per datagram

    @property
    def active(self) -> bool:
        return bool(self.allow or self.deny)

    def permits(self, addr: str) -> bool:
        hit = self._cache.get(addr)
        if hit is None:
            if len(self._cache) >= MAX_SOURCES:
                self._cache.clear()  # bounded: a flood of sources only costs re-parsing
            hit = self._cache[addr] = self._permits(addr)
        return hit

    def _permits(self, addr: str) -> bool:
        ip = _ip(addr)
        if ip is None:
            return not self.allow  # a non-IP peer (unix socket): only when nothing is allow-listed
        if any(ip.version == n.version and ip in n for n in self.deny):
            return False
        if self.allow:
            return any(ip.version == n.version and ip in n for n in self.allow)
        return True


class _Session:
    __slots__ = ("first_ns", "last_ns", "window")

    def __init__(self, now_ns: int, window: ReplayWindow | None) -> None:
        self.first_ns = now_ns
        self.last_ns = now_ns
        self.window = window


class SessionTable:
    """UDP measurement sessions: count active ones, cut long ones, reject replays.

    ``admit(session, seq, now_ns)`` returns None (serve it) or the reason to drop it:
    ``"max_sessions"``, ``"max_duration"``, ``"replay"``, ``"table_full"``. Sessions are kept
    until idle for ``keep_ns`` (the keyed freshness window, so a forgotten session is always too
    old to be accepted again) and count as active while idle less than ``active_idle_ns``.
    """

    def __init__(self, *, max_sessions: int | None = None, max_duration_ns: int | None = None,
                 replay: bool = False, keep_ns: int = 300 * NS, active_idle_ns: int = ACTIVE_IDLE_NS,
                 max_known: int = MAX_KNOWN_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self.max_duration_ns = max_duration_ns
        self.replay = replay
        self.keep_ns = keep_ns
        self.active_idle_ns = active_idle_ns
        self.max_known = max_known
        self._known: OrderedDict[int, _Session] = OrderedDict()  # by last packet, oldest first
        self._active: OrderedDict[int, int] = OrderedDict()  # session -> last_ns, oldest first

    def known(self, session: int) -> bool:
        return session in self._known

    def active_count(self, now_ns: int) -> int:
        self._prune(now_ns)
        return len(self._active)

    def _prune(self, now_ns: int) -> None:
        active, known = self._active, self._known
        while active:
            _s, t = next(iter(active.items()))
            if now_ns - t < self.active_idle_ns:
                break
            active.popitem(last=False)
        while known:
            _s, sess = next(iter(known.items()))
            if now_ns - sess.last_ns < self.keep_ns:
                break
            known.popitem(last=False)

    def admit(self, session: int, seq: int, now_ns: int, *, query: bool = False) -> str | None:
        self._prune(now_ns)
        sess = self._known.get(session)
        if sess is None:
            if self.max_sessions is not None and len(self._active) >= self.max_sessions:
                return "max_sessions"
            if len(self._known) >= self.max_known:
                return "table_full"
            sess = self._known[session] = _Session(now_ns, ReplayWindow() if self.replay else None)
        if self.max_duration_ns is not None and now_ns - sess.first_ns > self.max_duration_ns:
            return "max_duration"
        if sess.window is not None and not query and not sess.window.check_and_mark(seq):
            return "replay"
        sess.last_ns = now_ns
        self._known.move_to_end(session)
        self._active[session] = now_ns
        self._active.move_to_end(session)
        return None


@dataclass(frozen=True)
class Verdict:
    """A guard's decision on one datagram or connection: ``ok``, else ``counter`` and ``reason``."""

    ok: bool
    counter: str = ""
    reason: str = ""
    extra: dict[str, object] = field(default_factory=dict)


OK = Verdict(True)


class FrameTooLarge(ValueError):
    """A request frame announcing a body or a reply over the server's ``--max-request``."""


class RequestFrameReader:
    """The server side of request framing (``body_len u32 | reply_len u32 | seq u32 | body``)
    that never holds a body: the server needs a request's header, not its bytes.

    ``feed(data, max_frames)`` returns ``(frames, used)``: up to ``max_frames`` complete frames
    as ``(seq, reply_len)`` and how many bytes of ``data`` it consumed (the caller keeps the rest
    and feeds it again once it can take more frames). Memory: 12 bytes of header, whatever the
    frame sizes. A body or reply over ``max_request`` raises :class:`FrameTooLarge`.
    """

    HEADER_LEN = 12

    __slots__ = ("_head", "_reply", "_seq", "_skip", "max_request")

    def __init__(self, max_request: int) -> None:
        self.max_request = max_request
        self._head = bytearray()
        self._skip = 0  # body bytes of the current frame still to come
        self._reply: int | None = None  # (seq, reply_len) of the frame whose body is being skipped
        self._seq = 0

    @property
    def in_frame(self) -> bool:
        """True between a frame's first byte and its last (a frame is pending)."""
        return bool(self._head) or self._reply is not None

    def feed(self, data: bytes | memoryview, max_frames: int) -> tuple[list[tuple[int, int]], int]:
        frames: list[tuple[int, int]] = []
        pos, end = 0, len(data)
        while pos < end or (self._reply is not None and self._skip == 0):
            if self._reply is not None:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
                if self._skip:
                    break
                if len(frames) >= max_frames:
                    break
                frames.append((self._seq, self._reply))
                self._reply = None
                continue
            if len(frames) >= max_frames:
                break
            need = self.HEADER_LEN - len(self._head)
            self._head += data[pos:pos + need]
            pos += min(need, end - pos)
            if len(self._head) < self.HEADER_LEN:
                break
            head = bytes(self._head)
            self._head.clear()
            body_len = int.from_bytes(head[0:4], "big")
            reply_len = int.from_bytes(head[4:8], "big")
            if body_len > self.max_request or reply_len > self.max_request:
                raise FrameTooLarge(f"request frame of {max(body_len, reply_len):,} bytes is over "
                                    f"--max-request {self.max_request:,}")
            self._seq = int.from_bytes(head[8:12], "big")
            self._reply = reply_len
            self._skip = body_len
        return frames, pos
