"""A reflector bound to a wildcard address answers from the address the client sent to.

A host with several addresses on one link replies, by the route, from the link's primary address;
a client's connected socket (``measure latency``, ``monitor``) drops a reply from any other address,
so every probe to a secondary address would count as lost. Namespace B holds two addresses; the
client in A probes the secondary one.
"""

from __future__ import annotations

import pytest
from support import netns_pair


@pytest.mark.parametrize(("bind", "family"), [("0.0.0.0", 4), ("::", 4), ("::", 6)])
def test_wildcard_reflector_replies_from_the_probed_address(bind: str, family: int) -> None:
    with netns_pair() as pair:
        if family == 4:
            second = pair.ip_b.rsplit(".", 1)[0] + ".3"
            pair.run(pair.b, "ip", "addr", "add", f"{second}/24", "dev", pair.veth_b)
            target = f"{second}:8000"
        else:
            for ns, dev, ip in ((pair.a, pair.veth_a, "2001:db8:7::1"), (pair.b, pair.veth_b, "2001:db8:7::2"),
                                (pair.b, pair.veth_b, "2001:db8:7::3")):
                pair.run(ns, "ip", "-6", "addr", "add", f"{ip}/64", "dev", dev, "nodad")
            target = "[2001:db8:7::3]:8000"
        server = pair.server("serve", "udp", "--mode", "echo", "--host", bind, "--port", "8000")
        try:
            r, _ = pair.netkit("--format", "json", "measure", "latency", target, "--method", "udp",
                               "-c", "5", "-i", "0.05", "--timeout", "1s")
        finally:
            server.stop()
        assert r.exit_code == 0, r.stderr
        row = r.json()["targets"][0]
        assert row["received"] == 5 and row["lost"] == 0, row
