"""Pure parts of measure requests: framers fed in any split, escapes, the histogram, thresholds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.core import session_header as sh
from netkit.core.errors import InputError
from netkit.core.escape import unescape
from netkit.core.latency_histogram import LatencyHistogram, LatencyMs
from netkit.core.request_framing import (
    DelimiterFramer,
    FramingError,
    HeaderFramer,
    LengthFramer,
    RequestParser,
    encode_reply,
    encode_request,
    is_requests_header,
    session_preamble,
)
from netkit.core.requests_config import RequestsConfig
from netkit.core.requests_result import ERROR_KINDS, RequestsResult, check_requests_thresholds


def feed_split(framer, data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    for c in sorted(set(cuts)):
        out += framer.feed(data[pos:c])
        pos = c
    out += framer.feed(data[pos:])
    return out


@given(st.lists(st.integers(min_value=0, max_value=30), max_size=8))
def test_length_framer_any_split(cuts: list[int]) -> None:
    data = b"abcdefghij" * 3
    assert feed_split(LengthFramer(10), data, cuts) == [b"abcdefghij"] * 3


@given(st.lists(st.integers(min_value=0, max_value=20), max_size=8))
def test_delimiter_framer_any_split(cuts: list[int]) -> None:
    data = b"PONG\r\n+OK\r\nx\r\n"
    assert feed_split(DelimiterFramer(b"\r\n"), data, cuts) == [b"PONG\r\n", b"+OK\r\n", b"x\r\n"]


def test_delimiter_framer_bounds_its_buffer() -> None:
    f = DelimiterFramer(b"\n", max_len=8)
    with pytest.raises(FramingError):
        f.feed(b"123456789")


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_header_framer_skips_ack_and_checks_seq(cuts: list[int]) -> None:
    data = sh.encode_ack(sh.Ack()) + encode_reply(0, b"hello") + encode_reply(1, b"") + encode_reply(2, b"x" * 20)
    assert feed_split(HeaderFramer(ack=True), data, cuts) == [b"hello", b"", b"x" * 20]


def test_header_framer_rejects_out_of_order_and_unsupported() -> None:
    with pytest.raises(FramingError):
        HeaderFramer().feed(encode_reply(5, b"x"))
    with pytest.raises(FramingError, match="does not support"):
        HeaderFramer(ack=True).feed(sh.encode_ack(sh.Ack(sh.STATUS_UNSUPPORTED)))
    with pytest.raises(FramingError, match="did not answer"):
        HeaderFramer(ack=True).feed(b"hello wor")


def test_request_parser_and_preamble() -> None:
    p = RequestParser()
    data = encode_request(7, b"abc", 4096) + encode_request(8, b"", 1)
    assert p.feed(data[:5]) == []
    assert p.feed(data[5:]) == [(7, 3, 4096), (8, 0, 1)]
    pre = session_preamble()
    assert len(pre) == sh.HEADER_LEN and is_requests_header(pre) is True
    assert is_requests_header(pre[:4]) is None
    assert is_requests_header(sh.encode_header(sh.Header())) is False  # throughput kind


def test_unescape() -> None:
    assert unescape(r"PING\r\n") == b"PING\r\n"
    assert unescape(r"a\x00\\b\t") == b"a\x00\\b\t"
    assert unescape("héllo") == "héllo".encode()
    with pytest.raises(InputError):
        unescape(r"\q")


def test_histogram_percentiles_bounded_and_merged() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    a.add_many(list(range(1_000, 1_000_001, 1_000)))  # 1 us .. 1 ms, 1000 samples
    b.add_many([200_000_000] * 10)  # ten 200 ms stalls
    a.merge(b)
    assert a.count == 1010 and a.min == 1_000 and a.max == 200_000_000
    assert a.percentile(50) == pytest.approx(505_000, rel=0.03)
    assert a.percentile(99.9) == 200_000_000  # clamped to max, never above it
    assert a.percentile(99.5) == 200_000_000
    assert a.percentile(99) == pytest.approx(1_000_000, rel=0.03)
    s = a.summary_ms()
    assert s.p99_9 == 200.0 and s.min == 0.001
    assert len(a.hist.counts) < 400  # bounded: buckets, not samples
    assert LatencyHistogram().summary_ms() == LatencyMs()


def _result(**kw) -> RequestsResult:
    base = dict(target="h:1", address=None, tls=False, mode="closed-loop", framing="length", connections=1,
                rate_rps=None, elapsed_ns=2_000_000_000, requests=1000, sent=1000, bytes_sent=64000,
                bytes_received=64000, latency=LatencyMs(p99=3.0), errors={}, reconnects=0, drops=0)
    base.update(kw)
    return RequestsResult(**base)


def test_thresholds_and_schema() -> None:
    r = _result()
    assert check_requests_thresholds(r, 400, 5).passed
    t = check_requests_thresholds(r, 600, 2)
    assert not t.passed and len(t.failed) == 2
    assert not check_requests_thresholds(_result(requests=0), None, None).passed
    doc = r.to_json()
    assert doc["requests_per_s"] == 500.0
    assert list(doc["latency_ms"]) == ["min", "avg", "p50", "p90", "p99", "p99_9", "max"]
    assert set(doc["errors"]) == {"total", *ERROR_KINDS}
    assert doc["latency_from"] == "sent" and "coordinated omission" in doc["note"]
    assert _result(mode="open-loop").to_json()["latency_from"] == "scheduled"


def test_config_request_bodies() -> None:
    c = RequestsConfig(host="h", port=1, size=10, framing="delimiter", delimiter=b"\n")
    assert c.request_body().endswith(b"\n") and len(c.request_body()) == 10
    assert RequestsConfig(host="h", port=1, size=64).expected_reply_size() == 64
    assert RequestsConfig(host="h", port=1, payload=b"PING\r\n").expected_reply_size() == 6
    assert RequestsConfig(host="h", port=1, size=64).request_body()[:1] != b"\x00"
    with pytest.raises(ValueError):
        RequestsConfig(host="h", port=1, duration_s=None, requests=None)


def test_bulk_add_matches_loghistogram_buckets() -> None:
    import random

    from netkit.core.stats import LogHistogram

    rnd = random.Random(7)
    vals = [rnd.randint(1, 20_000_000_000) for _ in range(5000)] + [1, 2, 3]
    ours, ref = LatencyHistogram(), LogHistogram(32)
    ours.add_many(vals)
    for v in vals:
        ref.add(v)
    assert ours.hist.counts == ref.counts and ours.count == ref.total
    zero = LatencyHistogram()
    zero.add_many([0, 5])  # a zero sample takes the slow path (bucket 0)
    assert zero.hist.counts == {0: 1, LogHistogram(32)._index(5): 1}


def test_kinds_are_enums_and_json_keeps_their_strings() -> None:
    import json

    from netkit.core.request_framing import FramingKind
    from netkit.core.requests_result import LoadMode

    r = _result(mode="open-loop", framing="header")
    assert r.mode is LoadMode.OPEN_LOOP and r.framing is FramingKind.HEADER
    doc = r.to_json()
    assert type(doc["mode"]) is str and type(doc["framing"]) is str
    assert '"mode": "open-loop", "framing": "header"' in json.dumps(doc)
    assert RequestsConfig(host="h", port=1, framing="delimiter", delimiter=b"\n").framing is FramingKind.DELIMITER
    with pytest.raises(ValueError, match="unknown framing"):
        RequestsConfig(host="h", port=1, framing="lines")


def test_threshold_sentences_use_plain_numbers() -> None:
    t = check_requests_thresholds(_result(), 1_000_000, 0.001)
    assert t.failed == ("500 requests/s < min-rps 1,000,000", "latency p99 3.000 ms > max-p99 0.001 ms")
    assert all("e+" not in f for f in t.failed)
