"""The request-session budget in pure code: the frame reader that never holds a body, and the
output bounds (``--max-bytes`` room, the amplification credit)."""

from __future__ import annotations

import struct

import pytest

from netkit.core.limits import FrameTooLarge, RequestFrameReader
from netkit.core.serve_models import REQUEST_AMPLIFICATION, output_room, reply_credit

REQ = struct.Struct("!III")
FRAMES = [(0, 10), (5, 11), (100, 12), (0, 0), (3, 14)]  # (body_len, reply_len); seq = index
STREAM = b"".join(REQ.pack(body, reply, seq) + bytes([seq]) * body for seq, (body, reply) in enumerate(FRAMES))
EXPECTED = [(seq, reply) for seq, (_body, reply) in enumerate(FRAMES)]


def drain(reader: RequestFrameReader, chunks: list[bytes], max_frames: int) -> list[tuple[int, int]]:
    """Feed like the session does: keep what was not consumed, feed it again with the next chunk."""
    out: list[tuple[int, int]] = []
    rest = b""
    for chunk in [*chunks, b""]:
        rest += chunk
        while True:
            frames, used = reader.feed(rest, max_frames)
            rest = rest[used:]
            out += frames
            if not frames:
                break
    return out


@pytest.mark.parametrize("max_frames", [1, 2, 64])
def test_frames_split_at_every_position(max_frames: int) -> None:
    for cut in range(len(STREAM) + 1):
        reader = RequestFrameReader(max_request=1000)
        assert drain(reader, [STREAM[:cut], STREAM[cut:]], max_frames) == EXPECTED, cut
        assert not reader.in_frame


def test_byte_by_byte() -> None:
    reader = RequestFrameReader(max_request=1000)
    assert drain(reader, [bytes([b]) for b in STREAM], 64) == EXPECTED


def test_max_frames_leaves_the_rest_unconsumed() -> None:
    reader = RequestFrameReader(max_request=1000)
    frames, used = reader.feed(STREAM, 2)
    assert frames == EXPECTED[:2]
    assert used < len(STREAM)


def test_a_body_is_skipped_not_held() -> None:
    reader = RequestFrameReader(max_request=1 << 20)
    frames, used = reader.feed(REQ.pack((1 << 20), 7, 9) + bytes(1000), 64)
    assert frames == [] and used == 12 + 1000
    assert reader.in_frame
    assert len(reader._head) == 0  # nothing of the body is kept
    frames, used = reader.feed(bytes((1 << 20) - 1000), 64)
    assert frames == [(9, 7)]


@pytest.mark.parametrize("header", [REQ.pack(1001, 1, 0), REQ.pack(1, 1001, 0)])
def test_frames_over_max_request_are_refused(header: bytes) -> None:
    with pytest.raises(FrameTooLarge, match="--max-request"):
        RequestFrameReader(max_request=1000).feed(header, 64)


def test_output_room() -> None:
    assert output_room(None, 10, 10) is None
    assert output_room(100, 30, 20) == 50
    assert output_room(100, 80, 40) == 0  # never negative


def test_reply_credit_is_the_readme_bound() -> None:
    # out <= REQUEST_AMPLIFICATION x in + max_request + 16
    assert reply_credit(0, 0, 1000) == 1016
    assert reply_credit(100, 0, 1000) == REQUEST_AMPLIFICATION * 100 + 1016
    assert reply_credit(100, REQUEST_AMPLIFICATION * 100 + 1016, 1000) == 0
    assert reply_credit(1, 10**9, 1000) == 0
