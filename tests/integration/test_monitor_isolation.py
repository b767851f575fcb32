"""In-process ``Monitor``: one target's failure or hang never stops the others; rounds are bounded."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

import netkit.io.measure.monitor as monitor_mod
from netkit.core.monitor_config import CliSettings, build_config
from netkit.io.measure.monitor import GroupRound, Monitor


@pytest.fixture
def listener() -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)  # the kernel completes handshakes; enough backlog for a few rounds
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _config(*targets: str):
    return build_config(None, CliSettings(targets, {"interval": 0.5, "timeout": 0.1, "packets": 1}))


def test_a_crashing_and_a_hanging_target_do_not_stop_the_others(monkeypatch: pytest.MonkeyPatch,
                                                                  listener: str, no_socket_leak: None) -> None:
    real = monitor_mod.probe_round

    async def faulty(t, **kw):
        if t.name == "127.0.0.1:7":
            raise RuntimeError("boom")
        if t.name == "127.0.0.1:9":
            await asyncio.sleep(3600)
        return await real(t, **kw)

    monkeypatch.setattr(monitor_mod, "probe_round", faulty)
    rounds: list[GroupRound] = []
    mon = Monitor(_config(listener, "127.0.0.1:7", "127.0.0.1:9"), on_round=rounds.append)
    start = time.monotonic()
    asyncio.run(mon.run(asyncio.Event(), rounds=2))
    elapsed = time.monotonic() - start
    assert len(rounds) == 2
    by_target = {r.target: r for r in rounds[-1].results}
    assert by_target[listener].success
    assert by_target["127.0.0.1:7"].state == "error" and "RuntimeError: boom" in (by_target["127.0.0.1:7"].error or "")
    assert by_target["127.0.0.1:9"].state == "error" and "overran" in (by_target["127.0.0.1:9"].error or "")
    # Each round is bounded by 90% of the interval plus the hard margin (1 s), not by the hang.
    assert elapsed < 2 * (0.45 + monitor_mod.HARD_MARGIN_S) + 1.0
    totals = mon.state.totals
    assert totals[(listener, "tcp-connect")].up_rounds == 2
    assert totals[("127.0.0.1:9", "tcp-connect")].rounds == 2


def test_stop_event_ends_run_promptly(listener: str) -> None:
    mon = Monitor(_config(listener))

    async def main() -> float:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        t0 = time.monotonic()
        await mon.run(stop)
        return time.monotonic() - t0

    assert asyncio.run(main()) < 1.0
    assert mon.state.totals[(listener, "tcp-connect")].rounds >= 1
