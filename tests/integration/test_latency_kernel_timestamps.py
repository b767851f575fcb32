"""Kernel receive timestamps on a real socket (``netkit.io.timestamps``)."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from netkit.io import timestamps


def test_from_ancdata_reads_only_the_timestamp_message() -> None:
    data = struct.pack("@qq", 12, 345)
    assert timestamps.from_ancdata([(socket.SOL_SOCKET, timestamps.SO_TIMESTAMPNS, data)]) == 12_000_000_345
    assert timestamps.from_ancdata([(socket.SOL_SOCKET, 999, data)]) is None
    assert timestamps.from_ancdata([]) is None


def test_a_loopback_datagram_arrives_with_a_wall_clock_stamp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        if not timestamps.enable(rx):
            pytest.skip("no SO_TIMESTAMPNS on this platform")
        rx.settimeout(2)
        before = time.time_ns()
        tx.sendto(b"x", rx.getsockname())
        _data, anc, _flags, _addr = rx.recvmsg(16, timestamps.CMSG_SIZE)
        after = time.time_ns()
    stamp = timestamps.from_ancdata(anc)
    assert stamp is not None and before <= stamp <= after
