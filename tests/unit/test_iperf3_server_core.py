"""The iperf3 server's pure side: control reader, parameter checks, UDP accounting, results."""

from __future__ import annotations

import json
import struct

import pytest

from netkit.core import iperf3_server as core
from netkit.core.iperf3_server import ControlError, ControlReader, Iperf3Params, JsonEvent, ParamError, StateEvent
from netkit.core.iperf3_wire import encode_json, encode_state, parse_results

PARAMS = {"tcp": True, "omit": 0, "time": 1, "num": 0, "blockcount": 0, "parallel": 2, "len": 131072,
          "pacing_timer": 1000, "client_version": "3.12"}


def _events(reader: ControlReader) -> list[StateEvent | JsonEvent]:
    out = []
    while (ev := reader.next_event()) is not None:
        out.append(ev)
    return out


def test_control_reader_gives_the_same_events_however_the_bytes_are_split() -> None:
    wire = encode_json(PARAMS) + encode_state(4)
    for cut in range(len(wire) + 1):
        reader = ControlReader()
        reader.expect_json(core.MAX_PARAMS_JSON)
        got = []
        for part in (wire[:cut], wire[cut:]):
            reader.feed(part)
            got += _events(reader)
        assert got == [JsonEvent(PARAMS), StateEvent(4)], cut


def test_control_reader_refuses_an_oversized_announcement_from_its_prefix() -> None:
    reader = ControlReader()
    reader.expect_json(core.MAX_PARAMS_JSON)
    reader.feed(struct.pack("!I", 100 * 1024 * 1024))
    with pytest.raises(ControlError, match="104857600 bytes"):
        reader.next_event()


def test_control_reader_refuses_garbage_json_and_endless_bytes() -> None:
    reader = ControlReader()
    reader.expect_json(core.MAX_PARAMS_JSON)
    reader.feed(struct.pack("!I", 3) + b"{x}")
    with pytest.raises(ControlError, match="invalid JSON"):
        reader.next_event()
    flood = ControlReader()
    with pytest.raises(ControlError):
        flood.feed(b"\x00" * (core.MAX_RESULTS_JSON + 100))


def test_negative_state_bytes_are_signed() -> None:
    reader = ControlReader()
    reader.feed(encode_state(-2))
    assert reader.next_event() == StateEvent(-2)


@pytest.mark.parametrize(("extra", "code"), [
    ({"sctp": True}, core.IENOSCTP),
    ({"authtoken": "x"}, core.IEAUTHTEST),
    ({"parallel": 200}, core.IENUMSTREAMS),
    ({"parallel": 0}, core.IENUMSTREAMS),
    ({"len": 2 * 1024 * 1024}, core.IEBLOCKSIZE),
    ({"omit": -1}, core.IERECVPARAMS),
    ({"time": "ten"}, core.IERECVPARAMS),
    ({"reverse": True, "bidirectional": True}, core.IEREVERSEBIDIR),
])
def test_unsupported_parameters_get_iperf3s_error_codes(extra: dict[str, object], code: int) -> None:
    got = core.parse_params({**PARAMS, **extra})
    assert isinstance(got, ParamError) and got.code == code


def test_server_limits_refuse_streams_and_udp_rates_beyond_them() -> None:
    assert isinstance(core.parse_params({**PARAMS, "bidirectional": True, "parallel": 3}, max_streams=5), ParamError)
    udp = {**PARAMS, "udp": True, "tcp": False, "len": 1400, "bandwidth": 600_000_000}
    got = core.parse_params(udp, max_rate_bps=1e9)
    assert isinstance(got, ParamError) and got.code == core.IETOTALRATE  # 2 streams x 600M
    assert isinstance(core.parse_params({**udp, "parallel": 1}, max_rate_bps=1e9), Iperf3Params)


def test_params_read_every_mode() -> None:
    p = core.parse_params({**PARAMS, "bidirectional": True, "window": 262144, "get_server_output": 1})
    assert isinstance(p, Iperf3Params)
    assert (p.mode, p.streams, p.window, p.get_server_output) == ("tcp-bidir", 4, 262144, True)
    assert core.server_sends(p) == [False, False, True, True]  # the client's senders first
    r = core.parse_params({**PARAMS, "reverse": True, "num": 1000})
    assert isinstance(r, Iperf3Params) and core.server_sends(r) == [True, True] and core.send_budget(r) == 1000
    u = core.parse_params({"udp": True, "time": 1, "parallel": 1})
    assert isinstance(u, Iperf3Params) and u.bandwidth_bps == core.DEFAULT_UDP_RATE and u.block_len == 1460


def test_udp_receiver_counts_gaps_late_arrivals_and_jitter_as_iperf3() -> None:
    rx = core.UdpReceiver()
    ms = 1_000_000
    # sent every 1 ms from t=0; transit 1 ms, then 3 ms for packet 2 (late), packet 4 lost
    rx.add(1, 0, 0, 1 * ms, 100)
    rx.add(3, 0, 2000, 3 * ms, 100)  # gap: 2 counted lost
    rx.add(2, 0, 1000, 4 * ms, 100)  # late: out of order, one loss taken back
    rx.add(5, 0, 4000, 5 * ms, 100)  # gap: 4 lost
    assert (rx.highest, rx.errors, rx.out_of_order, rx.bytes) == (5, 1, 1, 400)
    # transits 1, 1, 3, 1 ms: |d| = 0 (first is its own start), 0, 2, 2 ms
    j = 0.0
    for d in (0.0, 0.0, 0.002, 0.002):
        j += (d - j) / 16
    assert rx.jitter_s == pytest.approx(j, abs=1e-9)


def test_results_document_is_what_an_iperf3_client_reads() -> None:
    counts = [core.StreamCount(1, False, 1000, 1.0), core.StreamCount(3, True, 2000, 1.0, retransmits=4)]
    doc = json.loads(json.dumps(core.results_doc(counts, (10.0, 6.0, 4.0), server_output="hi\n")))
    assert doc["sender_has_retransmits"] == 1 and doc["server_output_text"] == "hi\n"
    parsed = parse_results(doc)  # netkit's own client reads it as it reads iperf3's
    assert parsed[1].bytes == 1000 and parsed[3].retransmits == 4 and parsed[3].seconds == 1.0
    only_rx = core.results_doc(counts[:1], (0.0, 0.0, 0.0))
    assert only_rx["sender_has_retransmits"] == -1 and only_rx["streams"][0]["retransmits"] == -1


def test_summary_adds_both_directions_and_udp_loss() -> None:
    p = core.parse_params({"udp": True, "time": 1, "parallel": 1, "bidirectional": True, "len": 100})
    assert isinstance(p, Iperf3Params)
    counts = [core.StreamCount(1, False, 900, 1.0, packets=10, errors=1, jitter_s=0.002),
              core.StreamCount(3, True, 1000, 1.0, packets=10)]
    s = core.summarize(7, "127.0.0.1:5", p, counts)
    assert (s.bytes_received, s.bytes_sent, s.bits_per_second) == (900, 1000, 15200.0)
    assert (s.lost_packets, s.packets, s.lost_percent, s.jitter_ms) == (1, 10, 10.0, 2.0)
    text = core.server_output_text("127.0.0.1:5", p, [core.IntervalRow(1, 0.0, 1.0, 900)], counts)
    assert "udp-bidir" in text and "1/10" in text


def test_udp_omit_period_is_sent_apart_and_left_out_of_the_summary() -> None:
    p = core.parse_params({"udp": True, "time": 1, "omit": 1, "parallel": 1, "len": 100})
    assert isinstance(p, Iperf3Params)
    count = core.StreamCount(1, False, 900, 1.0, packets=20, errors=3, omitted_packets=10, omitted_errors=2)
    doc = core.results_doc([count], (0.0, 0.0, 0.0))
    assert (doc["streams"][0]["omitted_packets"], doc["streams"][0]["omitted_errors"]) == (10, 2)
    s = core.summarize(1, "x", p, [count])
    assert (s.packets, s.lost_packets, s.lost_percent) == (10, 1, 10.0)


def test_a_finished_test_is_one_aligned_row_with_the_peers_text_inert() -> None:
    from netkit.render.iperf3_serve import HEADER, test_row

    p = core.parse_params({**PARAMS, "reverse": True})
    assert isinstance(p, Iperf3Params)
    summary = core.summarize(3, "127.0.0.1:5000", p, [core.StreamCount(1, True, 10 * 2**20, 1.0, retransmits=2)])
    event = {"event": "test", "time": "2026-01-01T12:00:00.123Z",
             **{k: v for k, v in vars(summary).items()}, "mode": "tcp-reverse\x1b[31m"}
    row = test_row(event)
    assert "\x1b" not in row and row.startswith("12:00:00.123")
    assert "10.0 MiB" in row and "83.9 Mbit/s" in row and row.split()[-1] == "ok"
    assert len(HEADER.split()) == 11
    from netkit.render.iperf3_serve import test_lines

    lines = test_lines(event)
    assert all(len(line) <= 80 and "\x1b" not in line for line in lines)
    assert lines[0].endswith(": ok") and "83.9 Mbit/s" in lines[1] and "retr 2" in lines[1]
