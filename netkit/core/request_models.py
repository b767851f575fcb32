"""Models and reply framing for ``netkit measure requests`` and the connection pool (pure).

No sockets, no clock reads: times are integer nanoseconds passed in. The framers turn the bytes
a connection receives into whole replies, so the same code serves the load generator, the
pool's generic ``request()`` and the tests (which feed them bytes in any split).

Three ways to recognise a reply:

- ``length``: every reply is exactly ``reply_size`` bytes (echo services: the request size).
- ``delimiter``: a reply ends with ``delimiter`` (line-based services: ``\\n``, ``\\r\\n``).
- ``header``: against ``netkit serve tcp``: the connection opens with the netkit session header
  (kind ``KIND_REQUESTS``) and every request/reply carries a small frame header of its own::

      request: body_len u32 | reply_len u32 | seq u32 | body          (REQ_HEADER_LEN = 12)
      reply:   body_len u32 | seq u32 | body (reply_len bytes)         (REP_HEADER_LEN = 8)

  so the server can answer with any reply size and the client checks that replies come back in
  order (``seq``).

The latency histogram is a thin wrapper around :class:`netkit.core.stats.LogHistogram` that adds
what a long load run needs and it lacks: exact min/max/sum, merging per-second histograms into the
total, and an O(1) bulk add.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from netkit.core import session_header as sh
from netkit.core.backoff import Backoff
from netkit.core.escape import unescape as unescape  # --payload/--delimiter: the one bytes rule
from netkit.core.stats import LogHistogram

NS_PER_MS = 1_000_000
NS = 1_000_000_000

FRAMINGS = ("length", "delimiter", "header")

#: Session kind for request/response on ``netkit serve tcp`` (throughput is kind 1).
KIND_REQUESTS = 2
REQ_HEADER = struct.Struct("!III")
REP_HEADER = struct.Struct("!II")
REQ_HEADER_LEN = REQ_HEADER.size
REP_HEADER_LEN = REP_HEADER.size
#: The largest body a header-framed request or reply may carry (a bound for the server).
MAX_FRAME_BODY = 16 * 1024 * 1024
#: A delimiter-framed reply longer than this is a framing error (bounds the buffer).
MAX_DELIMITED_REPLY = 1024 * 1024

#: Error kinds, always all present in results (zero when none happened).
ERROR_KINDS = ("timeout", "connection-lost", "connect-failed", "unexpected-reply", "framing", "overload")

#: What the report says about how latency was measured.
NOTE_OPEN_LOOP = ("open loop: latency is measured from each request's scheduled time, so a stalled "
                  "server shows its stall (coordinated omission corrected)")
NOTE_CLOSED_LOOP = ("closed loop: latency is measured from each actual send; while the server stalls "
                    "no new requests are sent, so stalls are under-represented (coordinated omission); "
                    "use --rate for an open loop")


class FramingError(ValueError):
    """The peer sent bytes that are not a valid reply for the chosen framing."""


# ----- framers ---------------------------------------------------------------------------------

class LengthFramer:
    """Replies of exactly ``size`` bytes."""

    __slots__ = ("buf", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("reply size must be at least 1 byte")
        self.size = size
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Whole replies completed by ``data`` (bytes past the last whole reply are kept)."""
        self.buf += data
        n = len(self.buf) // self.size
        if n == 0:
            return []
        cut = n * self.size
        replies = [bytes(self.buf[i : i + self.size]) for i in range(0, cut, self.size)]
        del self.buf[:cut]
        return replies

    @property
    def pending(self) -> int:
        return len(self.buf)


class DelimiterFramer:
    """Replies that end with ``delimiter`` (the delimiter is part of the reply returned)."""

    __slots__ = ("buf", "delimiter", "max_len")

    def __init__(self, delimiter: bytes, max_len: int = MAX_DELIMITED_REPLY) -> None:
        if not delimiter:
            raise ValueError("empty delimiter")
        self.delimiter = delimiter
        self.max_len = max_len
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        replies: list[bytes] = []
        d = self.delimiter
        start = 0
        while True:
            i = self.buf.find(d, start)
            if i < 0:
                break
            end = i + len(d)
            replies.append(bytes(self.buf[start:end]))
            start = end
        if start:
            del self.buf[:start]
        if len(self.buf) > self.max_len:
            raise FramingError(f"no delimiter within {self.max_len} bytes")
        return replies

    @property
    def pending(self) -> int:
        return len(self.buf)


class HeaderFramer:
    """Replies framed by the netkit reply header; checks that ``seq`` arrives in order.

    ``ack=True``: the stream starts with the server's session ack (``serve tcp`` answers the
    session header with it); it is checked and skipped before the first reply.
    """

    __slots__ = ("ack", "buf", "next_seq")

    def __init__(self, first_seq: int = 0, *, ack: bool = False) -> None:
        self.buf = bytearray()
        self.next_seq = first_seq
        self.ack = ack

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        replies: list[bytes] = []
        pos = 0
        buf = self.buf
        if self.ack:
            if len(buf) < sh.ACK_LEN:
                return replies
            ack = sh.decode_ack(bytes(buf[: sh.ACK_LEN]))
            if ack is None:
                raise FramingError("the server did not answer the netkit session header (not netkit serve tcp?)")
            if not ack.ok:
                raise FramingError("the server does not support request sessions (netkit serve tcp too old?)")
            self.ack = False
            pos = sh.ACK_LEN
        while len(buf) - pos >= REP_HEADER_LEN:
            body_len, seq = REP_HEADER.unpack_from(buf, pos)
            if body_len > MAX_FRAME_BODY:
                raise FramingError(f"reply body of {body_len} bytes is over the {MAX_FRAME_BODY} limit")
            end = pos + REP_HEADER_LEN + body_len
            if len(buf) < end:
                break
            if seq != self.next_seq:
                raise FramingError(f"reply seq {seq}, expected {self.next_seq}")
            self.next_seq = (self.next_seq + 1) & 0xFFFFFFFF
            replies.append(bytes(buf[pos + REP_HEADER_LEN : end]))
            pos = end
        if pos:
            del buf[:pos]
        return replies

    @property
    def pending(self) -> int:
        return len(self.buf)


Framer = LengthFramer | DelimiterFramer | HeaderFramer


def session_preamble(key: Any = None, *, now_ms: int = 0, nonce: bytes = b"") -> bytes:
    """The netkit session header a header-framed client sends first (kind ``KIND_REQUESTS``).

    With a measurement ``key`` (issue 10) the header carries ``FLAG_KEYED`` and the 32-byte trailer
    (time, nonce, HMAC tag); ``now_ms`` and ``nonce`` must be fresh for every connection, since a
    keyed server rejects a replayed header.
    """
    header = sh.Header(kind=KIND_REQUESTS, direction=sh.SINK, duration_ms=0, block_size=1)
    if key is None:
        return sh.encode_header(header)
    from netkit.core import keyed

    raw = sh.encode_header(dataclasses.replace(header, flags=header.flags | keyed.FLAG_KEYED))
    return raw + keyed.encode_header_trailer(key, raw, now_ms, nonce)


def is_requests_header(data: bytes) -> bool | None:
    """True when ``data`` starts with a netkit session header of kind requests; None: too short."""
    if len(data) < 7:
        return None
    return data[:5] == sh.MAGIC and data[5] == sh.VERSION and data[6] == KIND_REQUESTS


def encode_request(seq: int, body: bytes, reply_len: int) -> bytes:
    return REQ_HEADER.pack(len(body), reply_len, seq & 0xFFFFFFFF) + body


def encode_reply(seq: int, body: bytes) -> bytes:
    return REP_HEADER.pack(len(body), seq & 0xFFFFFFFF) + body


class RequestParser:
    """Server side of header framing: bytes in, ``(seq, body_len, reply_len)`` out."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, int]]:
        self.buf += data
        out: list[tuple[int, int, int]] = []
        pos = 0
        buf = self.buf
        while len(buf) - pos >= REQ_HEADER_LEN:
            body_len, reply_len, seq = REQ_HEADER.unpack_from(buf, pos)
            if body_len > MAX_FRAME_BODY or reply_len > MAX_FRAME_BODY:
                raise FramingError("request frame over the size limit")
            end = pos + REQ_HEADER_LEN + body_len
            if len(buf) < end:
                break
            out.append((seq, body_len, reply_len))
            pos = end
        if pos:
            del buf[:pos]
        return out


# ----- the latency histogram --------------------------------------------------------------------

class LatencyHistogram:
    """Bounded-memory latency histogram (ns) with exact min/max/avg and merging.

    Buckets are :class:`LogHistogram`'s (``buckets_per_octave`` per doubling; 32 gives about 2 %
    relative width, about 1,400 counters for 1 ns .. 1 h). Percentiles are the upper bound of the
    bucket that holds them, clamped to the exact min and max, so p99.9 never exceeds max.
    """

    __slots__ = ("hist", "max", "min", "sum")

    def __init__(self, buckets_per_octave: int = 32) -> None:
        self.hist = LogHistogram(buckets_per_octave)
        self.min: int | None = None
        self.max: int | None = None
        self.sum = 0

    @property
    def count(self) -> int:
        return self.hist.total

    def add(self, value: int) -> None:
        self.add_many((value,))

    def add_many(self, values: Iterable[int]) -> None:
        """Add many samples at once (the load generator adds a second's worth in one call)."""
        vals = values if isinstance(values, (list, tuple)) else list(values)
        if not vals:
            return
        lo, hi = min(vals), max(vals)
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        self.sum += sum(vals)
        k = self.hist.k
        counts = self.hist.counts
        if lo >= 1:
            # LogHistogram's bucket index, int(log2(v) * k) + 1, computed by C-level maps: this
            # runs once a second over up to ~150k samples inside the load generator's process.
            for i, c in Counter(map(int, map(operator.mul, map(math.log2, vals), repeat(k)))).items():
                counts[i + 1] = counts.get(i + 1, 0) + c
        else:
            for v in vals:
                i = 0 if v < 1 else int(math.log2(v) * k) + 1
                counts[i] = counts.get(i, 0) + 1
        self.hist.total += len(vals)

    def merge(self, other: LatencyHistogram) -> None:
        if other.count == 0:
            return
        if other.hist.k != self.hist.k:
            raise ValueError("cannot merge histograms of different resolution")
        counts = self.hist.counts
        for i, c in other.hist.counts.items():
            counts[i] = counts.get(i, 0) + c
        self.hist.total += other.hist.total
        self.sum += other.sum
        assert other.min is not None and other.max is not None
        self.min = other.min if self.min is None else min(self.min, other.min)
        self.max = other.max if self.max is None else max(self.max, other.max)

    def percentile(self, p: float) -> float | None:
        v = self.hist.percentile(p)
        if v is None or self.min is None or self.max is None:
            return None
        return float(min(max(v, self.min), self.max))

    @property
    def avg(self) -> float | None:
        return None if self.count == 0 else self.sum / self.count

    def summary_ms(self) -> LatencyMs:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v / NS_PER_MS, 6)

        return LatencyMs(
            min=ms(self.min), avg=ms(self.avg), p50=ms(self.percentile(50)), p90=ms(self.percentile(90)),
            p99=ms(self.percentile(99)), p99_9=ms(self.percentile(99.9)), max=ms(self.max),
        )


@dataclass(frozen=True)
class LatencyMs:
    """``latency_ms`` in results: the same names as ``rtt_ms`` of measure latency, plus p99_9."""

    min: float | None = None
    avg: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p99_9: float | None = None
    max: float | None = None


# ----- the pool's configuration and counters ----------------------------------------------------

#: The reconnect schedule: the same defaults as ``netkit probe`` (0.5 s doubling, at most 10 s).
DEFAULT_BACKOFF = Backoff(500_000_000, 2.0, 10 * NS)


@dataclass(frozen=True)
class PoolConfig:
    """How a :class:`netkit.io.clients.pool.ConnectionPool` behaves. Seconds as floats."""

    size: int = 10
    connect_timeout_s: float = 5.0
    #: How long ``acquire()`` waits for a free connection before ``PoolTimeout``.
    acquire_timeout_s: float = 5.0
    #: Idle connections are checked this often (0: never).
    health_interval_s: float = 1.0
    backoff: Backoff = DEFAULT_BACKOFF
    jitter: bool = False
    #: A slot that cannot reconnect within this long after a drop gives up (a bound, not a goal).
    reconnect_window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("pool size must be at least 1")
        if self.connect_timeout_s <= 0 or self.acquire_timeout_s < 0 or self.health_interval_s < 0:
            raise ValueError("pool timeouts must be positive")


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of a pool's counters."""

    size: int
    open: int
    idle: int
    in_use: int
    connects: int  # successful connects, first ones and reconnects
    reconnects: int  # successful connects that replaced a dropped connection
    drops: int  # connections lost while the pool was running (peer closed, reset, closed by a check)
    connect_failures: int
    health_failures: int
    acquire_timeouts: int
    gave_up: int  # slots that could not reconnect within the reconnect window


# ----- the load run ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestsConfig:
    """What ``measure requests`` does; the CLI builds it, :mod:`netkit.io.measure.request_load` runs it."""

    host: str
    port: int
    connections: int = 10
    duration_s: float | None = 10.0
    requests: int | None = None
    size: int = 64
    reply_size: int | None = None  # length framing; None: the request size
    framing: str = "length"
    delimiter: bytes | None = None
    payload: bytes | None = None  # None: ``size`` generated bytes
    expect: str | None = None  # regex checked against each reply
    rate: float | None = None  # requests/s: open loop
    timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    tls: bool = False
    insecure: bool = False
    cafile: str | None = None
    server_name: str | None = None
    backoff: Backoff = DEFAULT_BACKOFF
    jitter: bool = False
    family: int = 0
    key: Any = None  # issue 10: a netkit.core.keyed.Key; header framing then sends a keyed header

    def __post_init__(self) -> None:
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}")
        if self.framing == "delimiter" and not self.delimiter:
            raise ValueError("delimiter framing needs a delimiter")
        if self.connections < 1:
            raise ValueError("at least one connection")
        if self.duration_s is None and self.requests is None:
            raise ValueError("give a duration or a request count")

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    def request_body(self) -> bytes:
        """The bytes of one request (without the header frame)."""
        if self.payload is not None:
            return self.payload
        if self.framing == "delimiter":
            assert self.delimiter is not None
            fill = max(0, self.size - len(self.delimiter))
            return pattern(fill) + self.delimiter
        return pattern(self.size)

    def expected_reply_size(self) -> int:
        """Reply size for length framing (and the body size asked for in header framing)."""
        if self.reply_size is not None:
            return self.reply_size
        return len(self.request_body())


def pattern(n: int) -> bytes:
    """``n`` printable bytes (never starting with NUL, so ``serve tcp`` sees a plain client at once)."""
    base = b"netkit-requests-0123456789abcdefghijklmnopqrstuvwxyz"
    return (base * (n // len(base) + 1))[:n]


@dataclass(frozen=True)
class IntervalRow:
    """One reporting interval (a second; the last may be shorter): ``event: "interval"`` in jsonl,
    ``intervals[]`` in json, with ``start_s``/``end_s`` as ``measure throughput`` has them."""

    start_s: float
    end_s: float
    requests: int
    requests_per_s: float
    bytes_per_s: dict[str, float]
    latency_ms: dict[str, float | None]
    errors: int
    reconnects: int
    open_connections: int

    def to_json(self) -> dict[str, Any]:
        return {"event": "interval", "start_s": self.start_s, "end_s": self.end_s, "requests": self.requests,
                "requests_per_s": self.requests_per_s, "bytes_per_s": self.bytes_per_s,
                "latency_ms": self.latency_ms, "errors": self.errors, "reconnects": self.reconnects,
                "open_connections": self.open_connections}


@dataclass(frozen=True)
class RequestThresholds:
    min_rps: float | None = None
    max_p99_ms: float | None = None
    passed: bool = True
    failed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"min_rps": self.min_rps, "max_p99_ms": self.max_p99_ms, "passed": self.passed,
                "failed": list(self.failed)}


@dataclass(frozen=True)
class RequestsResult:
    """The outcome of a load run. ``to_json`` gives the documented schema."""

    target: str
    address: str | None
    tls: bool
    mode: str  # "closed-loop" | "open-loop"
    framing: str
    connections: int
    rate_rps: float | None
    elapsed_ns: int
    requests: int  # completed (a reply recognised)
    sent: int
    bytes_sent: int
    bytes_received: int
    latency: LatencyMs
    errors: dict[str, int]
    reconnects: int
    drops: int
    intervals: tuple[IntervalRow, ...] = ()
    thresholds: RequestThresholds = field(default_factory=RequestThresholds)
    interrupted: bool = False
    error: str | None = None  # why the run could not start or ended early
    #: Open loop: scheduled requests this client never sent (it fell over --timeout behind its own
    #: schedule). The sender's shortfall: never counted as the server's errors.
    unsent: int = 0

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_ns / NS

    @property
    def requests_per_s(self) -> float | None:
        return None if self.elapsed_ns <= 0 else self.requests / self.elapsed_s

    @property
    def note(self) -> str:
        return NOTE_OPEN_LOOP if self.mode == "open-loop" else NOTE_CLOSED_LOOP

    def to_json(self, *, intervals: bool = False) -> dict[str, Any]:
        el = self.elapsed_s
        rps = self.requests_per_s
        doc: dict[str, Any] = {
            "target": self.target,
            "address": self.address,
            "tls": self.tls,
            "mode": self.mode,
            "framing": self.framing,
            "connections": self.connections,
            "rate_rps": self.rate_rps,
            "duration_s": round(el, 6),
            "requests": self.requests,
            "sent": self.sent,
            "unsent": self.unsent,
            "sent_per_s": round(self.sent / el, 3) if el > 0 else None,
            "requests_per_s": None if rps is None else round(rps, 3),
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "bytes_per_s": {
                "sent": round(self.bytes_sent / el, 3) if el > 0 else None,
                "received": round(self.bytes_received / el, 3) if el > 0 else None,
            },
            "latency_ms": _asdict(self.latency),
            "latency_from": "scheduled" if self.mode == "open-loop" else "sent",
            "note": self.note,
            "errors": {"total": sum(self.errors.values()), **{k: self.errors.get(k, 0) for k in ERROR_KINDS}},
            "reconnects": self.reconnects,
            "drops": self.drops,
            "thresholds": self.thresholds.to_json(),
            "interrupted": self.interrupted,
            "error": self.error,
        }
        if intervals:
            doc["intervals"] = [row.to_json() for row in self.intervals]
        return doc


def _asdict(lat: LatencyMs) -> dict[str, float | None]:
    return {"min": lat.min, "avg": lat.avg, "p50": lat.p50, "p90": lat.p90, "p99": lat.p99,
            "p99_9": lat.p99_9, "max": lat.max}


def check_thresholds(result: RequestsResult, min_rps: float | None, max_p99_ms: float | None) -> RequestThresholds:
    """``--min-rps`` against the run's requests/s, ``--max-p99`` against its p99 (ms).

    A run that completed no request at all fails whatever the thresholds (as ping exits 1 with no
    reply).
    """
    failed: list[str] = []
    if result.requests == 0:
        failed.append("no request completed" + (f" ({result.error})" if result.error else ""))
    rps = result.requests_per_s or 0.0
    if min_rps is not None and rps < min_rps:
        failed.append(f"{rps:.1f} requests/s < min-rps {min_rps:g}")
    p99 = result.latency.p99
    if max_p99_ms is not None and p99 is not None and p99 > max_p99_ms:
        failed.append(f"latency p99 {p99:.3f} ms > max-p99 {max_p99_ms:g} ms")
    return RequestThresholds(min_rps, max_p99_ms, not failed, tuple(failed))
