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
from netkit.core.packet import FLAG_REFLECTED as _FLAG_REFLECTED

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
        # The most recent source is already at the LRU end: a stream from one sender (a meter at
        # 100k packets/s) skips the dictionary work.
        self._last: tuple[object, TokenBucket | None] = (None, None)

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source: object, now_ns: int) -> bool:
        last_source, last_bucket = self._last
        if last_bucket is not None and source == last_source:
            return last_bucket.allow(now_ns)
        buckets = self._buckets
        b = buckets.get(source)
        if b is None:
            if len(buckets) >= self.max_sources:
                buckets.popitem(last=False)
            b = buckets[source] = TokenBucket(self.rate, self.burst, now_ns)
        else:
            buckets.move_to_end(source)
        self._last = (source, b)
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


#: Count queries a session may send (each answered once): a client asks a few times at the end of
#: a run (``netkit.io.clients.reflector_query``: 5 attempts, sequence numbers 0..4).
QUERY_WINDOW = 64


class _Session:
    __slots__ = ("first_ns", "last_ns", "queries", "window")

    def __init__(self, now_ns: int, window: ReplayWindow | None) -> None:
        self.first_ns = now_ns
        self.last_ns = now_ns
        self.window = window
        # Queries number their attempts from 0, like the probes: a window of their own.
        self.queries: ReplayWindow | None = ReplayWindow(QUERY_WINDOW) if window is not None else None


class SessionTable:
    """UDP measurement sessions: count active ones, cut long ones, reject replays.

    ``admit(session, seq, now_ns)`` returns None (serve it) or the reason to drop it:
    ``"max_sessions"``, ``"max_duration"``, ``"replay"``, ``"table_full"``. Sessions are kept
    until idle for ``keep_ns`` (the keyed freshness window, so a forgotten session is always too
    old to be accepted again) and count as active while idle less than ``active_idle_ns``.

    A count query (``query=True``) goes through the replay window like a probe (a window of its
    own: queries number their attempts from 0) and never refreshes the session: a recorded query
    replayed later is refused while the session is known, and cannot keep it known.
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

    def known(self, session: int, now_ns: int | None = None) -> bool:
        """Is ``session`` remembered (at ``now_ns``: sessions idle past ``keep_ns`` are forgotten first)?"""
        if now_ns is not None:
            self._prune(now_ns)
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
        if query:
            if sess.queries is not None and not sess.queries.check_and_mark(seq):
                return "replay"
            return None
        if sess.window is not None and not sess.window.check_and_mark(seq):
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


# ----- what a reflector answers (``serve udp --mode echo``) ---------------------------------------

#: Source ports a reflector never answers. 0 is not a real sender (a reply to it is a forgery's
#: echo). The others are services that answer any datagram: a spoofed source on one of them turns
#: the reflector and that service into a loop, or the reflector into a relay for their amplification.
#: Small services (RFC 862 echo 7, discard 9, daytime 13, qotd 17, chargen 19, time 37) and the UDP
#: services known for reflection attacks (DNS 53, TFTP 69, portmap 111, NTP 123, NetBIOS 137,
#: SNMP 161, CLDAP 389, SSDP 1900, mDNS 5353, memcached 11211). A measurement client sends from an
#: ephemeral port, never from these.
REFLECTION_PORTS: frozenset[int] = frozenset(
    {0, 7, 9, 13, 17, 19, 37, 53, 69, 111, 123, 137, 161, 389, 1900, 5353, 11211})
#: Replies per second to one source address, by default. Twice the highest rate the meters document
#: (``measure loss -r 100k``), so no documented measurement meets it; it caps what one (possibly
#: spoofed) address can be sent, whatever the datagrams.
DEFAULT_REPLIES_PER_SOURCE = 200_000
#: The same datagram from the same sender is answered at most this many times in a row (a row
#: ends after REPEAT_IDLE_NS without that datagram). Two echo servers pointed at each other (a
#: spoofed source) bounce one datagram back and forth unchanged, forever, at any round-trip time;
#: nothing in a plain echo says "this is a reply", but a loop repeats it without pause, where a
#: client repeating itself (``send udp --count``) stops or pauses. A count (not a rate) stops
#: slow loops (a 1 s round trip) as surely as fast ones.
REPEAT_MAX = 1000
REPEAT_IDLE_NS = 10 * NS
MAX_REPEAT_ENTRIES = 16_384


class RepeatLimiter:
    """Identical datagrams from one sender: at most ``max_repeats`` answered in a row.

    A row is the run of that datagram with gaps shorter than ``idle_ns``. Keyed by (sender, hash
    of the bytes); the hash is Python's keyed SipHash, which a peer cannot aim at a collision (a
    collision would only cost a reply anyway). Bounded: past ``max_entries`` the least recently
    seen entry is forgotten (a flood of distinct datagrams can only reset counts, not grow memory).
    """

    __slots__ = ("_seen", "idle_ns", "max_entries", "max_repeats")

    def __init__(self, max_repeats: int = REPEAT_MAX, idle_ns: int = REPEAT_IDLE_NS,
                 max_entries: int = MAX_REPEAT_ENTRIES) -> None:
        self.max_repeats = max_repeats
        self.idle_ns = idle_ns
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[object, object, int], list[int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def allow(self, host: object, port: object, data: bytes, now_ns: int) -> bool:
        key = (host, port, hash(data))
        seen = self._seen
        entry = seen.get(key)
        if entry is None:
            if len(seen) >= self.max_entries:
                seen.popitem(last=False)
            seen[key] = [now_ns, 1]
            return True
        seen.move_to_end(key)
        if now_ns - entry[0] >= self.idle_ns:
            entry[1] = 0  # a pause ends the row
        entry[0] = now_ns
        entry[1] += 1
        return entry[1] <= self.max_repeats


#: Why a reflector did not answer a datagram: the counter names of :class:`ReplyPolicy`.
NOT_ANSWERED = ("dropped_self", "dropped_service_port", "dropped_reply", "dropped_repeat", "dropped_rate")


class ReplyPolicy:
    """What a reflector never answers, and how much it answers one source. Pure: times passed in.

    - ``refuse_source(host, port, data, probe)`` before any work: the reflector's own address (a datagram
      spoofed from itself would be answered to itself, forever), :data:`REFLECTION_PORTS`, and a
      netkit probe that is already a reply (``REFLECTED`` set: another reflector's answer; no
      client sends one).
    - ``refuse_reply(host, port, data, probe, now_ns)`` before a reply is sent: a datagram that
      is not a well-formed probe (it comes back verbatim) repeated past :class:`RepeatLimiter`
      (probes carry a sequence number, and their replies are marked), and
      the per-source reply rate (a :class:`SourceLimiter` of ``rate`` replies per second).

    Each refusal returns the name of its counter (one of :data:`NOT_ANSWERED`) and counts it.
    ``own_hosts`` are the addresses the socket listens on; with ``wildcard`` (bound to 0.0.0.0 or
    ::) every loopback address is the reflector too, and ``own_hosts`` should list the host's
    interface addresses.
    """

    def __init__(self, own_port: int, own_hosts: frozenset[str] | set[str] = frozenset(), *,
                 wildcard: bool = False, rate: float | None = DEFAULT_REPLIES_PER_SOURCE,
                 blocked_ports: frozenset[int] = REFLECTION_PORTS,
                 repeats: RepeatLimiter | None = None) -> None:
        self.own_port = own_port
        self.own_hosts = frozenset(own_hosts)
        self.wildcard = wildcard
        self.blocked_ports = blocked_ports
        self.sources = SourceLimiter(rate) if rate else None
        self.repeats = repeats if repeats is not None else RepeatLimiter()
        self.counters: dict[str, int] = dict.fromkeys(NOT_ANSWERED, 0)

    def is_self(self, host: str, port: int) -> bool:
        if port != self.own_port:
            return False
        if host in self.own_hosts:
            return True
        ip = _ip(host)
        if ip is None:
            return False
        if str(ip) in self.own_hosts:
            return True
        return self.wildcard and ip.is_loopback

    def refuse_source(self, host: str, port: int, data: bytes, probe: bool) -> str | None:
        """Before any work: the reflector itself, a service port, a netkit probe that is a reply.

        ``probe``: ``data`` is a well-formed netkit probe (``packet.peek_seq``); a malformed one
        comes back verbatim and falls under the repeat rule instead.
        """
        if port in self.blocked_ports:
            why = "dropped_service_port"
        elif port == self.own_port and self.is_self(host, port):
            why = "dropped_self"
        elif probe and data[5] & _FLAG_REFLECTED:
            why = "dropped_reply"
        else:
            return None
        self.counters[why] += 1
        return why

    def refuse_reply(self, host: str, port: int, data: bytes, probe: bool, now_ns: int) -> str | None:
        """Before sending a reply: repeats of a plain datagram (``probe`` False), the source's rate."""
        if not probe and not self.repeats.allow(host, port, data, now_ns):
            why = "dropped_repeat"
        elif self.sources is not None and not self.sources.allow(host, now_ns):
            why = "dropped_rate"
        else:
            return None
        self.counters[why] += 1
        return why
