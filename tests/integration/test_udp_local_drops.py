"""Replies dropped by this host's socket buffer are reported apart, never as loss on the network.

Two proofs:
- loopback: a peer holds every probe, then answers them all in one burst while the meter's event
  loop is blocked, into a receive buffer made as small as the kernel allows: most replies are
  dropped by this host. They must show up as ``local_drops`` (the socket's own drop counter),
  with no loss and no "stopped answering".
- a namespace pair (root): ``measure latency -m udp -i 0 -c 5000`` and ``measure loss`` at a rate
  the sender cannot reach, with no drop rule: loss on the way back is 0, ``local_drops`` equals
  the kernel's ``UdpRcvbufErrors`` increase in the meter's namespace, and loss on the way there
  equals that counter in the reflector's namespace (both 0 on a quiet machine).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import support

import netkit.io.measure.latency as latency_io
import netkit.io.measure.latency_probers as probers_io
from netkit.core.latency_models import LatencyConfig, check_thresholds, stall_probes
from netkit.core.targets import Target

PROBES = 50


@pytest.fixture
def burst_peer() -> Iterator[int]:
    """A UDP echo that answers nothing until it holds ``PROBES`` probes, then all of them at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)

    def serve() -> None:
        held: list[tuple[bytes, tuple[str, int]]] = []
        try:
            while len(held) < PROBES:
                held.append(sock.recvfrom(65535))
            for data, addr in held:
                sock.sendto(data, addr)
        except OSError:
            pass

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        yield sock.getsockname()[1]
    finally:
        th.join(10)
        sock.close()


def _tiny_buffer(sock: socket.socket, size: int = 0) -> None:
    # The smallest receive buffer the kernel grants (it rounds 1 up to its minimum, ~4.6 KB):
    # room for one or two of these replies.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)


def test_replies_dropped_here_are_local_drops_not_loss(burst_peer: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probers_io, "tune_buffers", _tiny_buffer)
    blocked = {"done": False}

    def sink(ev: latency_io.ProbeEvent) -> None:
        # Block the meter's loop on the first reply, as a busy machine would: the rest of the
        # burst lands on a full receive buffer.
        if not blocked["done"]:
            blocked["done"] = True
            time.sleep(0.3)

    cfg = LatencyConfig(method="udp", count=PROBES, interval_s=0.0, timeout_s=3.0, size=1400)
    results = asyncio.run(latency_io.measure_latency([Target("127.0.0.1", burst_peer)], cfg, sink=sink))
    r = results[0]
    a = r.acc
    assert a.sent == PROBES
    assert a.local_drops is not None and a.local_drops > 0, a
    assert a.lost == 0 and r.to_json()["loss_pct"] == 0.0
    assert a.received + a.late + a.local_drops == PROBES
    verdict = check_thresholds(results, 0.0, None, stall_after=stall_probes(cfg.interval_s))
    assert verdict.passed, verdict.failed  # neither --max-loss 0 nor "stopped answering"


# ----- the namespace pair ------------------------------------------------------------------------
def _rcvbuf_errors(pair: support.NetnsPair, ns: str) -> int:
    """``Udp: RcvbufErrors`` of a namespace (/proc/net/snmp is per namespace)."""
    lines = [ln.split() for ln in pair.run(ns, "cat", "/proc/net/snmp").splitlines() if ln.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


@pytest.mark.root
@pytest.mark.parametrize("args", [
    pytest.param(["measure", "latency", "-m", "udp", "-i", "0", "-c", "5000"], id="latency-i0-c5000"),
    pytest.param(["measure", "loss", "-r", "1M", "-d", "1s"], id="loss-unreachable-rate"),
])
def test_no_network_loss_without_a_drop_rule(args: list[str]) -> None:
    with support.netns_pair() as pair:
        server = pair.server("-q", "serve", "udp", "--mode", "echo", "--host", pair.ip_b, "--port", "0")
        try:
            client_before, refl_before = _rcvbuf_errors(pair, pair.a), _rcvbuf_errors(pair, pair.b)
            res, _ = pair.netkit("--format", "json", *args[:2], f"{pair.ip_b}:{server.port}", *args[2:])
            dropped_at_client = _rcvbuf_errors(pair, pair.a) - client_before
            dropped_at_reflector = _rcvbuf_errors(pair, pair.b) - refl_before
        finally:
            server.stop()
        assert "Traceback" not in res.stderr, res.stderr
        t = res.json()["targets"][0]
        assert t["sent"] > 0
        assert t["lost_return"] == 0, (t, res.stderr)
        assert t["local_drops"] == dropped_at_client, (t, dropped_at_client)
        assert t["lost_forward"] == dropped_at_reflector, (t, dropped_at_reflector)
        assert t["lost"] == t["lost_forward"]
        assert t["sent"] == t["received"] + t["late"] + t["lost"] + t["local_drops"]
        assert "stopped answering" not in res.stderr
        if t["lost"] == 0:
            assert res.exit_code == 0, res.stderr
