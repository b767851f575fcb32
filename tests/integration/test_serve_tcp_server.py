"""The TCP server in-process: modes, limits, backpressure, the session hook, stop bookkeeping."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from netkit.core.serve_models import TcpServerConfig
from netkit.io.aio import run
from netkit.io.servers import tcp_sessions
from netkit.io.servers.tcp_server import TcpServer


async def _started(events: list[dict[str, Any]] | None = None, **kw: Any) -> TcpServer:
    cfg = TcpServerConfig(host=kw.pop("host", "127.0.0.1"), port=0, **kw)
    server = TcpServer(cfg, on_event=events.append if events is not None else None)
    await server.start()
    return server


async def _exchange(port: int, data: bytes, host: str = "127.0.0.1", half_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    if half_close:
        writer.write_eof()
    reply = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return reply


def test_echo_discard_reply_modes(no_socket_leak: None) -> None:
    async def main() -> None:
        for mode, expect in (("echo", b"hello"), ("discard", b""), ("reply", b"OK!")):
            server = await _started(mode=mode, reply=b"OK!")
            try:
                assert await _exchange(server.port, b"hello") == expect
            finally:
                await server.stop()

    run(main())


def test_one_byte_client_not_stuck_behind_session_sniff() -> None:
    """A first byte that could start a session header: after a short wait, plain echo."""

    async def main() -> None:
        server = await _started()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(tcp_sessions.MAGIC[:1])
            assert await asyncio.wait_for(reader.readexactly(1), 2) == tcp_sessions.MAGIC[:1]
            writer.close()
            await writer.wait_closed()
        finally:
            await server.stop()

    run(main())


def test_session_hook_gets_transport_first_bytes_and_server(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class Session(asyncio.Protocol):
        def __init__(self, transport: Any, server: Any) -> None:
            self.transport, self.server = transport, server

        def data_received(self, data: bytes) -> None:
            self.server.add_bytes(self.transport, bytes_in=len(data))
            self.transport.write(b"S:" + data)
            self.server.add_bytes(self.transport, bytes_out=len(data) + 2)

        def connection_lost(self, exc: Exception | None) -> None:
            self.server.closed(self.transport, "session")

    def open_session(transport: Any, first: bytes, server: Any) -> Any:
        seen["first"] = first
        seen["record"] = server.record(transport)
        proto = Session(transport, server)
        transport.set_protocol(proto)
        proto.data_received(first)
        server.emit("session", kind="test")
        return proto

    monkeypatch.setattr(tcp_sessions, "open_session", open_session)
    events: list[dict[str, Any]] = []

    async def main() -> None:
        server = await _started(events)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(tcp_sessions.MAGIC + b"abc")
            reply = await asyncio.wait_for(reader.readexactly(2 + len(tcp_sessions.MAGIC) + 3), 2)
            assert reply == b"S:" + tcp_sessions.MAGIC + b"abc"
            writer.close()
            await writer.wait_closed()
            for _ in range(100):
                if server.active == 0:
                    break
                await asyncio.sleep(0.01)
            summary = server.summary()
        finally:
            await server.stop()
        assert summary.sessions == 1
        assert summary.bytes_in == len(tcp_sessions.MAGIC) + 3
        assert seen["first"].startswith(tcp_sessions.MAGIC)
        assert seen["record"].id == 1

    run(main())
    kinds = [e["event"] for e in events]
    assert kinds == ["listening", "open", "session", "close"]
    assert events[-1]["reason"] == "session"


def test_max_conns_refuses_extra_and_keeps_serving() -> None:
    events: list[dict[str, Any]] = []

    async def main() -> None:
        server = await _started(events, max_conns=1)
        try:
            r1, w1 = await asyncio.open_connection("127.0.0.1", server.port)
            w1.write(b"a")
            assert await r1.readexactly(1) == b"a"
            r2, w2 = await asyncio.open_connection("127.0.0.1", server.port)
            assert await asyncio.wait_for(r2.read(), 2) == b""  # closed at once
            w2.close()
            w1.close()
            await w1.wait_closed()
            for _ in range(100):
                if server.active == 0:
                    break
                await asyncio.sleep(0.01)
            assert await _exchange(server.port, b"again") == b"again"
            assert server.summary().limits_hit["max_conns"] == 1
        finally:
            await server.stop()

    run(main())
    assert any(e["event"] == "limit" and e["limit"] == "max_conns" for e in events)


def test_idle_timeout_and_max_bytes_close_cleanly() -> None:
    events: list[dict[str, Any]] = []

    async def main() -> None:
        server = await _started(events, idle_timeout=0.2, max_bytes=10)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert await asyncio.wait_for(reader.read(), 3) == b""  # idle: closed by the server
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"12345")
            assert await reader.readexactly(5) == b"12345"
            writer.write(b"6789")  # 5+5+4+4 > 10
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
            for _ in range(100):
                if server.active == 0:
                    break
                await asyncio.sleep(0.01)
            limits = server.summary().limits_hit
        finally:
            await server.stop()
        assert limits["idle_timeout"] == 1 and limits["max_bytes"] == 1

    run(main())
    reasons = [e["reason"] for e in events if e["event"] == "close"]
    assert reasons == ["idle-timeout", "max-bytes"]


def test_slow_reader_does_not_grow_server_memory() -> None:
    """A client that sends 16 MiB and reads nothing: the server stops reading from it."""

    async def main() -> None:
        server = await _started(high_water=64 * 1024)
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        loop = asyncio.get_running_loop()
        sent = 0
        try:
            chunk = b"z" * 65536
            while sent < 16 * 1024 * 1024:
                try:
                    await asyncio.wait_for(loop.sock_sendall(sock, chunk), 0.5)
                except asyncio.TimeoutError:
                    break  # both directions are full: the server has stopped reading
                sent += len(chunk)
            rec = next(iter(server._conns.values()))
            buffered = rec.transport.get_write_buffer_size()
            assert sent < 16 * 1024 * 1024, "the server kept reading from a client that never reads"
            assert buffered <= 2 * 1024 * 1024
        finally:
            sock.close()
            await server.stop()

    run(main())


def test_source_mode_streams_until_client_closes() -> None:
    async def main() -> None:
        events: list[dict[str, Any]] = []
        server = await _started(events, mode="source")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            got = 0
            while got < 1024 * 1024:
                chunk = await asyncio.wait_for(reader.read(65536), 2)
                assert chunk, "the source stopped sending while the client was still reading"
                got += len(chunk)
            assert server.active == 1  # still streaming: nothing but the client ends a source session
            writer.close()
            await writer.wait_closed()
            # The client's close ends the session on the server's side, without server.stop().
            deadline = asyncio.get_running_loop().time() + 5
            while server.active and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            assert server.active == 0, "the source session outlived its client"
            closes = [e for e in events if e["event"] == "close"]
            assert len(closes) == 1 and closes[0]["bytes_out"] >= got
        finally:
            await server.stop()

    run(main())


def test_stop_closes_open_connections_and_sums_bytes(no_socket_leak: None) -> None:
    async def main() -> None:
        server = await _started()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"abc")
        await reader.readexactly(3)
        await server.stop()
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        await writer.wait_closed()
        s = server.summary("SIGINT")
        assert (s.connections, s.peak_concurrent, s.bytes_in, s.bytes_out) == (1, 1, 3, 3)
        assert s.stopped_by == "SIGINT"

    run(main())


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")

    async def main() -> None:
        try:
            server = await _started(host="::1")
        except Exception as exc:  # pragma: no cover - IPv6 disabled in this kernel
            pytest.skip(f"::1 unavailable: {exc}")
        try:
            assert server.address.startswith("[::1]:")
            assert await _exchange(server.port, b"v6", host="::1") == b"v6"
        finally:
            await server.stop()

    run(main())


def test_echo_is_exact_for_any_chunking_around_the_sniff() -> None:
    """Any bytes (not a session header), split anywhere, come back whole and in order."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    chunks_st = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=8).filter(
        lambda cs: not b"".join(cs).startswith(tcp_sessions.MAGIC))

    async def roundtrip(chunks: list[bytes]) -> bytes:
        server = await _started()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            for c in chunks:
                writer.write(c)
                await writer.drain()
            writer.write_eof()
            got = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            await writer.wait_closed()
            return got
        finally:
            await server.stop()

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(chunks_st)
    def check(chunks: list[bytes]) -> None:
        assert run(roundtrip(chunks)) == b"".join(chunks)

    check()
