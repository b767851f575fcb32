"""iperf3's control protocol on the wire: the cookie, the state bytes, the JSON messages.

Pure code: bytes and documents in, values out. No socket, no clock. The client that speaks it is
:mod:`netkit.io.measure.iperf3` (TCP tests) and :mod:`netkit.io.measure.iperf3_udp` (UDP tests,
whose datagram details are :mod:`netkit.core.iperf3_udp`).

What iperf3 does (read from esnet/iperf ``src/iperf_api.c`` and ``src/iperf_client_api.c``;
nothing copied): the client opens a *control* connection and sends a 37-byte cookie. From then
on the server drives the test with one signed state byte at a time:

==================  ===  =====================================================================
PARAM_EXCHANGE        9  client sends its parameters: 4-byte big-endian length + JSON
CREATE_STREAMS       10  client opens ``parallel`` data connections (twice that with
                         ``bidirectional``, senders first), each starting with the same cookie
TEST_START            1  prepare
TEST_RUNNING          2  data flows; the *client* ends the test by sending TEST_END (4)
EXCHANGE_RESULTS     13  client sends its results JSON, then reads the server's
DISPLAY_RESULTS      14  client closes the data streams and answers IPERF_DONE (16)
ACCESS_DENIED        -1  the server is busy with another client
SERVER_ERROR         -2  followed by two 32-bit big-endian ints: iperf's error code and errno
SERVER_TERMINATE     11  the server was stopped
==================  ===  =====================================================================

Stream ids are assigned in connection order on both sides: 1, then 3, 4, 5, ... (iperf3 skips 2,
and keeps doing so for compatibility). The results JSON carries per stream ``id``, ``bytes``
(sent for a sender, received for a receiver), ``retransmits`` and UDP fields; the server's
``bytes`` are what *it* counted, which is how netkit reports receiver-counted figures here.
"""

from __future__ import annotations

import json
import math
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from netkit.core.errors import CheckFailed
from netkit.core.throughput_models import RECV, Direction, ThroughputConfig


class Iperf3State(IntEnum):
    """The state byte the server sends (and the client's TEST_END / IPERF_DONE)."""

    TEST_START = 1
    TEST_RUNNING = 2
    TEST_END = 4
    PARAM_EXCHANGE = 9
    CREATE_STREAMS = 10
    SERVER_TERMINATE = 11
    CLIENT_TERMINATE = 12
    EXCHANGE_RESULTS = 13
    DISPLAY_RESULTS = 14
    IPERF_START = 15
    IPERF_DONE = 16
    ACCESS_DENIED = -1
    SERVER_ERROR = -2


#: The first byte an iperf3 server answers a cookie with: it is ready, busy, or failing.
GREETINGS = (Iperf3State.PARAM_EXCHANGE, Iperf3State.ACCESS_DENIED, Iperf3State.SERVER_ERROR)

COOKIE_SIZE = 37
MAX_JSON = 8 * 1024 * 1024  # a results document is a few KB; anything this large is not iperf3
LENGTH = struct.Struct("!I")  # the length prefix of every JSON message
ERROR_DETAIL = struct.Struct("!ii")  # after SERVER_ERROR: iperf's error code, errno
_COOKIE_CHARS = "abcdefghijklmnopqrstuvwxyz234567"


def make_cookie() -> bytes:
    """36 random characters from iperf3's alphabet and a NUL: 37 bytes."""
    return "".join(secrets.choice(_COOKIE_CHARS) for _ in range(COOKIE_SIZE - 1)).encode() + b"\x00"


def stream_id(index: int) -> int:
    """iperf3's id for the ``index``-th stream (0-based): 1, 3, 4, 5, ..."""
    return 1 if index == 0 else index + 2


def encode_state(state: int) -> bytes:
    return struct.pack("!b", state)


def decode_state(byte: bytes) -> int:
    """The signed state in ``byte`` (an int: a server may send a state this client does not know)."""
    value: int = struct.unpack("!b", byte[:1])[0]
    return value


def is_greeting(byte: bytes) -> bool:
    """Is ``byte`` how an iperf3 server answers a cookie? (How auto-detection tells iperf3 apart.)"""
    return len(byte) >= 1 and decode_state(byte) in GREETINGS


def state_name(state: int) -> str:
    try:
        return Iperf3State(state).name
    except ValueError:
        return str(state)


def encode_json(obj: dict[str, Any]) -> bytes:
    """One control message: the JSON document after its 4-byte big-endian length."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    return LENGTH.pack(len(body)) + body


def json_length(prefix: bytes) -> int:
    """The length of the JSON body that follows ``prefix`` (4 bytes); CheckFailed when it cannot be iperf3's."""
    (n,) = LENGTH.unpack(prefix)
    if n == 0 or n > MAX_JSON:
        raise CheckFailed(f"iperf3 server sent a JSON message of {n} bytes")
    return int(n)


def decode_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise CheckFailed("iperf3 server sent invalid JSON") from None


def error_detail(raw: bytes) -> str:
    """The words for the 8 bytes after SERVER_ERROR."""
    code, err = ERROR_DETAIL.unpack(raw)
    return f"iperf3 server error {code}" + (f" (errno {err})" if err > 0 else "")


def failure_text(state: int) -> str:
    """Why the test cannot go on when the server sends ``state`` where the client expected another
    (SERVER_ERROR's detail is read from the wire: :func:`error_detail`)."""
    if state == Iperf3State.ACCESS_DENIED:
        return "iperf3 server is busy running another test (access denied)"
    if state == Iperf3State.SERVER_TERMINATE:
        return "iperf3 server terminated the test"
    return f"iperf3 server sent unexpected state {state_name(state)}"


def params_for(cfg: ThroughputConfig, client_version: str) -> dict[str, Any]:
    """The parameter document: whole seconds, as iperf3's own client sends them."""
    p: dict[str, Any] = {
        "tcp": True,
        "omit": round(cfg.omit_s),
        "time": max(1, math.ceil(cfg.duration_s)),
        "num": 0,
        "blockcount": 0,
        "parallel": cfg.parallel,
        "len": cfg.block_size,
        "pacing_timer": 1000,
        "client_version": client_version,
    }
    if cfg.bidir:
        p["bidirectional"] = True
    elif cfg.reverse:
        p["reverse"] = True
    return p


@dataclass(frozen=True)
class ClientStreamCount:
    """What the client counted on one stream, for its results document."""

    id: int  # iperf3's stream id
    direction: Direction
    bytes: int  # sent for a sender, received for a receiver
    retransmits: int | None
    seconds: float


def results_doc(streams: Sequence[ClientStreamCount], cpu: tuple[float, float, float],
                sender_has_retransmits: int) -> dict[str, Any]:
    """Our results document; ``cpu`` as (total, user, system) percent."""
    return {
        "cpu_util_total": cpu[0], "cpu_util_user": cpu[1], "cpu_util_system": cpu[2],
        "sender_has_retransmits": sender_has_retransmits,
        "streams": [
            {"id": s.id, "bytes": s.bytes,
             "retransmits": -1 if (s.direction == RECV or s.retransmits is None) else s.retransmits,
             "jitter": 0, "errors": 0, "omitted_errors": 0, "packets": 0, "omitted_packets": 0,
             "start_time": 0, "end_time": s.seconds}
            for s in streams
        ],
    }


@dataclass(frozen=True)
class ServerStreamCount:
    """One stream of the server's results document (a TCP test)."""

    bytes: int  # what the server counted: received on our send streams, sent on our receive ones
    retransmits: int | None  # None when the server does not know them
    seconds: float | None  # end_time - start_time, when given


def parse_results(doc: Any) -> dict[int, ServerStreamCount]:
    """The server's results -> {stream id: its count}; CheckFailed when malformed."""
    if not isinstance(doc, dict) or not isinstance(doc.get("streams"), list):
        raise CheckFailed("iperf3 server sent results without streams")
    has_retr = doc.get("sender_has_retransmits") == 1
    out: dict[int, ServerStreamCount] = {}
    for s in doc["streams"]:
        if not isinstance(s, dict) or not isinstance(s.get("id"), int) or not isinstance(s.get("bytes"), (int, float)):
            raise CheckFailed("iperf3 server sent a malformed stream result")
        retr = s.get("retransmits")
        start, end = s.get("start_time"), s.get("end_time")
        secs = (end - start) if isinstance(start, (int, float)) and isinstance(end, (int, float)) else None
        out[s["id"]] = ServerStreamCount(
            bytes=int(s["bytes"]),
            retransmits=int(retr) if has_retr and isinstance(retr, int) and retr >= 0 else None,
            seconds=secs,
        )
    return out


def udp_params(cfg: ThroughputConfig, client_version: str, rate_bps: float, counters_64bit: bool) -> dict[str, Any]:
    """iperf3's parameter document for a UDP test: the TCP one with ``udp`` and ``bandwidth``."""
    p = params_for(replace(cfg, omit_s=0.0, reverse=False, bidir=False), client_version)
    p.pop("tcp", None)
    p["udp"] = True
    if rate_bps > 0:  # iperf3 leaves it out for -b 0 (unlimited)
        p["bandwidth"] = int(rate_bps)
    if counters_64bit:
        p["udp_counters_64bit"] = 1
    return p
