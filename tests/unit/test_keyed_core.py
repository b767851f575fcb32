"""Keyed probes and headers (netkit.core.keyed): tags, replay window, and hypothesis properties."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from netkit.core import keyed, packet
from netkit.core import session_header as sh

KEY = keyed.derive_key("correct horse")
OTHER = keyed.derive_key("battery staple")
NOW = 1_764_000_000 * 10**9


def keyed_probe(key: keyed.Key = KEY, size: int = 100, seq: int = 1, session: int | None = None,
                flags: int = 0) -> bytearray:
    buf = bytearray(size)
    sess = keyed.new_session_id(NOW, 1234) if session is None else session
    packet.encode_into(buf, sess, seq, 42, flags=flags)
    keyed.sign_probe_into(key, buf)
    return buf


def test_derive_key_strips_and_hides() -> None:
    assert keyed.derive_key(" correct horse\n") == KEY
    assert KEY != OTHER and KEY.probe != KEY.header and len(KEY.probe) == 32
    assert "hidden" in repr(KEY) and KEY.probe.hex() not in repr(KEY)


def test_signed_probe_verifies_and_still_decodes() -> None:
    buf = keyed_probe()
    assert keyed.verify_probe(KEY, buf)
    assert not keyed.verify_probe(OTHER, buf)
    assert packet.decode(buf).seq == 1  # a keyed probe is still an ordinary probe


def test_reflected_probe_keeps_a_valid_tag() -> None:
    buf = keyed_probe()
    packet.reflect_into(buf, 7, 100, 200)
    assert keyed.verify_probe(KEY, buf)


def test_too_short_for_a_tag() -> None:
    buf = bytearray(64)
    packet.encode_into(buf, 1, 1, 1)
    assert not keyed.verify_probe(KEY, buf)
    try:
        keyed.sign_probe_into(KEY, buf)
    except ValueError as exc:
        assert "72" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")


def test_unkeyed_probe_rejected() -> None:
    buf = bytearray(100)
    packet.encode_into(buf, 1, 1, 1)
    assert not keyed.verify_probe(KEY, buf)


def test_session_id_time_and_freshness() -> None:
    s = keyed.new_session_id(NOW, 0xFFFFFFFFFF)
    assert keyed.session_wall_s(s) == NOW // 10**9 and s & 0xFFFFFFFF == 0xFFFFFFFF
    assert keyed.session_fresh(s, NOW + 299 * 10**9)
    assert not keyed.session_fresh(s, NOW + 400 * 10**9)
    assert not keyed.session_fresh(s, NOW - 400 * 10**9)


def test_replay_window() -> None:
    w = keyed.ReplayWindow(size=8)
    assert w.check_and_mark(0) and not w.check_and_mark(0)
    assert w.check_and_mark(5) and w.check_and_mark(3) and not w.check_and_mark(3)
    assert w.check_and_mark(100)
    assert not w.check_and_mark(92)  # too old (>= size behind)
    assert w.check_and_mark(93) and not w.check_and_mark(93)
    assert not w.check_and_mark(5)


def test_header_trailer_roundtrip_and_failures() -> None:
    h = sh.encode_header(sh.Header(flags=keyed.FLAG_KEYED))
    nonce = os.urandom(8)
    tr = keyed.encode_header_trailer(KEY, h, NOW // 10**6, nonce)
    assert len(tr) == keyed.HEADER_TRAILER_LEN == 32
    assert keyed.verify_header_trailer(KEY, h, tr, NOW).ok
    assert keyed.verify_header_trailer(OTHER, h, tr, NOW).reason == "bad-key"
    assert keyed.verify_header_trailer(KEY, h, tr, NOW + 10**12).reason == "stale"
    tampered = bytearray(h)
    tampered[20] ^= 1  # duration
    assert keyed.verify_header_trailer(KEY, bytes(tampered), tr, NOW).reason == "bad-key"
    assert keyed.verify_header_trailer(KEY, h, tr[:-1], NOW).reason == "short"


def test_replay_cache_bounded_and_expiring() -> None:
    c = keyed.ReplayCache(ttl_ns=100, max_entries=3)
    assert c.check_and_add(b"a", 0) and not c.check_and_add(b"a", 50)
    assert c.check_and_add(b"a", 200)  # expired
    for t in (b"b", b"c", b"d", b"e"):
        c.check_and_add(t, 201)
    assert len(c) <= 3


# ----- properties ------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_datagrams_never_verify(data: bytes) -> None:
    assert not keyed.verify_probe(KEY, data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=200))
def test_random_tail_with_valid_header_never_verifies(tail: bytes) -> None:
    buf = bytearray(56)
    packet.encode_into(buf, 1, 2, 3)
    assert not keyed.verify_probe(KEY, bytes(buf) + tail)


def _covered_bits(n: int) -> st.SearchStrategy[int]:
    # every bit except the reflector's fields (32..56) and the REFLECTED flag (byte 5 bit 0)
    return st.integers(0, n * 8 - 1).filter(
        lambda b: not (32 * 8 <= b < 56 * 8) and b != 5 * 8)


@settings(max_examples=400, deadline=None)
@given(st.integers(72, 400).flatmap(lambda n: st.tuples(st.just(n), _covered_bits(n))),
       st.integers(0, 2**32 - 1))
def test_any_one_bit_flip_is_rejected(n_bit: tuple[int, int], seq: int) -> None:
    n, bit = n_bit
    buf = keyed_probe(size=n, seq=seq)
    buf[bit // 8] ^= 1 << (bit % 8)
    assert not keyed.verify_probe(KEY, buf)


@settings(max_examples=200, deadline=None)
@given(st.integers(72, 300), st.data())
def test_truncated_or_extended_probe_rejected(n: int, data: st.DataObject) -> None:
    buf = keyed_probe(size=n)
    cut = data.draw(st.integers(0, n - 1))
    assert not keyed.verify_probe(KEY, buf[:cut])
    extra = data.draw(st.binary(min_size=1, max_size=20))
    assert not keyed.verify_probe(KEY, bytes(buf) + extra)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=37, max_size=37))
def test_random_header_trailers_never_verify(trailer: bytes, header: bytes) -> None:
    assert not keyed.verify_header_trailer(KEY, header, trailer, NOW).ok
