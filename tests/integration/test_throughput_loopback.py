"""measure throughput over loopback against netkit's own server and a plain socat discard."""

from __future__ import annotations

import json
import socket
import subprocess
import threading

import pytest
import support

from netkit.core.throughput_models import RECV, SEND, ThroughputConfig
from netkit.io.measure.throughput import measure_throughput

pytestmark = pytest.mark.usefixtures("no_socket_leak")


@pytest.fixture(scope="module")
def server():
    with support.netkit_server("--format", "jsonl", "serve", "tcp", "--port", "0") as srv:
        yield srv


def run(srv, **kw):
    cfg = ThroughputConfig(srv.host, srv.port, duration_s=kw.pop("duration_s", 1.0), interval_s=0.5, **kw)
    rows = []
    result = measure_throughput(cfg, rows.append)
    return result, rows


def check_common(result, rows, n_streams):
    assert result.server == "netkit"
    assert result.counted_by == "receiver"
    assert result.note is None
    assert len(rows) == 2 and rows[-1].end_s == pytest.approx(1.0, abs=0.05)
    assert all(len(r.streams) == n_streams for r in rows)
    s = result.summary
    assert len(s.streams) == n_streams
    for st in s.streams:
        # TCP delivers everything before the report: the two counts agree exactly
        assert st.sent_bytes == st.received_bytes > 0
        assert st.received_bits_per_second > 1e8
        assert st.counted_by == "receiver"
    assert s.cpu_percent is not None and s.cpu_percent > 0
    assert s.received_bytes == sum(st.received_bytes for st in s.streams)
    # the client's intervals add up to what it moved
    assert sum(r.bytes for r in rows) == pytest.approx(s.sent_bytes, rel=0.02)


def test_forward(server):
    result, rows = run(server)
    check_common(result, rows, 1)
    assert result.summary.streams[0].direction == SEND
    assert result.summary.retransmits is not None and result.summary.rtt_ms is not None


@pytest.mark.parametrize("block_size", [4096, 1024 * 1024])
def test_forward_small_and_large_writes(server, block_size):
    # the server's reader batches differently for large writes (sink_lowat): nothing may be lost
    result, rows = run(server, block_size=block_size, parallel=2)
    check_common(result, rows, 2)


def test_sink_batch_follows_the_write_size():
    from netkit.io.servers.tcp_sessions import sink_lowat

    assert sink_lowat(128 * 1024) == 512 * 1024  # iperf3's default write size
    assert sink_lowat(1024 * 1024) == 128 * 1024
    assert sink_lowat(0) == 512 * 1024  # no header: the default


def test_reverse(server):
    result, rows = run(server, reverse=True)
    check_common(result, rows, 1)
    assert result.summary.streams[0].direction == RECV
    assert result.reverse is True


def test_parallel_4(server):
    result, rows = run(server, parallel=4)
    check_common(result, rows, 4)
    assert [st.id for st in result.summary.streams] == [0, 1, 2, 3]


def test_bidir(server):
    result, rows = run(server, bidir=True)
    check_common(result, rows, 2)
    assert [st.direction for st in result.summary.streams] == [SEND, RECV]


def test_omit_and_stop(server):
    stop = threading.Event()
    cfg = ThroughputConfig(server.host, server.port, duration_s=30.0, interval_s=0.2, omit_s=0.2)
    rows = []

    def on_row(row):
        rows.append(row)
        if len(rows) == 3:
            stop.set()  # like Ctrl-C: the measurement ends early and still reports

    result = measure_throughput(cfg, on_row, stop=stop)
    assert result.interrupted is True
    assert rows[0].omitted is True and not rows[1].omitted
    s = result.summary.streams[0]
    assert s.received_bytes is not None and 0 < s.received_bytes < sum(r.bytes for r in rows)


def test_server_counts_match_its_events():
    with support.netkit_server("--format", "jsonl", "serve", "tcp", "--port", "0") as own:
        result, _ = run(own, duration_s=0.5)
        got = result.summary.received_bytes
        _, out, _ = own.stop()
    sessions = [json.loads(line) for line in out.splitlines() if '"session"' in line]
    assert got in [ev["bytes"] for ev in sessions]


def test_socat_discard_falls_back_to_sender_counting():
    support.require_tool("socat")
    port = support.free_tcp_port()
    proc = subprocess.Popen(["socat", "-u", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                             "OPEN:/dev/null,wronly"], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        support.wait_until(lambda: support.tcp_listening(port), timeout=5)
        cfg = ThroughputConfig("127.0.0.1", port, duration_s=1.0, interval_s=0.5, detect_timeout_s=0.3)
        result = measure_throughput(cfg)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    assert result.server == "plain"
    assert result.counted_by == "sender"
    assert "counted by the sender" in (result.note or "")
    s = result.summary
    assert s.sent_bytes > 0 and s.received_bytes is None and s.received_bits_per_second is None
    assert s.sent_bits_per_second > 1e8


@pytest.mark.parametrize("offset, value", [(5, 99), (6, 9)])  # a version, a session kind it does not speak
def test_bad_header_is_refused_with_a_status(server, offset, value):
    from netkit.core import session_header as sh

    raw = bytearray(sh.encode_header(sh.Header()))
    raw[offset] = value
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(bytes(raw))
        got = b""
        while len(got) < sh.ACK_LEN:
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
        ack = sh.decode_ack(got)
        assert ack is not None and ack.status == sh.STATUS_UNSUPPORTED
        assert s.recv(64) == b""  # and the server closed the connection


def test_explicit_netkit_against_plain_service_fails():
    support.require_tool("socat")
    port = support.free_tcp_port()
    proc = subprocess.Popen(["socat", "-u", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                             "OPEN:/dev/null,wronly"], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        support.wait_until(lambda: support.tcp_listening(port), timeout=5)
        cfg = ThroughputConfig("127.0.0.1", port, duration_s=0.2, server="netkit", connect_timeout_s=0.3)
        from netkit.core.errors import CheckFailed

        with pytest.raises(CheckFailed, match="not a netkit server"):
            measure_throughput(cfg)
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_reverse_from_a_plain_source_counts_what_arrived():
    support.require_tool("socat")
    port = support.free_tcp_port()
    proc = subprocess.Popen(["socat", "-u", "OPEN:/dev/zero", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        support.wait_until(lambda: support.tcp_listening(port), timeout=5)
        # the source's first bytes are zeros, like the ack's first byte: detection must still say plain
        result = measure_throughput(ThroughputConfig("127.0.0.1", port, duration_s=0.5, interval_s=0.5, reverse=True))
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    assert result.server == "plain" and result.counted_by == "receiver"
    s = result.summary
    assert s.received_bytes > 0 and s.sent_bytes is None


def test_plain_against_an_echo_service_does_not_stall():
    # an echo service sends everything back: the client must read it or both sides would block
    with support.netkit_server("serve", "tcp", "--port", "0", "--mode", "echo") as echo:
        cfg = ThroughputConfig(echo.host, echo.port, duration_s=0.5, interval_s=0.5, server="plain")
        result = measure_throughput(cfg)
    assert result.server == "plain" and result.counted_by == "sender" and result.note
    assert result.summary.sent_bits_per_second > 1e8 and result.summary.received_bytes is None


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_omit_leaves_out_the_same_bytes_on_both_sides_and_restarts_intervals(server, reverse):
    cfg = ThroughputConfig(server.host, server.port, duration_s=1.0, interval_s=0.25, omit_s=0.5, reverse=reverse)
    rows = []
    result = measure_throughput(cfg, rows.append)
    omitted = [r for r in rows if r.omitted]
    measured = [r for r in rows if not r.omitted]
    assert [(r.start_s, r.end_s) for r in omitted] == [(0.0, 0.25), (0.25, 0.5)]
    # after the omit period the intervals restart at 0, as iperf3's do
    assert measured[0].start_s == 0.0 and measured[-1].end_s == pytest.approx(1.0, abs=0.05)
    for st in result.summary.streams:
        assert st.sent_bytes is not None and st.received_bytes is not None
        assert st.sent_bytes >= st.received_bytes > 0
        # a TCP stream delivers everything before the report: the same bytes left out, the same count
        assert st.sent_bytes == st.received_bytes
    assert result.summary.sent_bytes >= result.summary.received_bytes
    assert sum(r.bytes for r in measured) == pytest.approx(result.summary.received_bytes, rel=0.1)


def test_bidir_reports_each_direction_apart(server):
    result, rows = run(server, bidir=True, parallel=2)
    s = result.summary
    assert s.tx is not None and s.rx is not None
    sends = [st for st in s.streams if st.direction == SEND]
    recvs = [st for st in s.streams if st.direction == RECV]
    assert (s.tx.streams, s.rx.streams) == (2, 2)
    assert s.tx.received_bytes == sum(st.received_bytes for st in sends)
    assert s.rx.received_bytes == sum(st.received_bytes for st in recvs)
    assert s.tx.received_bits_per_second < s.received_bits_per_second  # each is a part of both
    assert s.rx.received_bits_per_second < s.received_bits_per_second
    for r in rows:
        assert r.tx_bytes == sum(x.bytes for x in r.streams if x.direction == SEND)
        assert r.rx_bytes == sum(x.bytes for x in r.streams if x.direction == RECV)
