"""``netkit trace --pmtu``: the path MTU and where it drops (the io side).

After the trace has found the path, :func:`find_pmtu` runs the pure search
(``netkit.core.trace_pmtu``) against it: don't-fragment probes (``IP_PMTUDISC_PROBE`` /
``IPV6_PMTUDISC_PROBE``, so the kernel neither fragments them nor shrinks them to a path MTU it
cached from an earlier answer) of the sizes the search asks for, at the TTLs it asks for. UDP
datagrams for ``--method udp`` and ``tcp``, ICMP echo requests for ``icmp``; the answers come
from the socket's error queue exactly as the trace's do ("fragmentation needed" / "packet too
big" carry the router's next-hop MTU; a probe too big for our own interface fails its send with
EMSGSIZE, and the kernel queues that interface's MTU).

The result names the first link's MTU, each drop (``MtuDrop``: the TTL of the first hop behind
the smaller link, as tracepath numbers it, and the router that reported it, or None when the
drop was found by search because its report never came: a PMTU black hole), and sets each
hop's MTU in the trace's hop table. It runs on the trace's selector loop (no asyncio: its import
would cost more than a near path's whole search); :func:`discover_pmtu` wraps it for asyncio.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from netkit.core import icmp_errors as ie
from netkit.core import packet
from netkit.core.errqueue import ExtendedError
from netkit.core.trace_hops import HopTable
from netkit.core.trace_models import DEFAULT_UDP_PORT, Answer, PmtuResult, TraceConfig, TraceMethod
from netkit.core.trace_pmtu import CAP_V4, CAP_V6, PmtuProbe, PmtuSearch, probe_wait_ns
from netkit.io.measure.trace import MAX_WAIT_S, SelectorPoller
from netkit.io.measure.trace_probers import (
    IP_HEADER,
    IcmpTraceProber,
    RecordSink,
    TraceProber,
    UdpTraceProber,
    default_size,
    payload_size,
    send_datagram,
)

if TYPE_CHECKING:  # pragma: no cover
    import asyncio


def _local_mtu(prober: TraceProber, sock: socket.socket, on_record: RecordSink) -> int | None:
    """Our own interface's MTU, from the error queue right after a send failed with EMSGSIZE (the
    kernel queues it before the send returns); any other record met on the way goes on as usual."""
    found: list[int] = []

    def sink(record: ExtendedError, data: bytes, name: object, rx_real: int | None) -> None:
        if record.origin == ie.ORIGIN_LOCAL and record.errno == ie.EMSGSIZE:
            found.append(record.info)
        else:
            on_record(record, data, name, rx_real)

    prober._drain_errqueue(sock, sink)
    return found[-1] if found else _interface_mtu(prober)


def _interface_mtu(prober: TraceProber) -> int | None:
    """Our interface's MTU towards the prober's address when its own socket queues no record of the
    EMSGSIZE (a raw ICMP socket): the EMSGSIZE of the biggest datagram a throwaway DF UDP socket can
    send there. Never the kernel's cached path MTU, which our own probes' answers may have lowered."""
    cap = (CAP_V6 if prober.v6 else CAP_V4) - IP_HEADER[prober.family] - 8
    with socket.socket(prober.family, socket.SOCK_DGRAM) as sock:
        prober._recverr(sock)
        prober._dont_fragment(sock, True)
        sock.setblocking(False)
        try:
            sock.sendto(bytes(cap), (prober.address, DEFAULT_UDP_PORT))
            return None  # it fits (a loopback-sized link): no smaller MTU to report
        except OSError as exc:
            if exc.errno != errno.EMSGSIZE:
                return None
        found: list[int] = []

        def sink(record: ExtendedError, _data: bytes, _name: object, _rx: int | None) -> None:
            if record.origin == ie.ORIGIN_LOCAL and record.errno == ie.EMSGSIZE:
                found.append(record.info)

        prober._drain_errqueue(sock, sink)
    return found[-1] if found else None


class PmtuUdpProber(UdpTraceProber):
    """UDP datagrams of any size, DF, to the destination port the trace uses."""

    dont_fragment = True

    def probe(self, p: PmtuProbe) -> int | None:
        """Send one probe; our interface's MTU when it is too big to leave (EMSGSIZE), else None."""
        self._set_ttl(self.sock, p.ttl)
        data = ie.encode_payload(self.session, p.seq, payload_size(TraceMethod.UDP, self.family, p.size))
        try:
            send_datagram(self.sock, data, (self.address, self._port(p.seq)))
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                return _local_mtu(self, self.sock, self._on_record)
            self.error = exc.strerror or str(exc)
            return None  # not sent: the search hears nothing and tries again
        return None


class PmtuIcmpProber(IcmpTraceProber):
    """ICMP echo requests of any size, DF, on the socket ``--method icmp`` traces with."""

    dont_fragment = True

    interface_mtu: int | None = None  # a raw socket's EMSGSIZE comes without the MTU: found once

    def probe(self, p: PmtuProbe) -> int | None:
        """Send one probe; our interface's MTU when it is too big to leave (EMSGSIZE), else None."""
        self._set_ttl(self.sock, p.ttl)
        body = ie.encode_payload(self.session, p.seq, payload_size(TraceMethod.ICMP, self.family, p.size))
        msg = packet.icmp_echo_request(self.ident, p.seq & 0xFFFF, body, v6=self.v6)
        try:
            send_datagram(self.sock, msg, (self.address, 0))
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                if not self.raw:
                    return _local_mtu(self, self.sock, self._on_record)
                if self.interface_mtu is None:
                    self.interface_mtu = _interface_mtu(self)
                return self.interface_mtu
            self.error = exc.strerror or str(exc)
            return None  # not sent: the search hears nothing and tries again
        return None


def _probe_config(cfg: TraceConfig) -> TraceConfig:
    """The config the probes use: DF on, no kernel stamps (no RTT is reported); tcp traces are sized
    with UDP datagrams (a SYN carries no payload to grow), to traceroute's ports."""
    if cfg.method is TraceMethod.TCP:
        return replace(cfg, method=TraceMethod.UDP, port=None, pmtu=True, kernel_timestamps=False)
    return replace(cfg, pmtu=True, kernel_timestamps=False)


def _reference_rtt_ns(table: HopTable) -> int | None:
    """The slowest round trip the trace saw on this path: the search's waits are a few of these."""
    worst = [h.rtt.max for h in table.hops() if h.rtt.max is not None]
    return int(max(worst)) if worst else None


def find_pmtu(address: str, cfg: TraceConfig, table: HopTable, stopped: Callable[[], bool], *,
              poller: SelectorPoller | None = None) -> PmtuResult:
    """The path MTU to ``address`` after the trace found its hops (``table``); sets each hop's MTU
    in ``table``. Runs on ``poller`` (the trace's own, so its wakeups stop this too) or a new one;
    ``stopped`` is asked after every wakeup and at least every MAX_WAIT_S. The result's ``mtu`` is
    None when the destination was not reached or the answers stopped coming (a stop, or every
    probe unanswered past the timeout)."""
    if table.dest_ttl is None:
        return PmtuResult(mtu=None, first_mtu=None)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    pcfg = _probe_config(cfg)
    hops = table.hops()
    answering = [h.ttl for h in hops if h.received > 0 and not h.destination]
    where: dict[str, int] = {}
    for h in hops:
        for r in h.responders:
            where.setdefault(r.address, h.ttl)
    # The control probes: traceroute's small default size, whatever --size was (it may not fit the path).
    small = default_size(pcfg.method, family)
    timeout_ns = int(cfg.timeout_s * 1e9)
    search = PmtuSearch(v6=family == socket.AF_INET6, dest_ttl=table.dest_ttl, max_ttl=cfg.max_hops,
                        hops=answering, where=where, small=small,
                        wait_ns=probe_wait_ns(_reference_rtt_ns(table), timeout_ns), timeout_ns=timeout_ns)

    def match(low: int, modulus: int, full: int | None) -> int | None:
        if full is None or full % modulus != low % modulus or not search.match(full):
            return None
        return full

    def on_answer(seq: int, source: str, answer: Answer, rx_mono: int, _rx_real: int | None,
                  mtu: int | None, *_rest: object) -> None:
        search.answer(seq, None if source == "local" else source, answer, mtu, rx_mono)

    own_poller = poller is None
    poll = poller if poller is not None else SelectorPoller()
    kind: type[PmtuUdpProber] | type[PmtuIcmpProber] = (
        PmtuIcmpProber if pcfg.method is TraceMethod.ICMP else PmtuUdpProber)
    prober = kind(address, family, pcfg, match=match, on_answer=on_answer, poller=poll)
    try:
        prober.open()
        while not search.done and not stopped():
            now = time.monotonic_ns()
            search.expire(now)
            for p in search.to_send(now):
                local_mtu = prober.probe(p)
                if local_mtu is not None:
                    search.answer(p.seq, None, Answer.FRAG_NEEDED, local_mtu, time.monotonic_ns())
            if search.done:
                break
            now = time.monotonic_ns()
            wake = search.next_wakeup_ns(now)
            if wake is not None and wake <= now:
                continue
            poll.poll(MAX_WAIT_S if wake is None else min(MAX_WAIT_S, (wake - now) / 1e9))
    finally:
        prober.close()
        if own_poller:
            poll.close()
    present = {h.ttl for h in hops}
    for ttl, mtu in search.hop_mtus().items():
        if ttl in present:
            table.set_mtu(ttl, mtu)
    return search.result()


async def discover_pmtu(address: str, cfg: TraceConfig, table: HopTable, stop: asyncio.Event) -> PmtuResult:
    """:func:`find_pmtu` for asyncio callers: in a thread, until done or ``stop`` is set."""
    import asyncio

    return await asyncio.to_thread(find_pmtu, address, cfg, table, stop.is_set)
