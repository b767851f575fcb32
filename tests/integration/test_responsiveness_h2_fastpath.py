"""The h2 client's fast path: DATA of a load stream counted and skipped before h2, every other frame
through h2, whatever the split of the bytes (h11's way: a server in memory, bytes cut at every size)."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest

from netkit.io.clients.http_conn import H2Protocol


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, data: bytes) -> None:
        self.out += data

    def get_extra_info(self, name: str) -> Any:
        return None

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        pass


def feed(proto: H2Protocol, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        piece = data[i:i + step]
        proto._mv[:len(piece)] = piece
        proto.buffer_updated(len(piece))


@pytest.mark.parametrize("step", [1, 7, 9, 10, 4096, 100_000])
def test_load_data_counted_probe_answered(step: int) -> None:
    async def scenario() -> None:
        client = H2Protocol()
        tr = FakeTransport()
        client.connection_made(tr)
        server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        server.initiate_connection()
        server.receive_data(bytes(tr.out))
        tr.out.clear()
        load = client.request("GET", "https", "x", "/large", count_only=True)
        probe = client.request("GET", "https", "x", "/small")
        events = server.receive_data(bytes(tr.out))
        sids = [e.stream_id for e in events if isinstance(e, h2.events.RequestReceived)]
        assert len(sids) == 2
        server.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 2**24 - 1})
        server.max_outbound_frame_size = 40_000
        resp = [(b":status", b"200")]
        server.send_headers(sids[0], resp)
        server.send_headers(sids[1], resp)
        payload = bytes(40_000)
        for _ in range(5):
            server.send_data(sids[0], payload)
        server.send_data(sids[1], b"x", end_stream=True)
        for _ in range(3):
            server.send_data(sids[0], payload)
        feed(client, server.data_to_send(), step)
        assert client.bytes_in == 8 * 40_000 + 1
        r = await asyncio.wait_for(probe.done, 1)
        assert (r.status, r.body) == (200, b"x")
        assert not load.done.done()
        if step < 4096:
            return  # the window check below feeds 17 MB: once per large step is enough
        # the load's bytes go back as WINDOW_UPDATE only in big steps
        tr.out.clear()
        for _ in range(420):
            server.send_data(sids[0], payload)
        feed(client, server.data_to_send(), step)
        events = server.receive_data(bytes(tr.out))
        updates = [e for e in events if isinstance(e, h2.events.WindowUpdated)]
        assert updates and sum(e.delta for e in updates if e.stream_id == 0) >= 16 * 1024 * 1024

    asyncio.run(scenario())
