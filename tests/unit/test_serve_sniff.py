"""The first bytes of a connection to ``serve tcp``: a netkit session or a plain client (pure)."""

from __future__ import annotations

from netkit.core import session_header as sh
from netkit.core.session_header import KIND_OFFSET, MAGIC_LEN, session_kind, sniff


def test_sniff_decides_early_and_late() -> None:
    assert sniff(b"") is None
    assert sniff(b"\x00N") is None
    assert sniff(b"GET / HTTP/1.1") is False
    assert sniff(b"\x00X") is False
    assert sniff(sh.MAGIC + b"more") is True
    assert MAGIC_LEN == len(sh.MAGIC)


def test_sniff_never_needs_more_than_the_magic() -> None:
    header = sh.encode_header(sh.Header())
    for n in range(len(header) + 1):
        verdict = sniff(header[:n])
        assert verdict is (None if n < MAGIC_LEN else True)


def test_session_kind_waits_for_its_byte() -> None:
    header = sh.encode_header(sh.Header())
    assert session_kind(header[:KIND_OFFSET]) is None
    assert session_kind(header[:KIND_OFFSET + 1]) == sh.KIND_THROUGHPUT
    assert session_kind(header) == sh.KIND_THROUGHPUT
