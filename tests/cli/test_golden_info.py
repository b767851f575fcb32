"""Golden text of ``netkit info interfaces|connections|traffic`` at 80 columns and piped.

Fixed, hand-made results through the renderers (``netkit.render.info``) into a real Output, so the
text is deterministic; ``NETKIT_UPDATE_GOLDEN=1`` rewrites ``tests/golden/info_*.txt``.
"""

from __future__ import annotations

import pytest
from golden_support import golden_pair

from netkit.core.sysinfo_models import Connection, InterfaceInfo, IpFamily, SocketProto, SocketState, TrafficSample
from netkit.core.traffic import summarize_traffic
from netkit.render.info import (
    connection_table,
    interface_table,
    traffic_header,
    traffic_line,
    traffic_summary_title,
    traffic_table,
)
from netkit.render.output import Output

IFACES = [
    InterfaceInfo("lo", True, 65536, None, None, "00:00:00:00:00:00", ("127.0.0.1/8",), ("::1/128",),
                  37_012_345_678, 37_012_345_678, 433_976_123, 433_976_123, 0, 0, 0, 0),
    InterfaceInfo("enp0s31f6", True, 1500, 1000, "full", "8c:16:45:aa:bb:cc", ("192.0.2.10/24",),
                  ("2001:db8::10/64", "fe80::8e16:45ff:feaa:bbcc/64"), 1_234_567_890_123, 98_765_432_101,
                  1_020_304_050, 88_776_655, 12, 3, 4_567, 0),
    InterfaceInfo("wlp2s0-down", False, 1500, None, None, None, (), (), 0, 0, 0, 0, 0, 0, 0, 0),
]

TCP, UDP, V4, V6 = SocketProto.TCP, SocketProto.UDP, IpFamily.IPV4, IpFamily.IPV6
CONNS = [
    Connection(TCP, V4, "127.0.0.1", 5432, None, None, SocketState.LISTEN, 812, "postgres"),
    Connection(TCP, V4, "192.0.2.10", 44321, "198.18.0.7", 443, SocketState.ESTABLISHED, 40123, "firefox-esr-bin"),
    Connection(TCP, V6, "2001:db8::10", 22, "2001:db8::99", 51234, SocketState.ESTABLISHED, None, None),
    Connection(UDP, V4, "0.0.0.0", 5353, None, None, SocketState.UNCONN, 655, "avahi-daemon"),
    Connection(TCP, V4, "127.0.0.1", 33577, "127.0.0.1", 56852, SocketState.TIME_WAIT, None, None),
]


def _sample(seq: int, iface: str, rx: int, tx: int, rxp: int, txp: int, errs: int = 0) -> TrafficSample:
    return TrafficSample(seq, f"2026-12-02T09:00:0{seq}.000Z", iface, 1.0, rx, tx, rxp, txp, float(rx), float(tx),
                         float(rxp), float(txp), errs, 0, 0, errs)


SAMPLES = [
    _sample(1, "lo", 1_480_000_000, 1_480_000_000, 45_000, 45_000),
    _sample(1, "enp0s31f6", 118_000_000, 2_400_000, 81_234, 20_100, 2),
    _sample(2, "lo", 1_520_000_000, 1_520_000_000, 46_100, 46_100),
    _sample(2, "enp0s31f6", 117_500_000, 2_350_000, 80_900, 19_800),
]


def test_info_interfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    tty, piped = golden_pair(monkeypatch, "info_interfaces",
                             lambda out: out.print(interface_table(IFACES, width=out.width)))
    # the name whole and the byte counters with their units, on every row
    assert "enp0s31f6" in tty and "wlp2s0-down" in tty and "1.12 TiB" in tty and "34.5 GiB" in tty
    # piped: every column, one line per interface
    assert "433,976,123" in piped and "2001:db8::10/64, fe80::8e16:45ff:feaa:bbcc/64" in piped
    assert len(piped.splitlines()) == 1 + len(IFACES)


def test_info_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    tty, piped = golden_pair(monkeypatch, "info_connections",
                             lambda out: out.print(connection_table(CONNS, width=out.width)))
    assert "[2001:db8::10]:22" in tty and "established" in tty
    assert piped.splitlines()[0].split() == ["proto", "state", "local", "remote", "pid", "process"]


def _traffic(out: Output) -> None:
    summary = summarize_traffic(SAMPLES)
    out.print(traffic_table(summary, width=out.width, title=traffic_summary_title(summary, 1.0, 2)))


def test_info_traffic_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    tty, _ = golden_pair(monkeypatch, "info_traffic", _traffic)
    # bits per second, as every rate in netkit
    assert "12.0 Gbit/s" in tty and "942 Mbit/s" in tty and "45,550/45,550 pkt/s" in tty and "GiB/s" not in tty


def test_info_traffic_bytes_option(monkeypatch: pytest.MonkeyPatch) -> None:
    summary = summarize_traffic(SAMPLES)
    tty, _ = golden_pair(monkeypatch, "info_traffic_bytes",
                         lambda out: out.print(traffic_table(summary, width=out.width, in_bytes=True)))
    assert "1.40 GiB/s" in tty and "Gbit/s" not in tty


def test_info_traffic_lines_off_a_terminal() -> None:
    from golden_support import assert_piped_text, check_golden

    text = "".join(line + "\n" for line in [traffic_header(), *(traffic_line(s) for s in SAMPLES)])
    assert_piped_text(text)
    check_golden("info_traffic_lines", text)


def test_info_connections_long_ipv6_addresses_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two full IPv6 endpoints cannot stand side by side in 80 columns: each row stacks them, whole."""
    conns = [
        Connection(TCP, V6, "2001:db8:1234:5678:9abc:def0:1234:5678", 44321, "2001:db8:1234:5678:9abc:def0:1234:9999",
                   443, SocketState.ESTABLISHED, 4242, "curl"),
        Connection(TCP, V4, "127.0.0.1", 22, None, None, SocketState.LISTEN, 1, "sshd"),
    ]
    tty, piped = golden_pair(monkeypatch, "info_connections_long",
                             lambda out: out.print(connection_table(conns, width=out.width)))
    assert "[2001:db8:1234:5678:9abc:def0:1234:5678]:44321" in tty
    assert "[2001:db8:1234:5678:9abc:def0:1234:9999]:443" in tty
    assert piped.splitlines()[0].split() == ["proto", "state", "local", "remote", "pid", "process"]


def test_traffic_summary_title_counts_its_intervals_in_words() -> None:
    """``info traffic -c 1`` said ``(1 intervals of 0.2s)``."""
    assert traffic_summary_title([], 0.2, 1) == "traffic averaged over 0.0s (1 interval of 0.2s)"
    assert traffic_summary_title([], 1.0, 1200) == "traffic averaged over 0.0s (1,200 intervals of 1s)"
