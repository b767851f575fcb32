"""``measure throughput --format table`` as a person reads it: golden text at 80 columns and piped.

Hand-made results (no sockets, no clock) go through the command's renderer
(:mod:`netkit.render.throughput`) into an Output whose stdout is (a) a fake 80-column terminal and
(b) a pipe. ``NETKIT_UPDATE_GOLDEN=1 pytest tests/cli/test_golden_throughput.py`` rewrites the files.
"""

from __future__ import annotations

import io

import pytest
from golden_support import BOX, FakeTerminal, check_golden

from netkit.core.throughput_models import (
    NS,
    RECV,
    SEND,
    CountedBy,
    ServerKind,
    StreamResult,
    ThroughputInterval,
    ThroughputResult,
    Transport,
    UdpSummary,
    check_thresholds,
    interval_row,
    stream_result,
    summarize_streams,
)
from netkit.render.output import Output
from netkit.render.throughput import ThroughputView, emit_result, print_notes


def _tcp_stream(sid: int, direction: str, nbytes: int, seconds: float, retr: int | None,
                rtt_us: int | None) -> StreamResult:
    ns = int(seconds * NS)
    return stream_result(sid, direction, sent_bytes=nbytes + 1_000, sent_ns=ns, received_bytes=nbytes,
                         received_ns=ns, retransmits=retr, rtt_us=rtt_us, counted_by=CountedBy.RECEIVER)


def _intervals(deltas_per_second: list[list[tuple[int, str, int]]]) -> tuple[ThroughputInterval, ...]:
    return tuple(interval_row(i * NS, (i + 1) * NS, deltas) for i, deltas in enumerate(deltas_per_second))


def tcp_single() -> ThroughputResult:
    """One stream to a netkit server, 3 s: 24.9 Gbit/s beside 24.0 Gbit/s (one precision for both)."""
    per_s = [3_112_500_000, 3_000_000_000, 3_225_000_000]
    rows = _intervals([[(0, SEND, n)] for n in per_s])
    streams = [_tcp_stream(0, SEND, sum(per_s), 3.0, 0, 48)]
    r = ThroughputResult(Transport.TCP, 1, False, 3.0, rows, summarize_streams(streams, 1.234, 3 * NS),
                         CountedBy.RECEIVER, target="127.0.0.1:5000", server=ServerKind.NETKIT, block_size=131072)
    return _checked(r, 1e9)


def tcp_parallel_bidir() -> ThroughputResult:
    """``-P 6 --bidir`` against iperf3, 2 s: twelve streams of about 1.19 GiB each way."""
    send = [1, 3, 4, 5, 6, 7]  # iperf3's stream ids: 1, then 3 on
    recv = [8, 9, 10, 11, 12, 13]
    per_stream = [1_277_000_000 + 3_250_000 * i for i in range(6)]
    halves = [[(sid, SEND, n // 2) for sid, n in zip(send, per_stream, strict=True)]
              + [(sid, RECV, n // 2 + 7_000_000) for sid, n in zip(recv, per_stream, strict=True)]] * 2
    rows = _intervals(halves)
    streams = ([_tcp_stream(sid, SEND, n, 2.0, 1_234 + sid, 412 + sid) for sid, n in zip(send, per_stream,
                                                                                          strict=True)]
               + [_tcp_stream(sid, RECV, n + 14_000_000, 2.0, 17 * sid, None) for sid, n in zip(recv, per_stream,
                                                                                               strict=True)])
    r = ThroughputResult(Transport.TCP, 6, False, 2.0, rows, summarize_streams(streams, 3.5, 2 * NS),
                         CountedBy.RECEIVER, target="127.0.0.1:5201", server=ServerKind.IPERF3, bidir=True,
                         block_size=131072)
    return _checked(r, 1e12)  # --min-rate 1T: both directions below it


def udp_reflector() -> ThroughputResult:
    """``--udp -b 1M`` through netkit's echo reflector, 2 s (the run that printed ``1e+03 kbit/s``)."""
    rows = _intervals([[(0, "echo", 125_000)], [(0, "echo", 122_200)]])
    streams = [stream_result(0, "echo", sent_bytes=250_600, sent_ns=2 * NS, received_bytes=247_800,
                             received_ns=2 * NS, retransmits=None, rtt_us=83, counted_by=CountedBy.RECEIVER)]
    udp = UdpSummary(rate_bps=1e6, packet_size=1400, packets_sent=179, packets_received=177, lost_packets=2,
                     lost_percent=1.117, duplicates=0, reordered=1, jitter_ms=0.0123, lost_forward=2, lost_return=0,
                     local_drops=0, rate_reached=True)
    r = ThroughputResult(Transport.UDP, 1, False, 2.0, rows, summarize_streams(streams, 0.02, 2 * NS),
                         CountedBy.RECEIVER, target="127.0.0.1:7000", server=ServerKind.NETKIT, block_size=1400,
                         note="UDP round trip through an echo reflector: loss counts both directions", udp=udp)
    return _checked(r, None)


def _checked(r: ThroughputResult, min_rate: float | None) -> ThroughputResult:
    import dataclasses

    return dataclasses.replace(r, thresholds=check_thresholds(r, min_rate))


CASES = {"tcp_single": tcp_single, "tcp_parallel_bidir": tcp_parallel_bidir, "udp": udp_reflector}


def on_terminal(result: ThroughputResult, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """What a terminal of 80 columns shows after the live view is gone: intervals and summary."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = Output(format="table", stdout=FakeTerminal(), stderr=io.StringIO(), color=False)
    assert out.width == 80
    print_notes(out, result)
    emit_result(out, result, streamed=False)
    return out.stdout.getvalue(), out.stderr.getvalue()  # type: ignore[attr-defined]


def piped(result: ThroughputResult) -> tuple[str, str]:
    """``| cat``: interval lines as they come, then the summary as plain text."""
    out = Output(format="table", stdout=io.StringIO(), stderr=io.StringIO())
    with ThroughputView(out, result.duration_s, multi=len(result.summary.streams) > 1) as view:
        for row in result.intervals:
            view.interval(row)
    print_notes(out, result)
    emit_result(out, result, streamed=view.streamed)
    return out.stdout.getvalue(), out.stderr.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_on_an_80_column_terminal(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text, _ = on_terminal(CASES[case](), monkeypatch)
    check_golden(f"throughput_{case}_80", text)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "…" not in text and "e+" not in text


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_piped(case: str) -> None:
    text, _ = piped(CASES[case]())
    check_golden(f"throughput_{case}_piped", text)
    assert "…" not in text and "e+" not in text
    assert not BOX & set(text)
    assert all(line == line.rstrip() for line in text.splitlines())
    assert text.splitlines()[0].strip()  # no blank first line


UNITS = {"GiB", "MiB", "KiB", "B", "Tbit/s", "Gbit/s", "Mbit/s", "kbit/s", "bit/s", "s", "ms", "%"}


def test_figures_keep_their_unit_on_one_line_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    text, _ = on_terminal(tcp_parallel_bidir(), monkeypatch)
    for line in text.splitlines():
        words = line.split()
        for i, word in enumerate(words):
            if word.replace(".", "").replace(",", "").isdigit() and i + 1 < len(words) and ":" not in word:
                assert words[i + 1] in UNITS or word.replace(",", "").isdigit(), line
    assert "1.19 GiB" in text
    summary = text[text.index("throughput 127.0.0.1:5201"):]
    rows = [line for line in summary.splitlines() if line.split() and line.split()[0] in
            {"1", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "SUM"}]
    assert len(rows) == 14  # twelve streams and one sum per direction, each on one line


def test_threshold_line_reads_three_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    text, _ = on_terminal(tcp_parallel_bidir(), monkeypatch)
    assert "send rate 30.8 Gbit/s is below --min-rate 1.00 Tbit/s" in text
    udp_text, err = on_terminal(udp_reflector(), monkeypatch)
    assert "1.00 Mbit/s" in udp_text and "e+" not in udp_text
    assert "udp: 179 sent, 177 received, 2 lost (1.1 %), jitter 0.012 ms" in udp_text
    assert "echo reflector" in err  # the note goes to stderr, not under the table


def test_live_view_fits_70_columns() -> None:
    from rich.console import Console

    result = tcp_parallel_bidir()
    out = Output(format="table", stdout=io.StringIO(), stderr=io.StringIO())
    view = ThroughputView(out, result.duration_s, multi=True)
    for row in result.intervals:
        view.rows.append(row)
    view.elapsed = 1.5
    console = Console(width=70, record=True, color_system=None, file=io.StringIO())
    console.print(view.draw(width=70, height=24))
    text = console.export_text()
    assert all(len(line.rstrip()) <= 70 for line in text.splitlines())
    assert "1.5/2.0 s" in text and "Gbit/s" in text and "…" not in text
    # one line per row: six streams' rates do not fit beside the sums at 70 columns, so they wait
    # for the final table
    assert len(text.splitlines()) == 1 + 2 + 4 and "streams" not in text
    view.rows = [tcp_single().intervals[0]] * 40
    few = Console(width=70, record=True, color_system=None, file=io.StringIO())
    few.print(view.draw(width=70, height=10))
    assert len(few.export_text().splitlines()) <= 10  # the latest intervals that fit the screen


def test_a_failed_check_is_said_once_on_a_terminal_and_on_stderr_when_piped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = tcp_parallel_bidir()  # --min-rate 1T: both directions fail
    assert not result.thresholds.passed
    text, err = on_terminal(result, monkeypatch)
    assert text.count("is below --min-rate") == 2 and "check failed" not in err  # the table says it, once
    text, err = piped(result)  # the table went to a file: the person at the terminal still hears it
    assert err.count("netkit: check failed:") == 2


def test_a_run_stopped_early_says_so_in_its_title(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    text, _ = on_terminal(dataclasses.replace(tcp_single(), interrupted=True), monkeypatch)
    assert "throughput 127.0.0.1:5000 (netkit server, tcp, stopped early)" in text
    text, _ = on_terminal(tcp_single(), monkeypatch)
    assert "stopped early" not in text


def test_csv_summary_of_a_run_stopped_early_spans_what_it_measured() -> None:
    import dataclasses

    from netkit.render.throughput import csv_rows

    whole = csv_rows(tcp_single())
    assert whole[-1]["kind"] == "summary" and whole[-1]["end_s"] == 3.0
    cut = dataclasses.replace(tcp_single(), duration_s=10.0, interrupted=True)  # -t 10s, Ctrl-C after 3 s
    assert csv_rows(cut)[-1]["end_s"] == cut.intervals[-1].end_s == 3.0
