"""``netkit serve responsiveness`` keeps a loaded connection's unsent data to a few milliseconds of
its rate, as the draft advises test servers, so a self probe (a GET on a load connection) measures
the path, not the server's own buffers.

client - r1 - server in namespaces, ``tbf rate 20mbit limit 15000`` on r1 (a 6 ms queue), one h2+TLS
load connection downloading /large: the self probes' p50 (``http_l``) must stay near the path's
delay. With fixed buffers (128 KiB unsent in the kernel, 256 KiB in the transport, about 150 ms at
this rate) it read 290 ms here; sized to the rate, about 50 ms.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import support
from netns_bottleneck import Bottleneck
from netns_chain import Chain, netns_chain

PORT = "48446"


@pytest.fixture(scope="module")
def chain_server() -> Iterator[tuple[Chain, str]]:
    support.require_root_netns()
    with netns_chain(routers=1) as chain:
        srv = chain.popen_netkit("serve", "responsiveness", "--host", chain.server_ip(), "--port", PORT,
                                 ns=chain.server)
        try:
            support.wait_until(lambda: f":{PORT} " in chain.run(chain.server, "ss", "-ltnH"), timeout=10,
                               what="serve responsiveness listening")
            yield chain, f"https://{chain.server_ip()}:{PORT}"
        finally:
            srv.terminate()
            srv.wait(10)


def test_a_self_probe_waits_behind_milliseconds_of_the_servers_data(chain_server: tuple[Chain, str]) -> None:
    chain, url = chain_server
    bn = Bottleneck(chain, rate_bit=20_000_000, limit_bytes=15_000)
    bn.install()
    bn.wait_idle()
    began = time.monotonic()
    res, _took = chain.netkit("--format", "json", "measure", "responsiveness", url, "-k", "--download-only",
                              "--load-connections", "1", "--max-connections", "1", "--max-duration", "8s",
                              timeout=40)
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)["directions"][0]
    http_l = d["percentiles_ms"]["http_l"]["p50"]
    assert d["goodput_bps"] > 10e6, d
    assert d["probes"]["self"] >= 10, d["probes"]
    assert http_l is not None and http_l < 150, \
        f"self probes p50 {http_l} ms through a 6 ms queue ({time.monotonic() - began:.1f} s run)"
