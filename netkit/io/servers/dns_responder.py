"""A tiny authoritative DNS responder over UDP, for ``netkit selftest``'s dns row: answers A queries
for the names it is given, NXDOMAIN for any other name, and drops what does not parse as a query.

dnspython builds and reads the messages. One datagram in, at most one out, no state kept between
them: a peer can make it spend one parse and one small reply per datagram, nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

TTL = 60


def answer(wire: bytes, records: Mapping[str, tuple[str, ...]]) -> bytes | None:
    """The reply to ``wire`` (None: not a query, stay silent)."""
    try:
        q = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError, UnicodeError):
        return None
    if q.flags & 0x8000 or len(q.question) != 1:  # a response, or not one question
        return None
    r = dns.message.make_response(q)
    question = q.question[0]
    addresses = records.get(str(question.name).lower())
    if addresses is None:
        r.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype == dns.rdatatype.A:
        r.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "A", list(addresses)))
    wire_out: bytes = r.to_wire()
    return wire_out


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, records: Mapping[str, tuple[str, ...]]) -> None:
        self.records = records
        self.transport: asyncio.DatagramTransport | None = None
        self.queries = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not the asyncio class

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queries += 1
        reply = answer(data, self.records)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class DnsResponder:
    """``host, port = await DnsResponder({"x.test.": ("198.18.0.1",)}).start()``; ``stop()`` after."""

    def __init__(self, records: Mapping[str, tuple[str, ...]], host: str = "127.0.0.1", port: int = 0) -> None:
        self.records = {name.lower() if name.endswith(".") else name.lower() + ".": addrs
                        for name, addrs in records.items()}
        self.host, self.port = host, port
        self._transport: asyncio.DatagramTransport | None = None
        self._proto: _Responder | None = None

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._transport, self._proto = await loop.create_datagram_endpoint(
            lambda: _Responder(self.records), local_addr=(self.host, self.port))
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @property
    def queries(self) -> int:
        return 0 if self._proto is None else self._proto.queries

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
