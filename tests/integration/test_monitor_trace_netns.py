"""``netkit monitor --method trace`` on a namespace chain (client, r1..r4, server; r2alt beside r2).

Run as nobody in the client namespace (the udp method needs no privilege), metrics read from its
textfile: the hop count and every hop's series appear with the addresses the chain says, with no
loss (ICMP rate limits are off in the chain), and a route moved from r2 to r2alt shows as a second
address on hop 2 while the hop count stays. Needs root (skipped otherwise); one chain for the module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import support
from netns_chain import Chain, netns_chain
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.root

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    support.require_root_netns()
    with netns_chain(4, alt_router_at=2) as c:
        yield c


def read(prom: Path) -> Samples:
    if not prom.exists():
        return {}
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("target", "method")))): s.value
            for fam in text_string_to_metric_families(prom.read_text()) for s in fam.samples}


def responders(values: Samples, ttl: int) -> dict[str, float]:
    return {dict(labels)["address"]: v for (name, labels), v in values.items()
            if name == "netkit_trace_hop_responses_total" and ("ttl", str(ttl)) in labels}


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory nobody can write in (pytest's tmp_path sits under a root-only directory)."""
    with tempfile.TemporaryDirectory(prefix="netkit-monitor-trace-") as d:
        os.chmod(d, 0o777)
        yield Path(d)


def test_hops_and_a_route_change(chain: Chain, shared_dir: Path) -> None:
    prom = shared_dir / "trace.prom"
    hops = chain.hop_addresses(4)
    proc = chain.popen_netkit("monitor", "--method", "trace", chain.server_ip(4), "--interval", "0.1s",
                              "--textfile", str(prom), user="nobody")
    try:
        def rounds(n: int) -> Samples | None:
            assert proc.poll() is None, proc.communicate()[1].decode(errors="replace")
            v = read(prom)
            return v if v.get(("netkit_monitor_rounds_total", ()), 0) >= n else None

        values = support.wait_until(lambda: rounds(5), timeout=15, interval=0.05)
        n = values[("netkit_monitor_rounds_total", ())]
        assert values[("netkit_trace_hops", ())] == len(hops) == 5
        for ttl, address in enumerate(hops, 1):
            at = (("ttl", str(ttl)),)
            assert responders(values, ttl) == {address: n}, ttl
            assert values[("netkit_trace_hop_sent_total", at)] == n
            assert values[("netkit_trace_hop_lost_total", at)] == 0
            assert values[("netkit_trace_hop_loss_ratio", at)] == 0.0
            assert values[("netkit_trace_hop_rate_limited", at)] == 0.0
            assert values[("netkit_trace_hop_rtt_seconds_count", at)] == n
        assert not [k for k in values if ("ttl", "6") in k[1]]

        chain.switch_route(True)
        alt = chain.hop_addresses(4)[1]
        assert alt != hops[1]
        moved = support.wait_until(lambda: (v := read(prom)) and responders(v, 2).get(alt, 0) >= 3 and v,
                                   timeout=15, interval=0.05)
        assert set(responders(moved, 2)) == {hops[1], alt}  # the route change: two routers on hop 2
        assert moved[("netkit_trace_hops", ())] == 5
        for ttl in (1, 3, 4, 5):
            assert set(responders(moved, ttl)) == {hops[ttl - 1]}
    finally:
        chain.switch_route(False)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")
    assert b"Traceback" not in err
