"""The measure requests summary as a user reads it on an 80-column terminal (pure models, no sockets)."""

from __future__ import annotations

from rich.console import Console

from netkit.cli.measure_requests import summary_table
from netkit.core.request_models import LatencyMs, RequestsResult


def test_every_figure_keeps_its_full_width_at_80_columns() -> None:
    # generous figures: a minute at 250k req/s (a fast C server on loopback), every counter large
    result = RequestsResult(
        target="127.0.0.1:35807", address="127.0.0.1:35807", tls=True, mode="closed-loop", framing="length",
        connections=1000, rate_rps=None, elapsed_ns=60_000_000_000, requests=15_000_000, sent=15_000_000,
        bytes_sent=960_000_000_000, bytes_received=960_000_000_000, latency=LatencyMs(p99=1.5),
        errors={"timeout": 123_456}, reconnects=123_456, drops=0)
    console = Console(width=80, record=True, color_system=None)
    console.print(summary_table(result))
    text = console.export_text()
    assert "…" not in text  # no figure or name cut short
    assert "measure requests 127.0.0.1:35807, tls (closed-loop)" in text
    assert "250,000.0" in text and "15000000" in text and "14.90 GiB/s" in text
