"""Kernel transmit stamps and ICMP errors from a real socket's error queue (``netkit.io.timestamps``).

UDP on loopback, no privileges: the same helpers serve ICMP sockets (``measure latency``) and UDP
or ICMP sockets with ``IP_RECVERR`` (a tracer), whose errors share the queue with the stamps.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest
import support

from netkit.core.errqueue import SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6, ErrQueueRecord, QueuedError, TxStamp
from netkit.core.kernel_rtt import Timestamps, TxStampBook
from netkit.io import timestamps


@pytest.fixture(autouse=True, scope="module")
def stamps_switched_on() -> Iterator[None]:
    """The kernel switches receive stamping on for the whole host a moment after the first socket
    asks (a deferred static key): until then datagrams arrive unstamped. Hold one stamped socket
    open for the module and wait until a datagram to itself arrives stamped."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if not timestamps.enable(sock):
            pytest.skip("no kernel receive timestamps on this platform")
        sock.bind(("127.0.0.1", 0))
        sock.connect(sock.getsockname())
        sock.settimeout(2)

        def stamped() -> bool:
            sock.send(b"x")
            return timestamps.from_ancdata(sock.recvmsg(16, timestamps.CMSG_SIZE)[1]) is not None

        support.wait_until(stamped, timeout=5)
        yield


def _stamped_udp(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if timestamps.enable_tx_rx(sock) is not Timestamps.KERNEL_BOTH:
        sock.close()
        pytest.skip("no kernel transmit timestamps on this platform")
    return sock


def _closed_port(family: int, host: str) -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as s:  # bound, then closed: nothing listens there
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _drain_until(sock: socket.socket, done: Callable[[list[ErrQueueRecord]], bool]) -> list[ErrQueueRecord]:
    got: list[ErrQueueRecord] = []

    def more() -> bool:
        got.extend(timestamps.drain_errqueue(sock))
        return done(got)

    support.wait_until(more, timeout=5)
    return got


@pytest.mark.parametrize(("family", "host", "origin", "unreach"), [
    (socket.AF_INET, "127.0.0.1", SO_EE_ORIGIN_ICMP, (3, 3)),  # port unreachable
    (socket.AF_INET6, "::1", SO_EE_ORIGIN_ICMP6, (1, 4)),
])
def test_one_drain_gives_the_stamps_and_hands_on_the_icmp_errors(family: int, host: str, origin: int,
                                                                 unreach: tuple[int, int]) -> None:
    port = _closed_port(family, host)
    with _stamped_udp(family) as sock:
        assert timestamps.enable_recverr(sock)
        sock.connect((host, port))
        book = TxStampBook(explicit=True)
        before = time.time_ns()
        recs: list[ErrQueueRecord] = []
        for seq in (7, 8):
            # Draining the error (its last one) also clears the socket's pending error, which the
            # next send would otherwise raise (ECONNREFUSED) instead of sending.
            timestamps.send_stamped(sock, b"probe%d" % seq, None, seq, book)
            recs += _drain_until(sock, lambda g: sum(isinstance(r, TxStamp) for r in g) == 1
                                 and sum(isinstance(r, QueuedError) for r in g) == 1)
        after = time.time_ns()
    stamps = sorted((r for r in recs if isinstance(r, TxStamp)), key=lambda r: r.key)
    assert [r.key for r in stamps] == [7, 8]  # the keys the datagrams were sent with
    assert all(before <= r.stamp_ns <= after for r in stamps)
    assert [book.on_stamp(r.key, r.stamp_ns) for r in stamps] == [7, 8]
    errors = [r for r in recs if isinstance(r, QueuedError)]
    for e in errors:
        assert (e.error.origin, e.error.type, e.error.code, e.error.offender) == (origin, *unreach, host)
        # An ICMP error made on loopback may now and then come unstamped (the kernel stamps it as it
        # arrives, or leaves the time it was sent): callers fall back to their own clock then.
        assert e.rx_stamp_ns is None or before <= e.rx_stamp_ns <= after
    assert sorted(e.payload for e in errors) == [b"probe7", b"probe8"]  # the quoted datagrams


def test_where_per_datagram_keys_are_refused_the_kernels_counter_pairs_them() -> None:
    with _stamped_udp(socket.AF_INET) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.connect(sock.getsockname())  # to itself: the datagrams come back as replies would
        book = TxStampBook(explicit=False)
        for seq in (100, 101, 102):
            timestamps.send_stamped(sock, b"x", None, seq, book)
        recs = _drain_until(sock, lambda g: len(g) == 3)
        got = {book.on_stamp(r.key, r.stamp_ns) for r in recs if isinstance(r, TxStamp)}
        assert got == {100, 101, 102}
        _data, anc, _flags, _addr = sock.recvmsg(16, timestamps.CMSG_SIZE)
    rx = timestamps.from_ancdata(anc)  # SCM_TIMESTAMPING's software stamp
    tx = book.take(100)
    assert rx is not None and tx is not None and 0 < rx - tx < 1_000_000_000


def test_from_ancdata_reads_the_software_stamp_of_scm_timestamping() -> None:
    data = struct.pack("@qqqqqq", 12, 345, 0, 0, 0, 0)
    assert timestamps.from_ancdata([(socket.SOL_SOCKET, timestamps.SO_TIMESTAMPING, data)]) == 12_000_000_345
    hw_only = struct.pack("@qqqqqq", 0, 0, 0, 0, 5, 6)
    assert timestamps.from_ancdata([(socket.SOL_SOCKET, timestamps.SO_TIMESTAMPING, hw_only)]) is None


def _loops() -> list[str]:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        return ["asyncio"]
    return ["asyncio", "uvloop"]


@pytest.mark.parametrize("loop_kind", _loops())
def test_a_watch_keeps_reading_while_stamps_queue_up_on_any_loop(loop_kind: str) -> None:
    # uvloop (libuv) stops watching a descriptor that polls EPOLLERR, which a queued stamp causes:
    # read by add_reader on the socket itself, only the first datagram would ever be seen.
    n = 50

    async def run() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        with _stamped_udp(socket.AF_INET) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.connect(sock.getsockname())
            book = TxStampBook(explicit=True)
            seen = [0, 0]
            done = asyncio.Event()

            def readable() -> None:
                seen[1] += sum(isinstance(r, TxStamp) for r in timestamps.drain_errqueue(sock))
                while True:
                    try:
                        sock.recv(16)
                    except BlockingIOError:
                        break
                    seen[0] += 1
                if seen == [n, n]:
                    done.set()

            fds = support.open_fds()
            watch = timestamps.ErrQueueWatch(loop, sock, readable)
            try:
                for seq in range(n):
                    timestamps.send_stamped(sock, b"x", None, seq, book)
                    await asyncio.sleep(0.001)
                await asyncio.wait_for(done.wait(), 5)
            finally:
                watch.close()
            assert support.open_fds() == fds  # the watch's epoll set is closed with it
            return seen[0], seen[1]

    if loop_kind == "uvloop":
        import uvloop

        result = uvloop.run(run()) if hasattr(uvloop, "run") else asyncio.run(run())
    else:
        result = asyncio.run(run())
    assert result == (n, n)
