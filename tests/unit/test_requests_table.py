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
    assert "250,000 req/s" in text and "15,000,000" in text and "14.90 GiB/s" in text
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
