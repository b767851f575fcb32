"""The throughput tables as a user reads them on an 80-column terminal.

Rendered into a recording Rich console of 80 columns; built from pure result models (no sockets).
"""

from __future__ import annotations

from rich.console import Console

from netkit.core.throughput_models import (
    NS,
    RECV,
    SEND,
    ThroughputResult,
    interval_row,
    stream_result,
    summarize_streams,
)
from netkit.render.throughput import intervals_table, summary_table


def _render(renderable: object) -> str:
    console = Console(width=80, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def _stream(sid: int, direction: str, nbytes: int, counted_by: str = "receiver"):
    # 1003.75 MiB and 14.4 Gbit/s: the widest figures a loopback run prints
    return stream_result(sid, direction, sent_bytes=nbytes, sent_ns=2 * NS, received_bytes=nbytes,
                         received_ns=2 * NS, retransmits=123, rtt_us=1621, counted_by=counted_by)


def _bidir_result(counted_by: str = "receiver") -> ThroughputResult:
    size = 1_052_508_160  # 1003.75 MiB
    streams = [_stream(1, SEND, size, counted_by), _stream(3, SEND, size), _stream(4, RECV, size),
               _stream(5, RECV, size)]
    return ThroughputResult("tcp", 2, False, 2.0, (), summarize_streams(streams, None, 2 * NS), "receiver",
                            target="127.0.0.1:5201", server="iperf3", bidir=True)


def test_bidir_summary_keeps_one_line_per_row_at_80_columns() -> None:
    text = _render(summary_table(_bidir_result(), width=80))
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines)
    rows = [line for line in lines if line.split() and line.split()[0] in {"1", "3", "4", "5", "SUM"}]
    assert len(rows) == 6  # four streams and two direction sums, none wrapped onto a second line
    assert all("Gbit/s" in row and "iB " in row for row in rows)
    assert "counted by receiver" in text  # said once, under the table


def test_counted_by_column_shows_only_when_streams_differ() -> None:
    assert "counted by  " not in _render(summary_table(_bidir_result(), width=80))
    mixed = _render(summary_table(_bidir_result(counted_by="sender"), width=80))
    first_row = next(line for line in mixed.splitlines() if line.startswith("1 "))
    assert first_row.rstrip().endswith("sender")  # the stream counted by its sender says so


def test_bidir_interval_rows_list_only_their_own_streams() -> None:
    row = interval_row(0, NS, [(1, SEND, 100), (3, SEND, 100), (4, RECV, 900), (5, RECV, 900)])
    text = _render(intervals_table([row], width=80))
    send = next(line for line in text.splitlines() if " send " in line)
    recv = next(line for line in text.splitlines() if " recv " in line)
    assert "1:" in send and "3:" in send and "4:" not in send and "5:" not in send
    assert "4:" in recv and "5:" in recv and "1:" not in recv and "3:" not in recv


def test_interval_rows_keep_each_stream_rate_with_its_unit_at_80_columns() -> None:
    gbit = 1_000_000_000 // 8  # bytes in one second at 1 Gbit/s
    deltas = [(0, SEND, 4 * gbit), (1, SEND, 4 * gbit), (2, RECV, 4 * gbit), (3, RECV, 4 * gbit)]
    lines = [line for line in _render(intervals_table([interval_row(0, NS, deltas)], width=80)).splitlines()
             if line.strip()]
    body = lines[3:]  # title, header, rule, then the rows
    assert len(body) == 2  # send and recv, one line each
    assert all(line.count("Gbit/s") == 3 for line in body)
    # with the "omitted" column and eight streams there is no room for every stream's rate on one
    # line: they go on more, broken between streams, never between a figure and its unit
    many = [(i, SEND if i < 4 else RECV, 2 * gbit) for i in range(8)]
    omitted = interval_row(0, NS, many, omitted=True)
    lines = [line for line in _render(intervals_table([omitted], width=80)).splitlines() if line.strip()]
    body = lines[3:]
    assert len(body) > 2 and all(len(line.rstrip()) <= 80 for line in lines)
    assert all(line.count("Gbit/s") == line.count(":") + ("omitted" in line) for line in body)
    assert sum(line.count(":") for line in body) == 8


def test_bidir_csv_gives_each_direction_its_own_rows() -> None:
    from netkit.render.throughput import csv_rows

    row = interval_row(0, NS, [(1, SEND, 100), (3, RECV, 900)])
    result = _bidir_result()
    rows = csv_rows(ThroughputResult("tcp", 1, False, 1.0, (row,), result.summary, "receiver", bidir=True))
    assert [r["kind"] for r in rows] == ["interval-send", "interval-recv", "summary-send", "summary-recv"]
    assert [r["bytes"] for r in rows[:2]] == [100, 900]  # never their sum
    assert rows[2]["bytes"] == 2 * 1_052_508_160 and rows[3]["bytes"] == 2 * 1_052_508_160
    forward = csv_rows(ThroughputResult("tcp", 1, False, 1.0, (interval_row(0, NS, [(0, SEND, 5)]),),
                                        summarize_streams([_stream(0, SEND, 5)], None, NS), "receiver"))
    assert [r["kind"] for r in forward] == ["interval", "summary"]
