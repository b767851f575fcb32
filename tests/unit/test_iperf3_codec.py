"""iperf3's control-protocol messages, as netkit encodes and parses them (no sockets)."""

from __future__ import annotations

import json
import struct

import pytest

from netkit.core.errors import CheckFailed
from netkit.core.throughput_models import RECV, SEND, ThroughputConfig
from netkit.io.measure import iperf3


def test_cookie_shape():
    c = iperf3.make_cookie()
    assert len(c) == iperf3.COOKIE_SIZE == 37
    assert c.endswith(b"\x00")
    assert set(c[:-1].decode()) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert iperf3.make_cookie() != c


def test_stream_ids_skip_two():
    assert [iperf3.stream_id(i) for i in range(4)] == [1, 3, 4, 5]


def test_states_are_signed_bytes():
    assert iperf3.encode_state(iperf3.TEST_END) == b"\x04"
    assert iperf3.decode_state(b"\xff") == iperf3.ACCESS_DENIED
    assert iperf3.decode_state(b"\xfe") == iperf3.SERVER_ERROR


def test_json_is_length_prefixed():
    raw = iperf3.encode_json({"a": 1})
    (n,) = struct.unpack("!I", raw[:4])
    assert n == len(raw) - 4 and json.loads(raw[4:]) == {"a": 1}


def test_params_whole_seconds_and_modes():
    p = iperf3.params_for(ThroughputConfig("h", 1, duration_s=1.2, parallel=2, reverse=True, block_size=65536))
    assert p["tcp"] is True and p["time"] == 2 and p["parallel"] == 2 and p["reverse"] is True
    assert p["len"] == 65536 and "bidirectional" not in p
    b = iperf3.params_for(ThroughputConfig("h", 1, bidir=True))
    assert b["bidirectional"] is True and "reverse" not in b


def test_results_doc_fields_iperf3_requires():
    doc = iperf3.results_doc([(1, SEND, 100, 2, 1.0), (3, RECV, 50, None, 1.0)], (10.0, 4.0, 6.0), 1)
    for key in ("cpu_util_total", "cpu_util_user", "cpu_util_system", "sender_has_retransmits", "streams"):
        assert key in doc
    s0, s1 = doc["streams"]
    for key in ("id", "bytes", "retransmits", "jitter", "errors", "packets", "omitted_errors", "omitted_packets"):
        assert key in s0
    assert s0["retransmits"] == 2 and s1["retransmits"] == -1


def test_parse_results():
    got = iperf3.parse_results({"sender_has_retransmits": 1, "streams": [
        {"id": 1, "bytes": 1000, "retransmits": 4, "start_time": 0, "end_time": 1.5}]})
    assert got == {1: {"bytes": 1000, "retransmits": 4, "seconds": 1.5}}
    got = iperf3.parse_results({"sender_has_retransmits": -1, "streams": [{"id": 1, "bytes": 5, "retransmits": -1}]})
    assert got[1]["retransmits"] is None and got[1]["seconds"] is None
    with pytest.raises(CheckFailed):
        iperf3.parse_results({"streams": [{"id": "x"}]})
    with pytest.raises(CheckFailed):
        iperf3.parse_results([])
