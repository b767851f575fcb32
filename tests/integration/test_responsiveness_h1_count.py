"""The HTTP/1.1 client's counted downloads: the body counted from the buffer to its Content-Length,
chunked bodies through h11, a body without length to the close; responses cut at every position."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netkit.io.clients.http_conn import H1Protocol


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, data: bytes) -> None:
        self.out += data

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return None

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


def feed(proto: H1Protocol, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        piece = data[i:i + step]
        proto._mv[:len(piece)] = piece
        proto.buffer_updated(len(piece))


BODY = bytes(range(256)) * 40  # 10,240 bytes
RESPONSES = {
    "length": b"HTTP/1.1 200 OK\r\nContent-Length: 10240\r\n\r\n" + BODY,
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n" % 1024 + BODY[i:i + 1024] + b"\r\n" for i in range(0, 10240, 1024)) + b"0\r\n\r\n",
}


@pytest.mark.parametrize("kind", sorted(RESPONSES))
@pytest.mark.parametrize("step", [1, 5, 40, 1000, 100_000])
def test_counted_body_then_next_request(kind: str, step: int) -> None:
    async def scenario() -> None:
        proto = H1Protocol()
        tr = FakeTransport()
        proto.connection_made(tr)
        for round_ in range(2):  # the same connection serves the next request
            st = proto.request("GET", "http", "x", "/large", count_only=True)
            assert tr.out.startswith(b"GET /large HTTP/1.1\r\n")
            tr.out.clear()
            feed(proto, RESPONSES[kind], step)
            r = await asyncio.wait_for(st.done, 1)
            assert r.status == 200 and r.body == b""
            assert proto.bytes_in == 10240 * (round_ + 1)

    asyncio.run(scenario())


def test_body_without_length_runs_to_the_close() -> None:
    async def scenario() -> None:
        proto = H1Protocol()
        proto.connection_made(FakeTransport())
        st = proto.request("GET", "http", "x", "/large", count_only=True)
        feed(proto, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY, 333)
        assert proto.bytes_in == 10240 and not st.done.done()
        proto.eof_received()
        assert st.done.done() and proto.closed

    asyncio.run(scenario())


def test_small_response_read_whole() -> None:
    async def scenario() -> None:
        proto = H1Protocol()
        proto.connection_made(FakeTransport())
        st = proto.request("GET", "http", "x", "/small")
        feed(proto, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 1)
        r = await asyncio.wait_for(st.done, 1)
        assert (r.status, r.body) == (200, b"x")

    asyncio.run(scenario())
