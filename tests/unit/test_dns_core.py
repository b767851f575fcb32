"""The pure parts of ``measure dns``: building a query, telling our answer from strays, reading a
reply, parsing servers and resolv.conf, the row statistics and the checks."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rrset
import pytest

from netkit.core.dns_config import DnsConfig, DnsServer, parse_server, resolv_conf_servers
from netkit.core.dns_result import DnsQuery, DnsResult, check_dns, summarize
from netkit.core.dns_wire import (
    Answer,
    MalformedReply,
    NotOurReply,
    build_query,
    parse_reply,
    query_name,
    rcode_valid,
)


def _reply(query: bytes, *records: str, rcode: int = 0, tc: bool = False) -> dns.message.Message:
    r = dns.message.make_response(dns.message.from_wire(query))
    for text in records:
        name, ttl, rtype, data = text.split(" ", 3)
        r.answer.append(dns.rrset.from_text(name, int(ttl), "IN", rtype, data))
    r.set_rcode(rcode)
    if tc:
        r.flags |= dns.flags.TC
    return r


def test_query_has_the_id_type_and_edns_size() -> None:
    q = dns.message.from_wire(build_query("a.test", "MX", 0x1234, edns_size=1232))
    assert q.id == 0x1234 and q.question[0].rdtype == dns.rdatatype.MX and q.payload == 1232
    assert dns.message.from_wire(build_query("a.test", "A", 1, edns_size=0)).edns < 0


def test_reply_is_read_whole() -> None:
    q = build_query("a.test", "A", 7)
    r = parse_reply(_reply(q, "a.test. 60 A 198.18.0.7", "a.test. 30 A 198.18.0.8").to_wire(), q)
    assert r.rcode == "NOERROR" and not r.truncated and r.answer_count == 2
    # One RRset: its TTL is the lowest of its records (dnspython's reading, as RFC 2181 5.2 wants).
    assert r.answers == (Answer("a.test.", 30, "A", "198.18.0.7"), Answer("a.test.", 30, "A", "198.18.0.8"))
    assert parse_reply(_reply(q, rcode=3, tc=True).to_wire(), q).rcode == "NXDOMAIN"
    assert parse_reply(_reply(q, tc=True).to_wire(), q).truncated


def test_strays_are_not_our_reply() -> None:
    q = build_query("a.test", "A", 7)
    other_id = _reply(q)
    other_id.id = 8
    with pytest.raises(NotOurReply, match="id 8"):
        parse_reply(other_id.to_wire(), q)
    with pytest.raises(NotOurReply, match="QR"):
        parse_reply(q, q)  # the query itself, echoed
    with pytest.raises(NotOurReply, match="question"):
        parse_reply(_reply(build_query("b.test", "A", 7)).to_wire(), q)


@pytest.mark.parametrize("cut", [0, 5, 11, 20, 30])
def test_cut_replies_are_malformed(cut: int) -> None:
    q = build_query("a.test", "A", 7)
    wire = _reply(q, "a.test. 60 A 198.18.0.7").to_wire()
    with pytest.raises((MalformedReply, NotOurReply)):
        parse_reply(wire[:cut], q)


def test_ptr_of_an_address_asks_the_reverse_name() -> None:
    assert query_name("198.18.0.7", "PTR") == "7.0.18.198.in-addr.arpa."
    assert query_name("2001:db8::1", "PTR").endswith(".8.b.d.0.1.0.0.2.ip6.arpa.")
    assert query_name("x.test", "PTR") == "x.test"
    assert query_name("198.18.0.7", "A") == "198.18.0.7"


def test_rcode_names() -> None:
    assert rcode_valid("nxdomain") == "NXDOMAIN"
    with pytest.raises(ValueError, match="unknown rcode"):
        rcode_valid("NOPE")


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1", DnsServer("127.0.0.1", 53)), ("127.0.0.1:5353", DnsServer("127.0.0.1", 5353)),
    ("::1", DnsServer("::1", 53)), ("[::1]:853", DnsServer("::1", 853)),
    ("[2001:db8::1]", DnsServer("2001:db8::1", 53)),
])
def test_parse_server(text: str, want: DnsServer) -> None:
    assert parse_server(text, 53) == want


@pytest.mark.parametrize("bad", ["dns.google", "127.0.0.1:0", "127.0.0.1:99999", "[::1]:x", ""])
def test_parse_server_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_server(bad, 53)


def test_resolv_conf() -> None:
    text = "# x\nsearch example\nnameserver 198.18.0.53\nnameserver fe80::1%eth0\nnameserver bogus\n" \
           "nameserver 198.18.0.53\noptions edns0\n"
    assert resolv_conf_servers(text, 53) == (DnsServer("198.18.0.53", 53), DnsServer("fe80::1", 53))
    assert DnsServer("fe80::1", 53).label == "[fe80::1]:53"


def test_config_refuses_nonsense() -> None:
    s = (DnsServer("127.0.0.1", 53),)
    with pytest.raises(ValueError):
        DnsConfig(names=(), servers=s)
    with pytest.raises(ValueError):
        DnsConfig(names=("a",), servers=s, edns_size=100)
    with pytest.raises(ValueError):
        DnsConfig(names=("a",), servers=s, qtype="AXFR")


def _q(seq: int, rtt_ms: float | None, *, rcode: str = "NOERROR", data: str = "198.18.0.7",
       outcome: str = "answered") -> DnsQuery:
    answered = outcome == "answered"
    return DnsQuery(seq=seq, server="s:53", name="a.test", qtype="A", transport="udp", outcome=outcome,
                    rtt_ns=None if rtt_ms is None else int(rtt_ms * 1e6), rcode=rcode if answered else None,
                    answers=(Answer("a.test.", 60, "A", data),) if answered else (),
                    answer_count=int(answered), error=None if answered else "no answer within the timeout")


def test_row_statistics_exact() -> None:
    qs = [_q(0, 1.0), _q(1, 2.0), _q(2, 3.0), _q(3, None, outcome="timeout"), _q(4, 5.0, data="198.18.0.8")]
    row = summarize("s:53", "a.test", qs)
    assert (row.sent, row.answered, row.lost, row.loss_pct) == (5, 4, 1, 20.0)
    assert row.rtt_ms == {"min": 1.0, "p50": 2.5, "p90": 4.4, "p99": 4.94, "max": 5.0}
    assert row.answers == ("198.18.0.7", "198.18.0.8") and row.ttl_min == 60
    assert row.errors == {"timeout": 1} and row.last_error == "no answer within the timeout"


def _result(qs: list[DnsQuery]) -> DnsResult:
    return DnsResult(qtype="A", transport="udp", edns_size=1232, rows=(summarize("s:53", "a.test", qs),),
                     queries=tuple(qs))


def test_checks_name_what_failed() -> None:
    ok = _result([_q(0, 1.0), _q(1, 2.0)])
    assert check_dns(ok, expect=r"A 198\.18\.0\.7$").passed
    assert check_dns(ok, expect="198.18.0.9").failed == (
        "a.test @s:53: 2 of 2 answers do not match --expect 198.18.0.9",)
    assert check_dns(ok, expect=None, max_rtt_ms=1.5).failed == ("a.test @s:53: p99 RTT 1.990 ms > max-rtt 1.500 ms",)
    nx = _result([_q(0, 1.0, rcode="NXDOMAIN")])
    assert check_dns(nx, expect=None).failed == ("a.test @s:53: rcode NXDOMAIN (expected NOERROR)",)
    assert check_dns(nx, expect=None, expect_rcode="NXDOMAIN").passed
    lost = _result([_q(0, None, outcome="timeout")])
    assert check_dns(lost, expect=None).failed == ("a.test @s:53: no answer (no answer within the timeout)",)
