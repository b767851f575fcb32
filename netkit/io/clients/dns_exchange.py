"""One DNS exchange over UDP, TCP or TLS, timed at the socket: the client side of ``measure dns`` and
of the monitor's ``dns`` probes.

- UDP: a fresh unconnected socket per query (a new random source port and a new random id), so a
  datagram from another address or port is seen, ignored and counted (``wrong_source``) rather than
  dropped unseen by the kernel; a datagram with another id or question is ignored too
  (``wrong_id``/``wrong_question``), as is one that does not parse (``malformed``). Only the answer
  ends the wait. A reply with TC set is asked again over TCP: both times are kept.
- HTTPS (DoH, RFC 8484): the query POSTed as ``application/dns-message`` (or sent by GET, id 0)
  over HTTP/2 when the server offers it by ALPN, else HTTP/1.1 (``netkit.io.clients.http_conn``);
  one connection per server kept across queries (:class:`DohPool`), its setup timed apart from
  the queries; the head and the body are bounded.
- TCP and TLS: one connection per query (connect and handshake included in the time, as a stub
  resolver pays them); the two-byte length is at most 65,535 by construction, and every read ends
  by the query's deadline, so a peer that stalls or promises more than it sends costs at most the
  timeout and 64 KiB.

Every wait ends within the query's ``timeout_s``; nothing here prints.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from netkit.core.dns_result import DnsQuery
from netkit.core.dns_wire import MAX_MESSAGE, MalformedReply, NotOurReply, Reply, build_query, parse_reply
from netkit.io.clock import DEFAULT_CLOCK, Clock

#: Stray datagrams a query's socket queues before it drops more (each is at most 64 KiB).
MAX_QUEUED = 64


@dataclass
class Ignored:
    """Datagrams that were not the answer, by kind (``core.dns_result.IGNORED_KINDS``)."""

    counts: dict[str, int] = field(default_factory=dict)
    last: str | None = None

    def add(self, kind: str, why: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.last = f"{kind.replace('_', ' ')}: {why}"


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue(MAX_QUEUED)
        self.error: OSError | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.queue.full():
            self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.error = exc
            if not self.queue.full():
                self.queue.put_nowait((b"", ("", 0)))  # wakes the reader to see the error


def _same_host(a: str, b: str) -> bool:
    # An IPv4-mapped address (a dual-stack socket) is the same host as its IPv4 form.
    return a.removeprefix("::ffff:") == b.removeprefix("::ffff:")


async def udp_exchange(host: str, port: int, query: bytes, deadline_ns: int, ignored: Ignored,
                       clock: Clock = DEFAULT_CLOCK) -> tuple[Reply, int]:
    """Send ``query`` to ``host:port`` over UDP and wait for its answer: the reply and the RTT (ns)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    transport, proto = await loop.create_datagram_endpoint(_Datagrams, family=family)
    try:
        start = clock.now_ns()
        transport.sendto(query, (host, port))
        while True:
            left = deadline_ns - clock.now_ns()
            if left <= 0:
                raise TimeoutError
            data, addr = await asyncio.wait_for(proto.queue.get(), left / 1e9)
            if proto.error is not None:
                raise proto.error
            end = clock.now_ns()
            if not _same_host(addr[0], host) or addr[1] != port:
                ignored.add("wrong_source", f"from {addr[0]}:{addr[1]}")
                continue
            try:
                return parse_reply(data, query), end - start
            except NotOurReply as e:
                ignored.add("wrong_question" if "question" in str(e) else "wrong_id", str(e))
            except MalformedReply as e:
                ignored.add("malformed", str(e))
    finally:
        transport.close()


async def stream_exchange(host: str, port: int, query: bytes, deadline_ns: int, *,
                          ssl_ctx: ssl.SSLContext | None = None, server_hostname: str | None = None,
                          clock: Clock = DEFAULT_CLOCK) -> tuple[Reply, int]:
    """The query over a new TCP (or TLS) connection: the reply and the time from connect to answer."""
    left = (deadline_ns - clock.now_ns()) / 1e9
    if left <= 0:
        raise TimeoutError
    start = clock.now_ns()

    async def exchange() -> Reply:
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl_ctx,
                                                       server_hostname=server_hostname if ssl_ctx else None,
                                                       limit=MAX_MESSAGE + 2)
        try:
            writer.write(len(query).to_bytes(2, "big") + query)
            await writer.drain()
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                wire = await reader.readexactly(size)
                try:
                    return parse_reply(wire, query)
                except NotOurReply:
                    continue  # another message on our connection: keep reading until the deadline
        finally:
            writer.close()

    try:
        reply = await asyncio.wait_for(exchange(), left)
    except asyncio.IncompleteReadError:
        raise ConnectionError("the server closed the connection before a whole answer") from None
    return reply, clock.now_ns() - start


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        from netkit.io.tls import tls_error_message

        return tls_error_message(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, MalformedReply):
        return f"malformed reply: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


async def query_once(*, seq: int, host: str, port: int, label: str, name: str, qname: str, qtype: str,
                     transport: str, timeout_s: float, edns_size: int, ignored: Ignored,
                     ssl_ctx: ssl.SSLContext | None = None, server_hostname: str | None = None,
                     doh: tuple[str, str] | None = None, doh_get: bool = False, doh_pool: DohPool | None = None,
                     clock: Clock = DEFAULT_CLOCK) -> DnsQuery:
    """One query of ``qname``/``qtype`` to ``host:port``, with its TCP retry when UDP comes back
    truncated; never raises for what the network or the server does (a timeout or an error is an
    outcome)."""
    # DoH GET uses id 0 (RFC 8484 4.1): the same question is the same URL, which an HTTP cache can keep.
    qid = 0 if transport == "https" and doh_get else secrets.randbelow(65536)
    query = build_query(qname, qtype, qid, edns_size=edns_size)
    deadline = clock.now_ns() + int(timeout_s * 1e9)
    base: dict[str, Any] = {"seq": seq, "server": label, "name": name, "qtype": qtype}
    udp_ns = None
    truncated = False
    used = transport
    before = ignored.last
    info: DohInfo | None = None
    try:
        if transport == "udp":
            reply, rtt = await udp_exchange(host, port, query, deadline, ignored, clock)
            if reply.truncated:
                udp_ns, truncated, used = rtt, True, "tcp"
                reply, tcp_ns = await stream_exchange(host, port, query, deadline, clock=clock)
                rtt = udp_ns + tcp_ns
        elif transport == "https":
            assert ssl_ctx is not None and doh is not None
            reply, rtt, info = await https_exchange(host, port, query, deadline, ssl_ctx=ssl_ctx,
                                                    authority=doh[0], path=doh[1],
                                                    server_hostname=server_hostname,
                                                    get=doh_get, pool=doh_pool, clock=clock)
        else:
            reply, rtt = await stream_exchange(host, port, query, deadline, ssl_ctx=ssl_ctx,
                                               server_hostname=server_hostname, clock=clock)
    except (TimeoutError, asyncio.TimeoutError):
        why = "no answer within the timeout" + (f" (ignored {ignored.last})" if ignored.last != before else "")
        return DnsQuery(**base, transport=used, outcome="timeout", truncated=truncated, udp_ns=udp_ns,
                        error=why)
    except (OSError, EOFError, MalformedReply, ssl.SSLError) as e:
        return DnsQuery(**base, transport=used, outcome="error", truncated=truncated, udp_ns=udp_ns,
                        error=_error_text(e))
    return DnsQuery(**base, transport=used, outcome="answered", rtt_ns=rtt, udp_ns=udp_ns,
                    tcp_ns=rtt - udp_ns if udp_ns is not None else None, truncated=truncated,
                    rcode=reply.rcode, answers=reply.answers, answer_count=reply.answer_count,
                    edns_size=reply.edns_size, size=reply.size,
                    http_version=info.http_version if info else None, connect_ns=info.connect_ns if info else None)


@dataclass
class DohPool:
    """DoH connections kept open by server (address and port), one each, reused query after query as
    a stub resolver keeps its connection: HTTP/2 when the server offers it by ALPN, else HTTP/1.1."""

    conns: dict[tuple[str, int], Any] = field(default_factory=dict)  # (host, port) -> http_conn.Dialed

    def take(self, host: str, port: int) -> Any:
        """The open connection to ``host:port`` still good for a request, or None."""
        dialed = self.conns.get((host, port))
        if dialed is None:
            return None
        if not dialed.protocol.accepts_requests():
            self.drop(host, port)
            return None
        return dialed

    def drop(self, host: str, port: int) -> None:
        dialed = self.conns.pop((host, port), None)
        if dialed is not None:
            dialed.close()

    def close(self) -> None:
        for key in list(self.conns):
            self.drop(*key)


@dataclass(frozen=True)
class DohInfo:
    """How a DoH query went: the HTTP version (``2`` or ``1.1``) and, when this query opened the
    connection, its setup time (TCP and TLS handshakes, ns)."""

    http_version: str
    connect_ns: int | None


def doh_get_target(path: str, query: bytes) -> str:
    """RFC 8484 GET: the query base64url-encoded without padding as the ``dns`` parameter."""
    import base64

    encoded = base64.urlsafe_b64encode(query).rstrip(b"=").decode()
    return f"{path}{'&' if '?' in path else '?'}dns={encoded}"


async def https_exchange(host: str, port: int, query: bytes, deadline_ns: int, *, ssl_ctx: ssl.SSLContext,
                         authority: str, path: str, server_hostname: str | None, get: bool = False,
                         pool: DohPool | None = None, clock: Clock = DEFAULT_CLOCK) -> tuple[Reply, int, DohInfo]:
    """The query as an RFC 8484 POST (or ``get``) on the pool's connection to ``host:port`` (a new one
    when there is none, kept for the next query; without ``pool``, closed after): the reply, the time
    from the request to the last byte of its answer, and :class:`DohInfo`. A kept connection the
    server has closed meanwhile is dialed again once. Every wait ends by ``deadline_ns``; the body is
    bounded by the largest DNS message, an HTTP/1.1 head by ``http_conn.MAX_HEAD``, an HTTP/2 header
    list by h2's 64 KiB (its frames at the default 16 KiB)."""
    from netkit.io.clients.http_conn import HttpError, dial

    own = pool is None
    pool = pool or DohPool()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    headers = [("accept", "application/dns-message")]
    if not get:
        headers.append(("content-type", "application/dns-message"))
    target = doh_get_target(path, query) if get else path
    try:
        for attempt in (1, 2):
            left = (deadline_ns - clock.now_ns()) / 1e9
            if left <= 0:
                raise TimeoutError
            dialed = pool.take(host, port)
            connect_ns = None
            if dialed is None:
                # Asked by address, the address stands as the TLS name (an IP literal sends no SNI, and
                # the caller has turned the name check off then).
                dialed = await dial((family, (host, port)), ssl_ctx=ssl_ctx, server_hostname=server_hostname or host,
                                    timeout_s=left, small=True)
                pool.conns[(host, port)] = dialed
                connect_ns = dialed.tcp_ns + (dialed.tls_ns or 0)
                left = (deadline_ns - clock.now_ns()) / 1e9
            start = clock.now_ns()
            stream = None
            try:
                stream = dialed.protocol.request("GET" if get else "POST", "https", authority, target,
                                                 extra_headers=headers, body=None if get else query,
                                                 keep=MAX_MESSAGE)
                stream.max_body = MAX_MESSAGE
                response = await asyncio.wait_for(asyncio.shield(stream.done), max(left, 0.0))
            except HttpError as e:
                pool.drop(host, port)
                if (stream is None or not stream.status) and connect_ns is None and attempt == 1:
                    continue  # a kept connection the server had closed: dial once more
                if stream is not None and stream.nbytes > MAX_MESSAGE:
                    raise ConnectionError("the DoH answer is larger than any DNS message") from None
                why = str(e)
                for broken in ("HTTP/2 protocol error: ", "malformed HTTP response: "):
                    if why.startswith(broken):
                        raise ConnectionError(f"the DoH server broke HTTP/{_version(dialed)}: "
                                              f"{why.removeprefix(broken)}") from None
                raise ConnectionError(f"DoH over HTTP/{_version(dialed)}: {why}") from None
            except BaseException:
                pool.drop(host, port)  # a timeout (or a stop) leaves the exchange half done
                raise
            end = clock.now_ns()
            info = DohInfo(_version(dialed), connect_ns)
            if response.status != 200:
                raise ConnectionError(f"the DoH server answered HTTP {response.status}")
            ctype = next((v for k, v in stream.headers if k.lower() == b"content-type"), b"")
            if not ctype.startswith(b"application/dns-message"):
                raise ConnectionError(f"the DoH answer is {ctype.decode(errors='replace')[:60] or 'untyped'}, "
                                      "not application/dns-message")
            try:
                return parse_reply(response.body, query), end - start, info
            except NotOurReply as e:
                raise MalformedReply(f"not the answer: {e}") from None
        raise TimeoutError  # pragma: no cover - the loop returns or raises
    finally:
        if own:
            pool.close()


def _version(dialed: Any) -> str:
    return "2" if dialed.protocol.http_version == "h2" else "1.1"
