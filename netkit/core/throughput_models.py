"""What ``netkit measure throughput`` asks for and what it finds. Pure data and arithmetic.

Field names are the published JSON schema (kept stable for scripts): the top level has ``protocol``, ``streams``,
``reverse``, ``duration_s``, ``intervals``, ``summary``, ``counted_by`` (then a few extra fields);
each interval ``start_s``, ``end_s``, ``bytes``, ``bits_per_second`` (plus ``omitted`` and the
per-stream split); the summary ``sent_bytes``, ``received_bytes``, ``sent_bits_per_second``,
``received_bits_per_second``, ``retransmits``, ``cpu_percent`` (plus ``rtt_ms``, ``cpu_seconds``
and the per-stream results).

Rates are always bytes over the *measured* elapsed time of the side that counted them; a total
over several streams is their bytes over the common interval (the longest stream's measured time:
streams start together), never a sum of per-stream rates over different times.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from netkit.core.pacing import fell_behind
from netkit.core.units import format_bitrate

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.keyed import Key

NS = 1_000_000_000


class _Word(str, Enum):
    """A kind whose value is the word JSON, CSV and tables show (``str(x)`` and ``f"{x}"`` too)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Direction(_Word):
    """Which way a stream's data flows, seen from the client."""

    SEND = "send"  # the client sends on this stream (forward)
    RECV = "recv"  # the client receives on this stream (--reverse)
    ECHO = "echo"  # UDP through an echo reflector: out and back on one stream


SEND = Direction.SEND
RECV = Direction.RECV


class ServerKind(_Word):
    """What answers the client: asked for with ``--iperf3``/``--plain`` or found out (``auto``)."""

    AUTO = "auto"  # find out from the first stream's answer
    NETKIT = "netkit"  # netkit serve tcp / serve udp --mode echo: the receiver reports its count
    IPERF3 = "iperf3"  # iperf3 -s: its control protocol, its results
    PLAIN = "plain"  # any other service: sender-side counting


SERVER_KINDS = tuple(k.value for k in ServerKind)


class CountedBy(_Word):
    """Whose count a received figure is: the receiver's (what arrived) or the sender's (what was queued)."""

    RECEIVER = "receiver"
    SENDER = "sender"


class Transport(_Word):
    TCP = "tcp"
    UDP = "udp"


@dataclass(frozen=True)
class ThroughputConfig:
    """Everything one measurement needs; built by the CLI from its options."""

    host: str
    port: int
    duration_s: float = 10.0
    parallel: int = 1
    reverse: bool = False
    bidir: bool = False
    block_size: int = 128 * 1024
    interval_s: float = 1.0
    omit_s: float = 0.0
    server: ServerKind = ServerKind.AUTO
    udp: bool = False
    rate_bps: float | None = None
    connect_timeout_s: float = 5.0
    detect_timeout_s: float = 1.0  # how long "auto" waits for a netkit/iperf3 answer
    #: ``--key``: sign session headers and UDP probes, for a server that accepts only keyed clients.
    key: Key | None = None
    #: ``--min-rate``: the result fails its check below this headline rate (bits/s).
    min_rate_bps: float | None = None

    def __post_init__(self) -> None:
        if self.server not in SERVER_KINDS:
            raise ValueError(f"unknown server kind {self.server!r}")
        object.__setattr__(self, "server", ServerKind(self.server))  # a plain word given: its kind

    def directions(self) -> list[Direction]:
        """The direction of each stream the client opens, in order (iperf3's order for bidir)."""
        if self.bidir:
            return [SEND] * self.parallel + [RECV] * self.parallel
        return [RECV if self.reverse else SEND] * self.parallel


@dataclass(frozen=True)
class StreamInterval:
    """One stream's bytes in one reporting interval."""

    id: int
    direction: Direction
    bytes: int
    bits_per_second: float


@dataclass(frozen=True)
class ThroughputInterval:
    """One reporting interval as the client saw it (bytes it sent, or bytes it received)."""

    start_s: float
    end_s: float
    bytes: int
    bits_per_second: float
    omitted: bool = False
    streams: tuple[StreamInterval, ...] = ()
    #: ``--bidir``: the client's send (tx) and receive (rx) streams summed apart; None otherwise.
    tx_bytes: int | None = None
    tx_bits_per_second: float | None = None
    rx_bytes: int | None = None
    rx_bits_per_second: float | None = None


@dataclass(frozen=True)
class StreamResult:
    """One stream's totals after the omit period. ``None`` where nobody counted."""

    id: int
    direction: Direction
    sent_bytes: int | None
    received_bytes: int | None
    sent_bits_per_second: float | None
    received_bits_per_second: float | None
    retransmits: int | None
    rtt_ms: float | None
    counted_by: CountedBy
    #: The measured time behind each rate (after the omit period); None where nobody measured it.
    sent_seconds: float | None = None
    received_seconds: float | None = None
    #: When that side's time began, in seconds after the earliest stream's (streams counted by the
    #: netkit server start as their first bytes arrive); a total's interval spans them all.
    sent_start_s: float = 0.0
    received_start_s: float = 0.0


@dataclass(frozen=True)
class DirectionSum:
    """The streams of one direction summed (``--bidir`` reports the two directions apart)."""

    direction: Direction  # SEND (the client sends: tx) or RECV (the client receives: rx)
    streams: int
    sent_bytes: int | None
    received_bytes: int | None
    sent_bits_per_second: float | None
    received_bits_per_second: float | None
    retransmits: int | None


@dataclass(frozen=True)
class ThroughputSummary:
    """Every stream's totals after the omit period, and the streams themselves."""

    sent_bytes: int | None
    received_bytes: int | None
    sent_bits_per_second: float | None
    received_bits_per_second: float | None
    retransmits: int | None
    cpu_percent: float | None
    rtt_ms: float | None = None
    cpu_seconds: float | None = None
    streams: tuple[StreamResult, ...] = ()
    #: The client's send (tx) and receive (rx) streams apart; each None when no stream goes that way.
    tx: DirectionSum | None = None
    rx: DirectionSum | None = None


@dataclass(frozen=True)
class UdpSummary:
    """UDP mode: what the probe accounting found (round trip through an echo reflector)."""

    rate_bps: float
    packet_size: int
    packets_sent: int
    packets_received: int
    lost_packets: int
    lost_percent: float | None
    duplicates: int
    reordered: int
    jitter_ms: float | None  # RFC 3550 estimator over round-trip transit times
    lost_forward: int | None = None  # client -> reflector (netkit's reflector counts what it got)
    lost_return: int | None = None  # reflector -> client
    #: datagrams this host dropped itself (its socket buffers: replies that overflowed the receive
    #: buffer, sends the kernel refused); never counted in ``lost_packets``. None where unknown.
    local_drops: int | None = None
    #: False when the sender could not reach ``rate_bps`` (a shortfall, not loss); None: unpaced.
    rate_reached: bool | None = None
    #: the server's own loss figure where it differs in method (iperf3: gaps in its sequence,
    #: blind to datagrams lost after the last one that arrived).
    peer_lost_packets: int | None = None


@dataclass(frozen=True)
class ThroughputThresholds:
    """``--min-rate`` and its verdict, judged like the other meters' thresholds."""

    min_rate_bps: float | None = None
    passed: bool = True
    failed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ThroughputResult:
    protocol: Transport
    streams: int
    reverse: bool
    duration_s: float
    intervals: tuple[ThroughputInterval, ...]
    summary: ThroughputSummary
    counted_by: CountedBy
    target: str = ""
    server: ServerKind = ServerKind.NETKIT  # the kind that answered (never AUTO)
    bidir: bool = False
    omit_s: float = 0.0
    block_size: int = 0
    interrupted: bool = False
    note: str | None = None
    udp: UdpSummary | None = field(default=None)
    #: things the user must hear once, on stderr (e.g. the sender could not keep up)
    warnings: tuple[str, ...] = ()
    thresholds: ThroughputThresholds = field(default_factory=ThroughputThresholds)

    @property
    def rate_bps(self) -> float | None:
        """The headline rate: what arrived when a receiver counted, else what was sent."""
        s = self.summary
        if s.received_bits_per_second is not None:
            return s.received_bits_per_second
        return s.sent_bits_per_second


# ----- arithmetic -------------------------------------------------------------------------------

def bps(nbytes: int | None, elapsed_ns: int | None) -> float | None:
    """Bits per second over a measured elapsed time; None when either is unknown or zero."""
    if nbytes is None or not elapsed_ns or elapsed_ns <= 0:
        return None
    return nbytes * 8 * NS / elapsed_ns


def interval_row(
    start_ns: int,
    end_ns: int,
    deltas: Sequence[tuple[int, Direction, int]],
    omitted: bool = False,
) -> ThroughputInterval:
    """Build one interval from per-stream byte deltas ``(id, direction, bytes)``.

    ``start_ns``/``end_ns`` are relative to the start of the test (of the measured part, after
    the omit period). With streams both ways (``--bidir``) the two directions are also summed
    apart: a sum of both is not a throughput of either.
    """
    span = end_ns - start_ns
    streams = tuple(StreamInterval(sid, d, n, bps(n, span) or 0.0) for sid, d, n in deltas)
    total = sum(n for _, _, n in deltas)
    tx = rx = None
    if any(d == SEND for _, d, _ in deltas) and any(d == RECV for _, d, _ in deltas):
        tx = sum(n for _, d, n in deltas if d == SEND)
        rx = sum(n for _, d, n in deltas if d == RECV)
    return ThroughputInterval(round(start_ns / NS, 6), round(end_ns / NS, 6), total, bps(total, span) or 0.0,
                       omitted, streams, tx, None if tx is None else bps(tx, span) or 0.0,
                       rx, None if rx is None else bps(rx, span) or 0.0)


def stream_result(
    sid: int,
    direction: Direction,
    *,
    sent_bytes: int | None,
    sent_ns: int | None,
    received_bytes: int | None,
    received_ns: int | None,
    retransmits: int | None,
    rtt_us: int | None,
    counted_by: CountedBy,
    sent_start_ns: int = 0,
    received_start_ns: int = 0,
) -> StreamResult:
    return StreamResult(
        sid, direction, sent_bytes, received_bytes, bps(sent_bytes, sent_ns), bps(received_bytes, received_ns),
        retransmits, None if rtt_us is None else round(rtt_us / 1000, 3), counted_by,
        _seconds(sent_bytes, sent_ns), _seconds(received_bytes, received_ns),
        round(sent_start_ns / NS, 9), round(received_start_ns / NS, 9),
    )


def _seconds(nbytes: int | None, elapsed_ns: int | None) -> float | None:
    if nbytes is None or not elapsed_ns or elapsed_ns <= 0:
        return None
    return round(elapsed_ns / NS, 9)


def _sum_opt(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _rate_sum(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def common_rate(nbytes: Sequence[int | None], seconds: Sequence[float | None],
                rates: Sequence[float | None], starts: Sequence[float] | None = None) -> float | None:
    """Total bytes over the common interval of the streams that counted them.

    The common interval runs from the earliest stream's start to the latest one's end (``starts``
    in seconds, 0 for all when the streams share one clock). A stream whose last bytes arrived
    earlier (a queue drains unevenly) still lies inside it. Summing per-stream rates instead
    would credit each stream over its own shorter time and report more than the link carried.
    Streams whose time is unknown (results built without it) fall back to the sum of their rates.
    """
    begins = list(starts) if starts is not None else [0.0] * len(nbytes)
    counted = [(b, t, s) for b, t, s in zip(nbytes, seconds, begins, strict=True) if b is not None]
    if not counted:
        return None
    if all(t is not None and t > 0 for _, t, _ in counted):
        span = max(s + t for _, t, s in counted if t is not None) - min(s for _, _, s in counted)
        return sum(b for b, _, _ in counted) * 8 / span
    return _rate_sum(rates)


def _direction_sum(direction: Direction, streams: Sequence[StreamResult]) -> DirectionSum | None:
    mine = [s for s in streams if s.direction == direction]
    if not mine:
        return None
    return DirectionSum(
        direction, len(mine),
        _sum_opt([s.sent_bytes for s in mine]), _sum_opt([s.received_bytes for s in mine]),
        common_rate([s.sent_bytes for s in mine], [s.sent_seconds for s in mine],
                    [s.sent_bits_per_second for s in mine], [s.sent_start_s for s in mine]),
        common_rate([s.received_bytes for s in mine], [s.received_seconds for s in mine],
                    [s.received_bits_per_second for s in mine], [s.received_start_s for s in mine]),
        _sum_opt([s.retransmits for s in mine]),
    )


def summarize_streams(
    streams: Sequence[StreamResult],
    cpu_seconds: float | None,
    wall_ns: int,
) -> ThroughputSummary:
    """Totals over every stream: bytes add up; rates are total bytes over the common interval."""
    rtts = [s.rtt_ms for s in streams if s.rtt_ms is not None]
    cpu_percent = None
    if cpu_seconds is not None and wall_ns > 0:
        cpu_percent = round(100.0 * cpu_seconds * NS / wall_ns, 1)
    return ThroughputSummary(
        sent_bytes=_sum_opt([s.sent_bytes for s in streams]),
        received_bytes=_sum_opt([s.received_bytes for s in streams]),
        sent_bits_per_second=common_rate([s.sent_bytes for s in streams], [s.sent_seconds for s in streams],
                                         [s.sent_bits_per_second for s in streams],
                                         [s.sent_start_s for s in streams]),
        received_bits_per_second=common_rate([s.received_bytes for s in streams],
                                             [s.received_seconds for s in streams],
                                             [s.received_bits_per_second for s in streams],
                                             [s.received_start_s for s in streams]),
        retransmits=_sum_opt([s.retransmits for s in streams]),
        cpu_percent=cpu_percent,
        rtt_ms=round(sum(rtts) / len(rtts), 3) if rtts else None,
        cpu_seconds=None if cpu_seconds is None else round(cpu_seconds, 4),
        streams=tuple(streams),
        tx=_direction_sum(SEND, streams),
        rx=_direction_sum(RECV, streams),
    )


def after_omit(total_sent: int | None, total_received: int | None, omitted: int) -> tuple[int | None, int | None]:
    """Sent and received bytes after the omit period, leaving out the same leading bytes on both sides.

    A TCP stream is one sequence of bytes, so the omitted part is its first ``omitted`` bytes
    (what the receiver got in its omit period when it says, else what the client moved in its
    own). Leaving out each side's own omit-period count instead would subtract bytes queued in
    the sender's buffer from the sent figure but not from the received one, and report more
    received than sent.
    """
    def rest(total: int | None) -> int | None:
        return None if total is None else max(0, total - omitted)

    return rest(total_sent), rest(total_received)


def check_thresholds(result: ThroughputResult, min_rate_bps: float | None) -> ThroughputThresholds:
    """``--min-rate`` against the headline rate (with ``--bidir``: each direction apart).

    The headline is what arrived when a receiver counted, else what was sent.
    """
    failed: list[str] = []
    if min_rate_bps is not None:
        s = result.summary
        checks: list[tuple[str, float | None]] = []
        if result.bidir and s.tx is not None and s.rx is not None:
            for label, d in (("send", s.tx), ("receive", s.rx)):
                rate = d.received_bits_per_second if d.received_bits_per_second is not None \
                    else d.sent_bits_per_second
                checks.append((f"{label} rate", rate))
        else:
            checks.append(("rate", result.rate_bps))
        for label, rate in checks:
            if rate is None or rate < min_rate_bps:
                shown = "unknown" if rate is None else format_bitrate(rate)
                failed.append(f"{label} {shown} is below --min-rate {format_bitrate(min_rate_bps)}")
    return ThroughputThresholds(min_rate_bps, not failed, tuple(failed))


def overall_counted_by(streams: Sequence[StreamResult]) -> CountedBy:
    """The receiver only when every stream's received count came from its receiver."""
    if streams and all(s.counted_by == CountedBy.RECEIVER for s in streams):
        return CountedBy.RECEIVER
    return CountedBy.SENDER


def tick_times(duration_ns: int, interval_ns: int, omit_ns: int) -> Iterator[int]:
    """Interval boundaries relative to the start: every interval through the omit period, one at
    its end, then every interval after it, and the end of the test last."""
    t = 0
    if omit_ns > 0:
        while t + interval_ns < omit_ns:
            t += interval_ns
            yield t
        t = omit_ns
        yield t
    while t + interval_ns < duration_ns:
        t += interval_ns
        yield t
    if t < duration_ns:
        yield duration_ns


# ----- UDP pacing ------------------------------------------------------------------------------

UDP_BUFFER_FLOOR = 16 * 1024 * 1024
UDP_BUFFER_CAP = 128 * 1024 * 1024
UDP_BUFFER_SECONDS = 0.25  # a buffer that holds this long at the rate rides out a descheduled reader


def udp_buffer_bytes(rate_bps: float) -> int:
    """Socket buffer size for a UDP stream at ``rate_bps``: a quarter second of traffic, within bounds.

    ``rate_bps`` 0 is unpaced (as fast as possible): the largest buffer.
    """
    if rate_bps <= 0:
        return UDP_BUFFER_CAP
    want = int(rate_bps / 8 * UDP_BUFFER_SECONDS)
    return max(UDP_BUFFER_FLOOR, min(UDP_BUFFER_CAP, want))


def rate_reached(asked_bps: float, sent_bytes: int, sent_ns: int) -> bool:
    """Did a paced sender reach the asked rate over its measured sending time?"""
    got = bps(sent_bytes, sent_ns)
    return got is not None and not fell_behind(asked_bps, got)


def shortfall_warning(rate_bps: float, streams: Sequence[tuple[int, int]]) -> str:
    """One line for a sender that could not keep up; ``streams`` as (bytes sent, sending ns)."""
    got = [bps(b, ns) or 0.0 for b, ns in streams]
    each = "" if len(got) == 1 else " per stream"
    return (f"the sender could not keep up with {format_bitrate(rate_bps)}{each}: it sent "
            f"{format_bitrate(min(got))}{'' if len(got) == 1 else ' on the slowest stream'} "
            "(a shortfall of this host's sending rate, not loss)")


def local_drop_count(before: Sequence[int | None], after: Sequence[int | None], failures: int) -> int | None:
    """Datagrams this host dropped: receive-buffer drops over the run plus sends it refused."""
    if any(b is None for b in before) or any(a is None for a in after):
        return None
    return failures + sum(max(0, (a or 0) - (b or 0)) for a, b in zip(after, before, strict=True))


# ----- TCP_INFO -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TcpInfo:
    retransmits: int  # tcpi_total_retrans: segments retransmitted over the connection's life
    rtt_us: int  # tcpi_rtt: the smoothed RTT estimate
    rttvar_us: int


# Linux ``struct tcp_info``: 8 one-byte fields, then u32s. tcpi_rtt is the 16th u32 (offset 68),
# tcpi_rttvar the 17th (72), tcpi_total_retrans the 24th (100).
_TCPI_MIN = 104


def parse_tcp_info(raw: bytes) -> TcpInfo | None:
    """Parse the fields we report from a Linux ``TCP_INFO`` blob; None when it is too short."""
    if len(raw) < _TCPI_MIN:
        return None
    rtt, rttvar = struct.unpack_from("=II", raw, 68)
    (total_retrans,) = struct.unpack_from("=I", raw, 100)
    return TcpInfo(total_retrans, rtt, rttvar)
