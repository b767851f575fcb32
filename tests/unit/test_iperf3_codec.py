"""iperf3's control-protocol messages, as netkit encodes and parses them (pure code, no sockets)."""

from __future__ import annotations

import json
import struct

import pytest

from netkit.core import iperf3_wire as wire
from netkit.core.errors import CheckFailed
from netkit.core.iperf3_wire import ClientStreamCount, Iperf3State, ServerStreamCount
from netkit.core.throughput_models import RECV, SEND, ThroughputConfig


def test_cookie_shape():
    c = wire.make_cookie()
    assert len(c) == wire.COOKIE_SIZE == 37
    assert c.endswith(b"\x00")
    assert set(c[:-1].decode()) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert wire.make_cookie() != c


def test_stream_ids_skip_two():
    assert [wire.stream_id(i) for i in range(4)] == [1, 3, 4, 5]


def test_states_are_signed_bytes():
    assert wire.encode_state(Iperf3State.TEST_END) == b"\x04"
    assert wire.decode_state(b"\xff") == Iperf3State.ACCESS_DENIED
    assert wire.decode_state(b"\xfe") == Iperf3State.SERVER_ERROR
    assert wire.state_name(13) == "EXCHANGE_RESULTS" and wire.state_name(99) == "99"


def test_greeting_is_how_detection_tells_iperf3_apart():
    assert wire.is_greeting(b"\x09") and wire.is_greeting(b"\xff") and wire.is_greeting(b"\xfe")
    assert not wire.is_greeting(b"") and not wire.is_greeting(b"\x00") and not wire.is_greeting(b"H")


def test_json_is_length_prefixed():
    raw = wire.encode_json({"a": 1})
    (n,) = struct.unpack("!I", raw[:4])
    assert n == len(raw) - 4 and json.loads(raw[4:]) == {"a": 1}
    assert wire.json_length(raw[:4]) == n and wire.decode_json(raw[4:]) == {"a": 1}


def test_json_framing_rejects_what_cannot_be_iperf3():
    with pytest.raises(CheckFailed, match="0 bytes"):
        wire.json_length(b"\x00\x00\x00\x00")
    with pytest.raises(CheckFailed, match="JSON message of"):
        wire.json_length(struct.pack("!I", wire.MAX_JSON + 1))
    with pytest.raises(CheckFailed, match="invalid JSON"):
        wire.decode_json(b"{nope")


def test_failure_words():
    assert "busy" in wire.failure_text(Iperf3State.ACCESS_DENIED)
    assert "terminated" in wire.failure_text(Iperf3State.SERVER_TERMINATE)
    assert wire.failure_text(Iperf3State.TEST_START).endswith("unexpected state TEST_START")
    assert wire.error_detail(struct.pack("!ii", 111, 13)) == "iperf3 server error 111 (errno 13)"
    assert wire.error_detail(struct.pack("!ii", 5, 0)) == "iperf3 server error 5"


def test_params_whole_seconds_and_modes():
    p = wire.params_for(ThroughputConfig("h", 1, duration_s=1.2, parallel=2, reverse=True, block_size=65536), "v")
    assert p["tcp"] is True and p["time"] == 2 and p["parallel"] == 2 and p["reverse"] is True
    assert p["len"] == 65536 and "bidirectional" not in p and p["client_version"] == "v"
    b = wire.params_for(ThroughputConfig("h", 1, bidir=True), "v")
    assert b["bidirectional"] is True and "reverse" not in b


def test_udp_params():
    p = wire.udp_params(ThroughputConfig("h", 1, udp=True, reverse=True, block_size=1400), "v", 5e6, True)
    assert p["udp"] is True and "tcp" not in p and "reverse" not in p
    assert p["bandwidth"] == 5_000_000 and p["udp_counters_64bit"] == 1 and p["len"] == 1400
    assert "bandwidth" not in wire.udp_params(ThroughputConfig("h", 1), "v", 0, False)


def test_results_doc_fields_iperf3_requires():
    doc = wire.results_doc([ClientStreamCount(1, SEND, 100, 2, 1.0), ClientStreamCount(3, RECV, 50, None, 1.0)],
                           (10.0, 4.0, 6.0), 1)
    for key in ("cpu_util_total", "cpu_util_user", "cpu_util_system", "sender_has_retransmits", "streams"):
        assert key in doc
    s0, s1 = doc["streams"]
    for key in ("id", "bytes", "retransmits", "jitter", "errors", "packets", "omitted_errors", "omitted_packets"):
        assert key in s0
    assert s0["retransmits"] == 2 and s1["retransmits"] == -1


def test_parse_results():
    got = wire.parse_results({"sender_has_retransmits": 1, "streams": [
        {"id": 1, "bytes": 1000, "retransmits": 4, "start_time": 0, "end_time": 1.5}]})
    assert got == {1: ServerStreamCount(bytes=1000, retransmits=4, seconds=1.5)}
    got = wire.parse_results({"sender_has_retransmits": -1, "streams": [{"id": 1, "bytes": 5, "retransmits": -1}]})
    assert got[1].retransmits is None and got[1].seconds is None
    with pytest.raises(CheckFailed):
        wire.parse_results({"streams": [{"id": "x"}]})
    with pytest.raises(CheckFailed):
        wire.parse_results([])
