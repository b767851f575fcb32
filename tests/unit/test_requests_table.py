"""The measure requests summary as a user reads it on an 80-column terminal (pure models, no sockets)."""

from __future__ import annotations

from rich.console import Console

from netkit.core.latency_histogram import LatencyMs
from netkit.core.requests_result import RequestsResult
from netkit.render.requests import requests_summary_table


def test_every_figure_keeps_its_full_width_at_80_columns() -> None:
    # generous figures: a minute at 250k req/s (a fast C server on loopback), every counter large
    result = RequestsResult(
        target="127.0.0.1:35807", address="127.0.0.1:35807", tls=True, mode="closed-loop", framing="length",
        connections=1000, rate_rps=None, elapsed_ns=60_000_000_000, requests=15_000_000, sent=15_000_000,
        bytes_sent=960_000_000_000, bytes_received=960_000_000_000, latency=LatencyMs(p99=1.5),
        errors={"timeout": 123_456}, reconnects=123_456, drops=0)
    console = Console(width=80, record=True, color_system=None)
    console.print(requests_summary_table(result, width=80))
    text = console.export_text()
    assert "…" not in text  # no figure or name cut short
    assert "measure requests 127.0.0.1:35807, tls (closed-loop)" in text
    assert "250,000 req/s" in text and "15,000,000" in text and "128 Gbit/s" in text
    assert "1.500 ms" in text  # p99 with its unit
    assert max(len(line) for line in text.splitlines()) <= 80


def test_narrow_terminal_drops_columns_not_headline_figures() -> None:
    result = RequestsResult(
        target="127.0.0.1:35807", address=None, tls=False, mode="open-loop", framing="length",
        connections=10, rate_rps=1000.0, elapsed_ns=10_000_000_000, requests=10_000, sent=10_000,
        bytes_sent=640_000, bytes_received=640_000,
        latency=LatencyMs(min=0.01, avg=0.05, p50=0.04, p90=0.08, p99=12.25, p99_9=130.0, max=1234.5),
        errors={}, reconnects=0, drops=0)
    console = Console(width=40, record=True, color_system=None)
    console.print(requests_summary_table(result, width=40))
    text = console.export_text()
    assert "…" not in text
    assert "1,000 req/s" in text and "0.040 ms" in text and "12.2 ms" in text
    assert "reconnects" not in text  # the least important column went first


def test_interval_line_leaves_out_the_least_important_fields_first() -> None:
    from netkit.core.requests_result import RequestsInterval
    from netkit.render.requests import requests_interval_line

    row = RequestsInterval(start_s=0.0, end_s=1.0, requests=368_917, requests_per_s=368_917.0,
                           bytes_per_s={"sent": 0.0, "received": 0.0},
                           latency_ms={"p50": 0.053, "p99": 0.21, "max": 5.5}, errors=2, reconnects=1,
                           open_connections=10)
    full = requests_interval_line(row)
    assert "368,917 req/s" in full and "conns  10" in full and "reconnects  1" in full
    assert len(requests_interval_line(row, width=80)) <= 80
    narrow = requests_interval_line(row, width=40)  # never below time, rate, p50, p99
    assert "368,917 req/s" in narrow and "0.053 ms" in narrow and "0.210 ms" in narrow and "errors" not in narrow


def test_rate_shortfall_says_why_once() -> None:
    from netkit.render.requests import rate_shortfall

    base = dict(target="h:1", address=None, tls=False, mode="open-loop", framing="length", connections=2,
                rate_rps=10_000_000.0, elapsed_ns=1_000_000_000, requests=50_000, sent=50_000, bytes_sent=0,
                bytes_received=0, latency=LatencyMs(), reconnects=0, drops=0)
    busy = rate_shortfall(RequestsResult(errors={"overload": 1234}, **base))
    assert busy == ("h:1: 50,000 requests/s sent of 10,000,000 asked: all 2 connections were busy: 1,234 "
                    "requests found none within --timeout (counted as overload; more --connections offer "
                    "more load)")
    assert rate_shortfall(RequestsResult(errors={}, **{**base, "rate_rps": 50_000.0})) is None
