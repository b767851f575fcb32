"""A small UDP reflector server around :class:`netkit.io.servers.reflector.Reflector`.

``netkit serve udp --mode echo`` is the user-facing server; this module is the minimal one that
tests, selftest and benchmarks can run in-process (or as ``python -m netkit.io.servers.reflector_server
[HOST] [PORT]``, which prints ``listening on HOST:PORT`` on stderr and runs until SIGINT/SIGTERM).

It reads with ``add_reader`` and drains the socket per wake-up (``recvfrom_into`` until EAGAIN),
which keeps up with 100k probes/s where a per-datagram protocol callback would not.

What it never answers (:class:`netkit.core.limits.ReplyPolicy`, counted in ``not_answered``):
its own address (a datagram spoofed from the reflector to itself would echo forever), the source
ports of services that answer anything (echo, chargen, DNS, NTP...: see ``REFLECTION_PORTS``), a
netkit probe that is already a reply (another reflector's), the same plain datagram from the same
sender more than a few times a second (two echo servers pointed at each other), and past
``DEFAULT_REPLIES_PER_SOURCE`` replies per second to one address.

``datagrams_out``/``bytes_out`` count what the kernel accepted (``sendto`` returned); a refused
send (buffer full, unreachable) is counted in ``send_errors`` and never as sent.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from netkit.core import packet
from netkit.core.limits import DEFAULT_REPLIES_PER_SOURCE, ReplyPolicy
from netkit.io.servers.listen import bound_udp_socket
from netkit.io.servers.reflector import Reflecting, Reflector
from netkit.io.udp_buffers import tune_buffers

_BATCH = 256  # datagrams per wake-up before yielding to the loop
#: Linux's IP_PKTINFO (Python's socket module lacks the name on some versions).
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_ANC_SIZE = socket.CMSG_SPACE(20)  # one in_pktinfo (12 bytes) or in6_pktinfo (20 bytes)


def reply_from_destination(sock: socket.socket) -> bool:
    """Ask the kernel for each datagram's destination address, so that a socket bound to a wildcard
    address answers from the address the client sent to, not from the route's primary address (a
    client's connected socket drops a reply from any other address). False where it cannot."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    except OSError:
        return False
    return True


def reply_source(ancillary: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """The ancillary data that makes a reply leave from the received datagram's destination address."""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 20:
            return [(level, kind, data[:20])]  # the destination address and its interface, as received
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            # in_pktinfo: ifindex 0 (let the route choose), the local address as the source, no header address
            return [(level, kind, bytes(4) + data[4:8] + bytes(4))]
    return []


class ReflectorServer:
    """A bound UDP socket that answers each datagram with ``Reflector.reflect``.

    ``replies_per_source``: the per-source reply bound (None: none; for benchmarks only).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, reflector: Reflecting | None = None, *,
                 replies_per_source: float | None = DEFAULT_REPLIES_PER_SOURCE) -> None:
        self.sock = bound_udp_socket(host, port)  # a failure: "cannot listen on HOST:PORT: reason"
        tune_buffers(self.sock)
        self.reflector = reflector or Reflector()
        self._buf = bytearray(65536)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.datagrams_in = 0
        self.bytes_in = 0
        self.datagrams_out = 0
        self.bytes_out = 0
        self.send_errors = 0
        bound_host, bound_port = self.address
        wildcard = bound_host in ("0.0.0.0", "::")
        self.policy = ReplyPolicy(bound_port, own_addresses(bound_host), wildcard=wildcard,
                                  rate=replies_per_source)
        self._pktinfo = wildcard and reply_from_destination(self.sock)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    @property
    def not_answered(self) -> dict[str, int]:
        """Datagrams not answered, by reason (see module docstring)."""
        return dict(self.policy.counters)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        sock, buf, reflect = self.sock, self._buf, self.reflector.reflect
        policy = self.policy
        own_port, blocked = policy.own_port, policy.blocked_ports
        view = memoryview(buf)
        clock = time.perf_counter_ns
        peek, reflected = packet.peek_seq, packet.FLAG_REFLECTED
        pktinfo = self._pktinfo
        source: list[tuple[int, int, bytes]] = []
        for _ in range(_BATCH):
            try:
                if pktinfo:
                    n, ancillary, _flags, addr = sock.recvmsg_into([buf], _ANC_SIZE)
                    source = reply_source(ancillary)
                else:
                    n, addr = sock.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP errors from earlier sends surface here; nothing to do
            self.datagrams_in += 1
            self.bytes_in += n
            host, port = addr[0], addr[1]
            data = bytes(view[:n])
            # Cheap tests first: the full source check runs only for a suspicious port or a
            # well-formed probe that is already a reply (REFLECTED set: another reflector's).
            marked = n > 5 and bool(data[5] & reflected) and peek(data) is not None
            if (port == own_port or port in blocked or marked) and policy.refuse_source(host, port, data, marked):
                continue
            recv_ns = clock()
            reply = reflect(data, addr, recv_ns)
            if reply is None:
                continue
            # The reflector set REFLECTED: a well-formed probe, carrying the client's sequence
            # number. Anything else came back verbatim and could be bouncing between two echoes.
            rewritten = len(reply) > 5 and reply[5] & reflected and not data[5] & reflected
            if policy.refuse_reply(host, port, data, bool(rewritten), recv_ns):
                continue
            try:
                sent = sock.sendmsg([reply], source, 0, addr) if source else sock.sendto(reply, addr)
            except OSError:
                self.send_errors += 1  # not sent: never counted as sent
                continue
            self.datagrams_out += 1
            self.bytes_out += sent

    def close(self) -> None:
        if self._loop is not None:
            try:
                self._loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError, RuntimeError):
                pass
            self._loop = None
        self.sock.close()


def own_addresses(bound_host: str) -> frozenset[str]:
    """The addresses a socket bound to ``bound_host`` receives on: itself, or every local address."""
    if bound_host not in ("0.0.0.0", "::"):
        return frozenset({bound_host})
    import psutil

    try:
        found = {a.address.split("%", 1)[0] for addrs in psutil.net_if_addrs().values() for a in addrs
                 if a.family in (socket.AF_INET, socket.AF_INET6)}
    except OSError:
        found = set()
    return frozenset(found)


@contextmanager
def reflector_in_thread(host: str = "127.0.0.1", port: int = 0,
                        reflector: Reflector | None = None) -> Iterator[ReflectorServer]:
    """Run a ReflectorServer on its own event loop in a daemon thread (tests, benchmarks)."""
    server = ReflectorServer(host, port, reflector)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def begin() -> None:
        server.start()
        started.set()

    def _run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(begin)
        loop.run_forever()

    thread = threading.Thread(target=_run, name="netkit-reflector", daemon=True)
    thread.start()
    if not started.wait(5.0):
        raise RuntimeError("reflector thread did not start")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)
        loop.close()


async def serve(host: str, port: int, stop: Any = None) -> dict[str, int]:
    """Serve until ``stop`` (a StopSignal) fires; return the reflector's counters."""
    from netkit.io.aio import StopSignal

    reflector = Reflector()
    server = ReflectorServer(host, port, reflector)
    server.start()
    h, p = server.address
    shown = f"[{h}]" if ":" in h else h
    sys.stderr.write(f"reflector listening on {shown}:{p}\n")
    sys.stderr.flush()
    try:
        if stop is None:
            async with StopSignal() as sig:
                await sig.wait()
        else:
            await stop.wait()
    finally:
        server.close()
    return {**reflector.stats, **server.not_answered, "datagrams_in": server.datagrams_in,
            "datagrams_out": server.datagrams_out, "send_errors": server.send_errors}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    host = args[0] if args else "127.0.0.1"
    port = int(args[1]) if len(args) > 1 else 0
    from netkit.io.aio import run

    stats = run(serve(host, port))
    sys.stderr.write(" ".join(f"{k}={v}" for k, v in stats.items()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
