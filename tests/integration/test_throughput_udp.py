"""measure throughput --udp: paced probe packets through netkit's UDP echo reflector."""

from __future__ import annotations

import pytest
import support

from netkit.core.throughput_models import ThroughputConfig
from netkit.io.measure.throughput import measure_throughput


def test_udp_paced_rate_and_accounting():
    with support.netkit_server("serve", "udp", "--mode", "echo", "--port", "0") as srv:
        cfg = ThroughputConfig(srv.host, srv.port, duration_s=1.0, interval_s=0.5, udp=True, rate_bps=20e6,
                               block_size=1000)
        rows = []
        r = measure_throughput(cfg, rows.append)
    u = r.udp
    assert r.protocol == "udp" and u is not None
    assert u.packets_sent == pytest.approx(20e6 / 8 / 1000, rel=0.05)  # paced: 2500 packets in 1 s
    assert r.summary.sent_bits_per_second == pytest.approx(20e6, rel=0.05)
    assert u.lost_forward is not None  # netkit's reflector answered the final count query
    assert u.lost_packets <= u.packets_sent * 0.05 and u.lost_percent is not None  # loopback; CI may be busy
    assert u.jitter_ms is not None and r.summary.rtt_ms is not None
    assert len(rows) == 2 and sum(row.bytes for row in rows) == pytest.approx(u.packets_received * 1000, rel=0.05)


def test_udp_cli_json():
    with support.netkit_server("serve", "udp", "--mode", "echo", "--port", "0") as srv:
        res = support.run_netkit(["measure", "throughput", srv.addr, "--udp", "--rate", "5M", "-t", "0.5s",
                                  "--format", "json"])
    assert res.exit_code == 0, res.stderr
    d = res.json()
    assert d["protocol"] == "udp" and d["udp"]["packet_size"] == 1400
    for key in ("lost_packets", "lost_percent", "jitter_ms", "reordered", "duplicates"):
        assert key in d["udp"]


def test_own_receive_buffer_overflow_is_local_drops_not_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """A receive buffer far too small for the rate: what this host's socket dropped is not network loss."""
    import netkit.io.measure.udp_streams as us

    monkeypatch.setattr(us, "udp_buffer_bytes", lambda rate_bps: 4096)  # a few datagrams at most
    with support.netkit_server("serve", "udp", "--mode", "echo", "--port", "0") as srv:
        cfg = ThroughputConfig(srv.host, srv.port, duration_s=1.0, udp=True, rate_bps=300e6, block_size=1400)
        r = measure_throughput(cfg)
    u = r.udp
    assert u is not None and u.local_drops is not None
    assert u.local_drops > 0, u  # the socket's own drop counter saw them
    # every datagram is accounted for once: echoed, dropped here, or lost on the way
    assert u.packets_received + u.local_drops + u.lost_packets == u.packets_sent
    assert u.lost_return == 0  # loopback loses nothing on the way back: those were our own drops
