"""``netkit selftest``'s dns row against its in-process responder, and the responder's own manners:
garbage and responses get no reply, an unknown name gets NXDOMAIN."""

from __future__ import annotations

import dns.message
import support

from netkit.io.servers.dns_responder import answer


def test_selftest_dns_row() -> None:
    res = support.invoke(["selftest", "--only", "dns"])
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "dns queries" in res.stdout and "20/20 answered" in res.stdout


def test_responder_answers_and_stays_silent() -> None:
    records = {"x.test.": ("198.18.0.1",)}
    q = dns.message.make_query("x.test", "A")
    r = dns.message.from_wire(answer(q.to_wire(), records) or b"")
    assert r.id == q.id and [rd.to_text() for rd in r.answer[0]] == ["198.18.0.1"]
    nx = dns.message.from_wire(answer(dns.message.make_query("y.test", "A").to_wire(), records) or b"")
    assert nx.rcode() == 3
    assert answer(b"\x00" * 5, records) is None
    assert answer(r.to_wire(), records) is None  # a response is never answered (no reflection loops)
