"""iperf3's UDP test on the wire: the stream "connect" datagrams, the datagram header, the results.

Pure code: bytes and documents in, values out. No socket, no clock (times are passed in).

What iperf3 does (read from esnet/iperf ``src/iperf_udp.c`` and ``src/iperf_api.c``; nothing
copied). The test runs through the TCP control connection exactly as a TCP test does; only the
data streams differ:

- The parameters say ``"udp": true`` and carry ``"bandwidth"`` (bit/s) and ``"len"`` (the
  datagram size); ``"udp_counters_64bit"`` asks for a 64-bit packet counter.
- On CREATE_STREAMS the client opens one UDP socket per stream, connected to the server's port,
  and sends a 4-byte "connect" datagram (0x36373839 in the sender's byte order). The server
  connects its socket to that address, opens a new listener for the next stream, and answers
  0x39383736 (older servers: 987654321). The client waits for that answer before the next stream.
- Every data datagram starts with the send time and a packet counter, big-endian:
  ``sec`` (u32), ``usec`` (u32), ``count`` (u32, or u64 with 64-bit counters), then padding up to
  ``len``. The counter starts at 1 and rises by one per datagram the kernel accepted.
- The receiver counts bytes only while the test is in TEST_RUNNING; it reports per stream
  ``bytes`` (received), ``packets`` (the highest counter seen), ``errors`` (sequence gaps: its loss
  count, blind to datagrams lost after the last one that arrived) and ``jitter`` (seconds, the
  RFC 1889 estimator over transit-time differences). Its own ``-J`` summary (3.12) shows that
  highest counter as ``packets``, not the count the client sent.
- The client's results document carries per stream ``packets``: how many it sent. iperf3's own
  ``lost_percent`` is ``errors / packets`` with the sender's count.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

CONNECT_MSG = 0x36373839
CONNECT_REPLY = 0x39383736
LEGACY_CONNECT_REPLY = 987654321

HEADER_32 = struct.Struct("!III")  # sec, usec, count
HEADER_64 = struct.Struct("!IIQ")
MIN_DATAGRAM = HEADER_64.size  # room for either header
MAX_COUNT_32 = 0xFFFFFFFF


def connect_message() -> bytes:
    """The client's 4-byte "here I am" datagram (iperf3 writes it in host byte order)."""
    return struct.pack("=I", CONNECT_MSG)


def is_connect_reply(data: bytes) -> bool:
    """Is ``data`` the server's answer to the connect datagram? Read in host byte order, as iperf3
    does. (Not either order: the reply's bytes reversed are the connect message, so an echo
    service would otherwise pass for an iperf3 server.)"""
    if len(data) != 4:
        return False
    return struct.unpack("=I", data)[0] in (CONNECT_REPLY, LEGACY_CONNECT_REPLY)


def needs_64bit_counters(expected_packets: float) -> bool:
    """A 32-bit counter wraps after 4.29 billion datagrams; ask for 64 bits before that can happen."""
    return expected_packets >= MAX_COUNT_32 // 2


def encode_header_into(buf: bytearray, count: int, t_ns: int, counters_64bit: bool = False) -> None:
    """Write iperf3's datagram header (send time ``t_ns``, packet ``count``) at the start of ``buf``."""
    sec, rem = divmod(t_ns, 1_000_000_000)
    usec = rem // 1000
    if counters_64bit:
        HEADER_64.pack_into(buf, 0, sec & 0xFFFFFFFF, usec, count)
    else:
        HEADER_32.pack_into(buf, 0, sec & 0xFFFFFFFF, usec, count & MAX_COUNT_32)


def decode_header(data: bytes, counters_64bit: bool = False) -> tuple[int, int, int]:
    """(sec, usec, count) from a datagram; ValueError when it is too short to hold the header."""
    header = HEADER_64 if counters_64bit else HEADER_32
    if len(data) < header.size:
        raise ValueError(f"an iperf3 UDP datagram holds at least {header.size} bytes, got {len(data)}")
    sec, usec, count = header.unpack_from(data, 0)
    return sec, usec, count


@dataclass(frozen=True)
class UdpStreamReport:
    """One stream of the server's results document, as a receiver of UDP counts it."""

    id: int
    bytes: int  # bytes the server received while the test ran
    packets: int  # the highest packet counter it saw
    errors: int  # its sequence-gap loss count
    jitter_s: float
    seconds: float | None  # the span it counted over (end_time - start_time), when given


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_udp_results(doc: Any) -> dict[int, UdpStreamReport]:
    """The server's results document -> {stream id: report}; ValueError when it is malformed."""
    if not isinstance(doc, dict) or not isinstance(doc.get("streams"), list):
        raise ValueError("results without streams")
    out: dict[int, UdpStreamReport] = {}
    for s in doc["streams"]:
        if not isinstance(s, dict) or not isinstance(s.get("id"), int):
            raise ValueError("a stream result without an id")
        if not all(_number(s.get(k)) for k in ("bytes", "packets", "errors", "jitter")):
            raise ValueError(f"stream {s['id']}: bytes, packets, errors or jitter missing")
        start, end = s.get("start_time"), s.get("end_time")
        secs = None
        if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end > start:
            secs = float(end - start)
        out[s["id"]] = UdpStreamReport(
            id=s["id"], bytes=int(s["bytes"]), packets=int(s["packets"]), errors=max(0, int(s["errors"])),
            jitter_s=float(s["jitter"]), seconds=secs,
        )
    return out
