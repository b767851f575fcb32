"""iperf3's control protocol from the server's side: pure code, bytes and numbers in, values out.

The wire basics (cookie, state bytes, length-prefixed JSON) are :mod:`netkit.core.iperf3_wire`'s;
the UDP datagram header is :mod:`netkit.core.iperf3_udp`'s. This module adds what a *server*
needs, read from esnet/iperf ``src/iperf_server_api.c``, ``iperf_api.c`` and ``iperf_udp.c``
(nothing copied):

- :class:`ControlReader`: the client's control bytes in, events out (a state byte, a JSON
  document), every length bounded before a byte of it is buffered.
- :func:`parse_params`: the client's parameter document -> :class:`Iperf3Params`, or the iperf3
  error code (:class:`ParamError`) that the server sends after SERVER_ERROR so the client prints
  iperf3's own message ("no SCTP support available", "test authorization failed", ...).
- :func:`server_sends`: which of the client's data connections the server sends on.
- :class:`UdpReceiver`: iperf3's receiver accounting for one UDP stream (sequence gaps as loss,
  a late datagram takes one loss back and counts as out of order, RFC 1889 jitter over transit
  times with the first datagram's transit as the start).
- :func:`results_doc`: the server's results document; :func:`server_output_text`: what
  ``--get-server-output`` shows on the client.
- :class:`Iperf3TestSummary` / :class:`Iperf3ServeSummary`: what ``netkit serve iperf3`` reports.

The state flow a server drives (iperf3's numbers): after the cookie, PARAM_EXCHANGE (9); the
client sends its parameters; CREATE_STREAMS (10); the client opens ``parallel`` data connections
(twice that with ``bidirectional``, the client's senders first), each starting with the cookie;
TEST_START (1) and TEST_RUNNING (2); the client ends the test with TEST_END (4) (or
CLIENT_TERMINATE, 12); EXCHANGE_RESULTS (13): the client's results JSON comes in, the server's
goes out; DISPLAY_RESULTS (14); the client answers IPERF_DONE (16). A server that cannot run the
test sends SERVER_ERROR (-2) and two big-endian int32: iperf3's error code and an errno; one that
is full sends ACCESS_DENIED (-1); one that ends a test early sends SERVER_TERMINATE (11).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netkit.core.iperf3_wire import LENGTH, Iperf3State

#: iperf3's error codes (``i_errno``) a server sends after SERVER_ERROR; the client prints its own text.
IENUMSTREAMS = 6  # "number of parallel streams too large"
IEBLOCKSIZE = 7  # "block size too large"
IEBUFSIZE = 8  # "socket buffer size too large"
IEOMIT = 12  # "bogus value for --omit"
IEUNIMP = 13  # "an option you are trying to set is not implemented yet"
IENOSCTP = 18  # "no SCTP support available"
IEREVERSEBIDIR = 25
IETOTALRATE = 27  # "total required bandwidth is larger than server limit"
IERECVPARAMS = 114  # "unable to receive parameters from client"
IEAUTHTEST = 142  # "test authorization failed"

#: iperf3's own bounds, so a client's numbers never size the server's memory.
MAX_PARAMS_JSON = 8 * 1024  # iperf3's MAX_PARAMS_JSON_STRING
MAX_RESULTS_JSON = 1024 * 1024  # a client's results: a few KB per stream, 128 streams at most
MAX_STREAMS = 128
MAX_TCP_BLOCK = 1024 * 1024  # iperf3's MAX_BLOCKSIZE
MAX_UDP_BLOCK = 65507
MAX_WINDOW = 512 * 1024 * 1024  # iperf3's MAX_TCP_BUFFER
MAX_OMIT_S = 600
MAX_TIME_S = 86400
DEFAULT_TCP_LEN = 128 * 1024
DEFAULT_UDP_LEN = 1460
DEFAULT_UDP_RATE = 1_000_000  # bit/s, iperf3's default -b for UDP


class ControlError(Exception):
    """The control connection broke the protocol (garbage, an oversized message): end this test."""


@dataclass(frozen=True)
class StateEvent:
    state: int


@dataclass(frozen=True)
class JsonEvent:
    doc: Any


class ControlReader:
    """The client's control bytes in (:meth:`feed`), events out (:meth:`next_event`).

    ``expect_json(limit)`` says the next message is a JSON document of at most ``limit`` bytes;
    otherwise the next message is one state byte. Nothing beyond one message is buffered past
    ``limit`` + 4 bytes: a 100 MB announced length is refused from its 4-byte prefix.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._json_limit: int | None = None

    def expect_json(self, limit: int) -> None:
        self._json_limit = limit

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > MAX_RESULTS_JSON + 64 + (self._json_limit or 0):
            raise ControlError("the client sent more control bytes than any message can hold")

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_event(self) -> StateEvent | JsonEvent | None:
        """The next whole message, or None until more bytes arrive; ControlError when malformed."""
        buf = self._buf
        if self._json_limit is None:
            if not buf:
                return None
            (state,) = struct.unpack_from("!b", buf, 0)
            del buf[:1]
            return StateEvent(int(state))
        if len(buf) < LENGTH.size:
            return None
        (n,) = LENGTH.unpack_from(buf, 0)
        if n == 0 or n > self._json_limit:
            raise ControlError(f"the client announced a JSON message of {n} bytes (at most {self._json_limit})")
        if len(buf) < LENGTH.size + n:
            return None
        body = bytes(buf[LENGTH.size:LENGTH.size + n])
        del buf[:LENGTH.size + n]
        self._json_limit = None
        try:
            doc = json.loads(body)
        except ValueError:
            raise ControlError("the client sent invalid JSON") from None
        return JsonEvent(doc)


def encode_error(code: int, err: int = 0) -> bytes:
    """SERVER_ERROR and its detail: iperf3's error code and an errno, big-endian int32."""
    return struct.pack("!bii", Iperf3State.SERVER_ERROR, code, err)


@dataclass(frozen=True)
class Iperf3Params:
    """What a client asked for, as the server needs it."""

    udp: bool = False
    reverse: bool = False
    bidir: bool = False
    parallel: int = 1
    duration_s: int = 10  # 0 with -n/-k
    omit_s: int = 0
    num_bytes: int = 0  # -n: bytes to send (0: none)
    blockcount: int = 0  # -k: blocks to send
    block_len: int = DEFAULT_TCP_LEN
    window: int = 0  # -w: socket buffer size (0: the system's)
    bandwidth_bps: int = 0  # -b (UDP: the client always says; 0: unlimited)
    counters_64bit: bool = False
    get_server_output: bool = False
    json_output: bool = False
    client_version: str = ""

    @property
    def streams(self) -> int:
        """Data connections the client opens."""
        return self.parallel * 2 if self.bidir else self.parallel

    @property
    def mode(self) -> str:
        proto = "udp" if self.udp else "tcp"
        way = "bidir" if self.bidir else ("reverse" if self.reverse else "forward")
        return f"{proto}-{way}"


@dataclass(frozen=True)
class ParamError:
    """A parameter document the server refuses: iperf3's code for the client, words for the log."""

    code: int
    reason: str


def _int(doc: dict[str, Any], key: str, default: int = 0) -> int | None:
    """An integer field (iperf3 reads numbers as ints); None when present and not a number."""
    v = doc.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return int(v)


def parse_params(doc: Any, *, max_streams: int = MAX_STREAMS,
                 max_rate_bps: float | None = None) -> Iperf3Params | ParamError:
    """The client's parameter document -> what to run, or the error it gets (iperf3's checks, then ours)."""
    if not isinstance(doc, dict):
        return ParamError(IERECVPARAMS, "parameters are not a JSON object")
    if doc.get("sctp") is True:
        return ParamError(IENOSCTP, "SCTP is not supported")
    if "authtoken" in doc:
        return ParamError(IEAUTHTEST, "authentication is not supported")
    if doc.get("mptcp") is True:
        return ParamError(IEUNIMP, "MPTCP is not supported")
    udp = doc.get("udp") is True
    nums: dict[str, int] = {}
    for key, default in (("omit", 0), ("time", 10), ("num", 0), ("blockcount", 0), ("parallel", 1),
                         ("len", 0), ("window", 0), ("bandwidth", 0)):
        v = _int(doc, key, default)
        if v is None or v < 0:
            return ParamError(IERECVPARAMS, f"parameter {key!r} is not a non-negative number")
        nums[key] = v
    if nums["omit"] > MAX_OMIT_S:
        return ParamError(IEOMIT, f"omit {nums['omit']} s is more than {MAX_OMIT_S}")
    if nums["time"] > MAX_TIME_S:
        return ParamError(5, f"time {nums['time']} s is more than {MAX_TIME_S}")
    parallel = nums["parallel"]
    reverse = doc.get("reverse") is True
    bidir = doc.get("bidirectional") is True
    if reverse and bidir:
        return ParamError(IEREVERSEBIDIR, "reverse and bidirectional at once")
    streams = parallel * (2 if bidir else 1)
    if parallel < 1 or parallel > MAX_STREAMS or streams > max_streams:
        return ParamError(IENUMSTREAMS, f"{streams} streams asked for, at most {max_streams} served")
    length = nums["len"] or (DEFAULT_UDP_LEN if udp else DEFAULT_TCP_LEN)
    if length > (MAX_UDP_BLOCK if udp else MAX_TCP_BLOCK) or (udp and length < 16):
        return ParamError(IEBLOCKSIZE, f"block size {length} is out of range")
    if nums["window"] > MAX_WINDOW:
        return ParamError(IEBUFSIZE, f"window {nums['window']} is too large")
    bandwidth = nums["bandwidth"]
    if udp and "bandwidth" not in doc:
        bandwidth = DEFAULT_UDP_RATE
    if max_rate_bps is not None and bandwidth * streams > max_rate_bps:
        return ParamError(IETOTALRATE, f"{bandwidth * streams} bit/s asked for, at most {max_rate_bps:.0f}")
    version = doc.get("client_version")
    return Iperf3Params(
        udp=udp, reverse=reverse, bidir=bidir, parallel=parallel, duration_s=nums["time"], omit_s=nums["omit"],
        num_bytes=nums["num"], blockcount=nums["blockcount"], block_len=length, window=nums["window"],
        bandwidth_bps=bandwidth, counters_64bit=bool(doc.get("udp_counters_64bit")),
        get_server_output=bool(doc.get("get_server_output")), json_output=bool(doc.get("json")),
        client_version=str(version)[:64] if isinstance(version, str) else "",
    )


def server_sends(params: Iperf3Params) -> list[bool]:
    """Per data connection in accept order: does the server send on it? (The client's senders first.)"""
    if params.bidir:
        return [False] * params.parallel + [True] * params.parallel
    return [params.reverse] * params.parallel


def send_budget(params: Iperf3Params) -> int | None:
    """Bytes the server sends in all before it stops by itself (-n/-k with -R), or None: until TEST_END."""
    if params.num_bytes:
        return params.num_bytes
    if params.blockcount:
        return params.blockcount * params.block_len
    return None


class UdpReceiver:
    """iperf3's receiver accounting for one UDP stream (times: integer ns, wall clock)."""

    __slots__ = ("bytes", "datagrams", "errors", "highest", "jitter_s", "out_of_order", "prev_transit_s")

    def __init__(self) -> None:
        self.bytes = 0
        self.datagrams = 0
        self.highest = 0  # the highest packet counter seen (iperf3's ``packets``)
        self.errors = 0  # sequence gaps, less one per late arrival (iperf3's ``errors``)
        self.out_of_order = 0
        self.jitter_s = 0.0
        self.prev_transit_s = 0.0

    def add(self, count: int, sent_sec: int, sent_usec: int, arrival_ns: int, nbytes: int) -> None:
        first = self.highest == 0 and self.datagrams == 0
        self.bytes += nbytes
        self.datagrams += 1
        if count >= self.highest + 1:
            if count > self.highest + 1:
                self.errors += count - 1 - self.highest
            self.highest = count
        else:
            self.out_of_order += 1
            if self.errors > 0:
                self.errors -= 1
        transit = arrival_ns / 1e9 - (sent_sec + sent_usec / 1e6)
        if first:
            self.prev_transit_s = transit
        d = abs(transit - self.prev_transit_s)
        self.prev_transit_s = transit
        self.jitter_s += (d - self.jitter_s) / 16.0


@dataclass(frozen=True)
class StreamCount:
    """One data stream as the server counted it, for the results document and the summary."""

    id: int
    sender: bool  # the server sent on it
    bytes: int  # sent (taken by the kernel) or received, after the omit period
    seconds: float  # the span counted over
    retransmits: int | None = None  # a TCP sender's, from TCP_INFO
    packets: int = 0  # UDP: datagrams sent, or the highest counter received
    errors: int = 0  # UDP receiver: iperf3's loss count
    out_of_order: int = 0
    jitter_s: float = 0.0
    omitted_packets: int = 0  # UDP: the part of ``packets`` and ``errors`` from the omit period (-O)
    omitted_errors: int = 0


def results_doc(streams: Sequence[StreamCount], cpu: tuple[float, float, float], *,
                server_output: str | None = None) -> dict[str, Any]:
    """The server's results document; ``cpu`` as (total, user, system) percent."""
    senders = [s for s in streams if s.sender]
    if not senders:
        has_retr = -1  # iperf3's value when the server only receives
    else:
        has_retr = 1 if any(s.retransmits is not None for s in senders) else 0
    doc: dict[str, Any] = {
        "cpu_util_total": round(cpu[0], 6), "cpu_util_user": round(cpu[1], 6), "cpu_util_system": round(cpu[2], 6),
        "sender_has_retransmits": has_retr,
    }
    if server_output is not None:
        doc["server_output_text"] = server_output
    doc["streams"] = [
        {"id": s.id, "bytes": s.bytes,
         "retransmits": s.retransmits if (s.sender and s.retransmits is not None) else -1,
         "jitter": s.jitter_s, "errors": s.errors, "omitted_errors": s.omitted_errors, "packets": s.packets,
         "omitted_packets": s.omitted_packets, "start_time": 0, "end_time": round(s.seconds, 6)}
        for s in streams
    ]
    return doc


def client_sent(doc: Any) -> dict[int, int]:
    """From the client's results document: datagrams (UDP) it says each stream sent ({} if absent)."""
    out: dict[int, int] = {}
    if isinstance(doc, dict) and isinstance(doc.get("streams"), list):
        for s in doc["streams"]:
            if isinstance(s, dict) and isinstance(s.get("id"), int) and isinstance(s.get("packets"), int):
                out[s["id"]] = s["packets"]
    return out


def _rate_text(nbytes: float, seconds: float) -> str:
    bps = nbytes * 8 / seconds if seconds > 0 else 0.0
    for unit, div in (("Gbits/sec", 1e9), ("Mbits/sec", 1e6), ("Kbits/sec", 1e3)):
        if bps >= div:
            return f"{bps / div:6.2f} {unit}"
    return f"{bps:6.2f} bits/sec"


def _size_text(nbytes: float) -> str:
    for unit, div in (("GBytes", 1 << 30), ("MBytes", 1 << 20), ("KBytes", 1 << 10)):
        if nbytes >= div:
            return f"{nbytes / div:6.2f} {unit}"
    return f"{nbytes:6.0f} Bytes"


@dataclass(frozen=True)
class IntervalRow:
    """One stream's bytes over one reporting interval (seconds from the test's start)."""

    stream: int
    start_s: float
    end_s: float
    bytes: int


def server_output_text(peer: str, params: Iperf3Params, intervals: Sequence[IntervalRow],
                       streams: Sequence[StreamCount]) -> str:
    """What ``--get-server-output`` prints on the client: netkit's own per-interval view, iperf3-like."""
    lines = [f"netkit serve iperf3: accepted test from {peer} ({params.mode}, {params.streams} streams)",
             "[ ID] Interval           Transfer     Bitrate"]
    for r in intervals:
        lines.append(f"[{r.stream:3d}] {r.start_s:6.2f}-{r.end_s:<6.2f} sec  {_size_text(r.bytes)}  "
                     f"{_rate_text(r.bytes, r.end_s - r.start_s)}")
    lines.append("- - - - - - - - - - - - - - - - - - - - - - - - -")
    for s in streams:
        role = "sender" if s.sender else "receiver"
        extra = ""
        if params.udp and not s.sender:
            extra = f"  {s.jitter_s * 1000:.3f} ms  {s.errors}/{s.packets}"
        elif s.retransmits is not None:
            extra = f"  {s.retransmits} retr"
        lines.append(f"[{s.id:3d}] 0.00-{s.seconds:<6.2f} sec  {_size_text(s.bytes)}  "
                     f"{_rate_text(s.bytes, s.seconds)}{extra}  {role}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Iperf3TestSummary:
    """One finished (or cut) test, as the server saw it: the ``test`` event's fields."""

    id: int
    peer: str
    mode: str  # tcp-forward, tcp-reverse, tcp-bidir, udp-forward, udp-reverse
    streams: int
    duration_s: float  # the measured span
    bytes_received: int  # by the server
    bytes_sent: int
    bits_per_second: float  # both directions over the span
    retransmits: int | None = None
    lost_packets: int | None = None  # UDP, server as receiver
    packets: int | None = None
    lost_percent: float | None = None
    out_of_order: int | None = None
    jitter_ms: float | None = None
    client_version: str | None = None  # as the client announced it
    outcome: str = "ok"  # ok, or why it ended early: client-terminate, disconnect, timeout, max-duration, ...
    error: str | None = None


def summarize(test_id: int, peer: str, params: Iperf3Params, streams: Sequence[StreamCount], outcome: str = "ok",
              error: str | None = None) -> Iperf3TestSummary:
    span = max((s.seconds for s in streams), default=0.0)
    rx = sum(s.bytes for s in streams if not s.sender)
    tx = sum(s.bytes for s in streams if s.sender)
    retr = [s.retransmits for s in streams if s.sender and s.retransmits is not None]
    lost = packets = ooo = None
    jitter = lost_pct = None
    receivers = [s for s in streams if not s.sender]
    if params.udp and receivers:
        lost = sum(s.errors - s.omitted_errors for s in receivers)
        packets = sum(s.packets - s.omitted_packets for s in receivers)
        ooo = sum(s.out_of_order for s in receivers)
        jitter = round(sum(s.jitter_s for s in receivers) / len(receivers) * 1000, 6)
        lost_pct = round(100.0 * lost / packets, 6) if packets else 0.0
    return Iperf3TestSummary(
        id=test_id, peer=peer, mode=params.mode, streams=params.streams, duration_s=round(span, 6),
        bytes_received=rx, bytes_sent=tx, bits_per_second=round((rx + tx) * 8 / span, 3) if span > 0 else 0.0,
        retransmits=sum(retr) if retr else None, lost_packets=lost, packets=packets, lost_percent=lost_pct,
        out_of_order=ooo, jitter_ms=jitter, client_version=params.client_version or None, outcome=outcome,
        error=error,
    )


@dataclass(frozen=True)
class Iperf3ServerConfig:
    """What ``netkit serve iperf3`` does. None for a limit means no limit."""

    host: str = "127.0.0.1"
    port: int = 5201
    max_tests: int = 32
    max_duration_s: float | None = 60.0
    max_streams: int = 128
    max_rate_bps: float | None = None
    idle_timeout_s: float = 10.0
    once: bool = False
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class Iperf3ServeSummary:
    """What the server did between its start and its stop (the totals)."""

    host: str
    port: int
    tests: int  # tests that reached TEST_RUNNING
    completed: int
    cut: int  # ended early, by the client or by a limit
    refused: int  # busy (--max-tests), denied, bad parameters or garbage
    peak_concurrent: int
    bytes_received: int
    bytes_sent: int
    #: Why clients were refused: max_tests, denied, params, protocol, timeout (no cookie or message in time).
    refused_by: dict[str, int] = field(default_factory=dict)
    #: Tests a limit ended: max_duration, max_rate, idle_timeout.
    limits_hit: dict[str, int] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    stopped_by: str | None = None
