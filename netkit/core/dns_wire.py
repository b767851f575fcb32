"""DNS messages for ``netkit measure dns``: build a query, check and read a reply. Pure.

dnspython does the wire format (``dns.message``); this module decides what a reply must be to
count as the answer to a query, and what of it the results keep:

- the reply's id equals the query's, it has the QR bit, and its question section is the query's
  (same name, type and class): anything else is not our answer (a stray or a spoofed datagram), and
  :func:`parse_reply` raises :class:`NotOurReply` so the caller ignores and counts it;
- a reply that does not parse (a compression pointer loop, a truncated record, trailing junk)
  raises :class:`MalformedReply`: dnspython rejects forward and looping compression pointers, so a
  hostile message costs at most its own size (at most 65,535 bytes, the largest DNS message);
- the answer records are kept as text (``name ttl type rdata``, as dig prints them), at most
  :data:`MAX_ANSWERS` of them, each whole (its size is bounded by the message's): peer bytes, which
  the renderers pass through ``core.escape.safe_text``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename

#: The query types ``-t`` accepts.
QTYPES = ("A", "AAAA", "MX", "TXT", "NS", "SOA", "CNAME", "PTR", "SRV", "ANY")
#: The largest DNS message (a TCP message's two-byte length); a UDP read buffer of this size.
MAX_MESSAGE = 65535
#: Answer records kept per reply (the rest are counted in ``answer_count``).
MAX_ANSWERS = 64
#: The EDNS UDP payload size queries advertise by default (the DNS flag day 2020 value, dig's too).
DEFAULT_EDNS_SIZE = 1232


class NotOurReply(Exception):
    """A message that is not the answer to the query (wrong id, not a response, other question)."""


class MalformedReply(Exception):
    """Bytes that do not parse as a DNS message."""


@dataclass(frozen=True)
class Answer:
    """One answer record: owner name, TTL, type and the record data as text (peer bytes)."""

    name: str
    ttl: int
    rtype: str
    data: str

    def text(self) -> str:
        return f"{self.name} {self.ttl} {self.rtype} {self.data}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ttl": self.ttl, "type": self.rtype, "data": self.data}


@dataclass(frozen=True)
class Reply:
    """What the results keep of one reply."""

    rcode: str
    answers: tuple[Answer, ...]
    truncated: bool
    edns_size: int | None  # the server's advertised UDP payload size (None: no EDNS in the reply)
    size: int  # bytes of the message
    answer_count: int  # records in the answer section (``answers`` may hold fewer)


def query_name(name: str, qtype: str) -> str:
    """The name to ask: for PTR an address becomes its reverse name (``1.0.0.127.in-addr.arpa.``)."""
    if qtype == "PTR":
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name
        return str(dns.reversename.from_address(name))
    return name


def validate_name(name: str) -> str:
    """``name`` as an absolute DNS name's text, or ValueError with the reason."""
    try:
        return str(dns.name.from_text(name))
    except dns.exception.DNSException as e:
        raise ValueError(f"not a DNS name: {name!r} ({e})") from None


def build_query(name: str, qtype: str, qid: int, *, edns_size: int = DEFAULT_EDNS_SIZE) -> bytes:
    """The wire form of a recursive query for ``name``/``qtype`` with id ``qid``; EDNS with payload
    size ``edns_size`` (0: no EDNS, the classic 512-byte UDP limit)."""
    if qtype not in QTYPES:
        raise ValueError(f"unknown query type {qtype!r}")
    msg = dns.message.make_query(dns.name.from_text(name), dns.rdatatype.from_text(qtype),
                                 use_edns=edns_size > 0, payload=max(edns_size, 512))
    msg.id = qid & 0xFFFF
    wire: bytes = msg.to_wire()
    return wire


def _question(wire: bytes) -> tuple[int, Any]:
    """The id and question section of a query we built (it always parses)."""
    q = dns.message.from_wire(wire)
    return q.id, q.question


def parse_reply(wire: bytes, query: bytes) -> Reply:
    """Check that ``wire`` answers ``query`` and read it; :class:`NotOurReply` or :class:`MalformedReply`."""
    if len(wire) < 12:
        raise MalformedReply(f"{len(wire)} bytes, shorter than a DNS header")
    qid, question = _question(query)
    rid = int.from_bytes(wire[:2], "big")
    if rid != qid:
        raise NotOurReply(f"id {rid} (expected {qid})")
    if not wire[2] & 0x80:
        raise NotOurReply("not a response (QR bit clear)")
    try:
        msg = dns.message.from_wire(wire, ignore_trailing=False, raise_on_truncation=False)
    except (dns.exception.DNSException, ValueError, UnicodeError) as e:
        raise MalformedReply(str(e) or type(e).__name__) from None
    if msg.question != question:
        raise NotOurReply("a different question")
    answers: list[Answer] = []
    count = 0
    for rrset in msg.answer:
        for rd in rrset:
            count += 1
            if len(answers) < MAX_ANSWERS:
                answers.append(Answer(name=str(rrset.name), ttl=int(rrset.ttl),
                                      rtype=dns.rdatatype.to_text(rrset.rdtype),
                                      data=rd.to_text()))
    edns = int(msg.payload) if msg.edns >= 0 else None
    return Reply(rcode=dns.rcode.to_text(msg.rcode()), answers=tuple(answers),
                 truncated=bool(msg.flags & dns.flags.TC), edns_size=edns, size=len(wire), answer_count=count)


def rcode_valid(text: str) -> str:
    """An rcode's name in upper case (``NOERROR``, ``NXDOMAIN``...), or ValueError."""
    try:
        return dns.rcode.to_text(dns.rcode.from_text(text.upper()))
    except (dns.exception.DNSException, ValueError):
        raise ValueError(f"unknown rcode {text!r} (NOERROR, NXDOMAIN, SERVFAIL, REFUSED...)") from None
