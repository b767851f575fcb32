"""A round whose reachability phase runs long sends only the packets that still fit, and says so once.

The config check makes the latency packets fit a round; reachability comes first and can eat
into it (a silent UDP port takes the whole timeout; retries take more). Here a UDP peer never
answers the reachability probe and echoes the latency packets: each round has time left for
fewer packets than asked. The monitor must send no packet that could not be answered within the
round's bound, and warn once for the target, not once per round.
"""

from __future__ import annotations

import asyncio
import time

import support

from netkit.core.monitor_config import CliSettings, build_config
from netkit.io.measure.monitor import GroupRound, Monitor
from netkit.io.measure.probe import DEFAULT_UDP_PAYLOAD

INTERVAL_S = 1.0
TIMEOUT_S = 0.2
PACKETS = 5


def test_a_round_cut_short_by_retries_says_so_once() -> None:
    def answer(data: bytes) -> bytes | None:
        # Silent to the reachability probe (open|filtered after the 200 ms timeout); a plain echo
        # for the latency packets.
        return None if data == DEFAULT_UDP_PAYLOAD else data

    with support.udp_peer(answer) as port:
        # 5 packets 150 ms apart plus the 200 ms timeout (800 ms) fit the 900 ms round, but not
        # after 200 ms of reachability: the 5th would be sent at 800 ms and answered by 1000 ms.
        config = build_config(None, CliSettings((f"127.0.0.1:{port}",), {
            "interval": INTERVAL_S, "timeout": TIMEOUT_S, "packets": PACKETS, "packet_interval": 0.15,
            "method": "udp", "listen": None}))
        rounds: list[GroupRound] = []
        warnings: list[str] = []
        mon = Monitor(config, on_round=rounds.append, on_warning=warnings.append)
        started = time.monotonic()
        asyncio.run(mon.run(asyncio.Event(), rounds=2))
        took = time.monotonic() - started
    results = [r.results[0] for r in rounds]
    assert all(r.success for r in results)
    # What no longer fits is not sent (4 of 5 on a quiet machine; fewer when reachability is slower).
    assert all(0 < r.sent < PACKETS for r in results), results
    assert all(r.lost == 0 for r in results), results  # and what was sent was answered in time
    assert all(r.duration_ns <= INTERVAL_S * 0.9 * 1e9 + 100e6 for r in results)
    cut = [w for w in warnings if "latency packets" in w]
    assert len(cut) == 1, warnings
    assert f"of {PACKETS} latency packets" in cut[0] and "not sent" in cut[0]
    assert took < 2 * INTERVAL_S + 1.0
