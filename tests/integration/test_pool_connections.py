"""The connection pool on its own, against an in-process ``netkit serve tcp`` (echo)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from netkit.core.backoff import Backoff
from netkit.core.pool_config import PoolConfig
from netkit.core.request_framing import LengthFramer
from netkit.core.serve_models import TcpServerConfig
from netkit.io.aio import run
from netkit.io.clients.pool import ConnectionPool, PoolClosed, PoolConnectError, PoolTimeout
from netkit.io.servers.tcp_server import TcpServer

FAST = Backoff(20_000_000, 2.0, 200_000_000)  # 20 ms doubling to 200 ms: quick tests


async def _server(port: int = 0) -> TcpServer:
    srv = TcpServer(TcpServerConfig(host="127.0.0.1", port=port, mode="echo"))
    await srv.start()
    return srv


async def _until(pred, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_pool_requests_acquire_release_and_bounded_wait(no_socket_leak) -> None:
    async def main() -> None:
        srv = await _server()
        pool = ConnectionPool(srv.host, srv.port, PoolConfig(size=2, acquire_timeout_s=0.1, backoff=FAST))
        try:
            assert await pool.start() == 2
            async with pool.connection() as conn:
                assert await conn.request(b"hello", LengthFramer(5), timeout=2) == b"hello"
            a = await pool.acquire()
            b = await pool.acquire()
            assert a is not b and pool.stats().in_use == 2
            with pytest.raises(PoolTimeout):
                await pool.acquire()  # bounded wait: none free
            assert pool.stats().acquire_timeouts == 1
            waiter = asyncio.ensure_future(pool.acquire(timeout=2))
            await asyncio.sleep(0.01)
            pool.release(a)  # handed to the oldest waiter, not to the idle set
            assert await waiter is a
            pool.release(a)
            pool.release(b)
            assert pool.stats().idle == 2
        finally:
            await pool.close()
            await srv.stop()
        with pytest.raises(PoolClosed):
            await pool.acquire()

    run(main())


def test_pool_reconnects_after_drop_and_counts_it(no_socket_leak) -> None:
    async def main() -> None:
        srv = await _server()
        events: list[str] = []
        pool = ConnectionPool(srv.host, srv.port, PoolConfig(size=3, backoff=FAST),
                              on_event=lambda name, _f: events.append(name))
        try:
            await pool.start()
            victim = pool.connections[0]
            victim.abort()  # as if the peer reset it
            await _until(lambda: pool.stats().reconnects == 1 and pool.stats().open == 3)
            s = pool.stats()
            assert s.drops == 1 and s.connects == 4
            assert "drop" in events and "reconnect" in events
            # the whole server restarts on the same port: every slot drops and comes back
            port = srv.port
            await srv.stop()
            await _until(lambda: pool.stats().open == 0)
            srv = await _server(port)
            await _until(lambda: pool.stats().open == 3, timeout=5)
            assert pool.stats().drops == 4 and pool.stats().reconnects == 4
            async with pool.connection() as conn:
                assert await conn.request(b"again", LengthFramer(5), timeout=2) == b"again"
        finally:
            await pool.close()
            await srv.stop()

    run(main())


def test_pool_health_check_replaces_bad_connections(no_socket_leak) -> None:
    async def main() -> None:
        srv = await _server()
        verdicts = iter([False] + [True] * 1000)

        async def check(conn) -> bool:
            return next(verdicts)

        pool = ConnectionPool(srv.host, srv.port, PoolConfig(size=1, health_interval_s=0.05, backoff=FAST),
                              health_check=check)
        try:
            await pool.start()
            await _until(lambda: pool.stats().health_failures == 1 and pool.stats().reconnects == 1)
            assert pool.stats().open == 1
        finally:
            await pool.close()
            await srv.stop()

    run(main())


def test_pool_refused_raises_and_leaves_nothing_open(no_socket_leak) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused

        async def main() -> None:
            pool = ConnectionPool("127.0.0.1", port, PoolConfig(size=2, backoff=FAST))
            with pytest.raises(PoolConnectError, match="refused"):
                await pool.start()

        run(main())


def test_pool_request_timeout_closes_the_connection(no_socket_leak) -> None:
    async def main() -> None:
        srv = await _server()
        pool = ConnectionPool(srv.host, srv.port, PoolConfig(size=1, backoff=FAST))
        try:
            await pool.start()
            conn = await pool.acquire()
            with pytest.raises(asyncio.TimeoutError):
                await conn.request(b"abc", LengthFramer(10), timeout=0.1)  # echo sends 3 bytes, not 10
            pool.release(conn)
            await _until(lambda: pool.stats().reconnects == 1)
        finally:
            await pool.close()
            await srv.stop()

    run(main())


def test_pool_over_tls(tmp_path, no_socket_leak) -> None:
    from netkit.io.tls import client_context, server_context

    async def main() -> None:
        cert = tmp_path / "cert.pem"
        tls = server_context(host="127.0.0.1", keep_cert_at=cert)
        srv = TcpServer(TcpServerConfig(host="127.0.0.1", port=0, mode="echo"), tls=tls.context)
        await srv.start()
        pool = ConnectionPool(srv.host, srv.port, PoolConfig(size=2, backoff=FAST),
                              ssl=client_context(cafile=cert), server_hostname="127.0.0.1")
        try:
            await pool.start()
            async with pool.connection() as conn:
                assert conn.transport.get_extra_info("ssl_object") is not None
                assert await conn.request(b"secret", LengthFramer(6), timeout=2) == b"secret"
        finally:
            await pool.close()
            await srv.stop()
        # an unverifiable certificate is a connect failure, reported as one line
        pool = ConnectionPool(srv.host, srv.port, PoolConfig(size=1, backoff=FAST), ssl=client_context())
        srv = TcpServer(TcpServerConfig(host="127.0.0.1", port=srv.port, mode="echo"), tls=tls.context)
        await srv.start()
        try:
            with pytest.raises(PoolConnectError, match="TLS"):
                await pool.start()
        finally:
            await srv.stop()

    run(main())


def test_pool_backs_off_when_connections_die_at_once(no_socket_leak) -> None:
    async def main() -> None:
        # over its limit the server accepts and aborts at once: without backoff that is a busy loop
        srv = TcpServer(TcpServerConfig(host="127.0.0.1", port=0, mode="echo", max_conns=1))
        await srv.start()
        pool = ConnectionPool(srv.host, srv.port, PoolConfig(size=3, backoff=FAST))
        try:
            await pool.start()
            await asyncio.sleep(1.0)
            s = pool.stats()
            # 20 ms doubling to 200 ms: about 8 attempts per slot in a second, not thousands
            assert 2 <= s.drops + s.connect_failures <= 40, s
            assert s.open >= 1
        finally:
            await pool.close()
            await srv.stop()

    run(main())
