"""Keyed (HMAC-authenticated) probe packets and TCP session headers: pure code, no I/O, no clock.

Why: a measurement server on a public address must not answer strangers. With a shared key the
server answers only packets that carry a valid tag, and rejects replays of recorded packets.

Tag: HMAC-SHA256 truncated to its first 16 bytes (128 bits; truncation as in RFC 2104 section 5 /
RFC 4868). Comparison with :func:`hmac.compare_digest` (constant time).

Key derivation: the user gives key *text* (``--key``, ``--key-file``, ``NETKIT_KEY``). Surrounding
whitespace is stripped and the UTF-8 bytes go through HMAC-SHA256 with a fixed label, once per
use, so the probe key and the header key differ and the raw text is never a MAC key itself::

    probe_key  = HMAC-SHA256(key=text, msg=b"netkit/v1/udp-probe")
    header_key = HMAC-SHA256(key=text, msg=b"netkit/v1/tcp-header")

Keyed UDP probe (``netkit.core.packet`` layout, unchanged, plus 16 bytes of tag in the padding)::

    0..56   the probe header (magic .. refl_send_ns)
    56..72  tag = HMAC(probe_key, bytes 0..32 with the REFLECTED flag cleared || bytes 72..end)[:16]

The tag covers what the client wrote (magic, version, flags, session, seq, client send time and
the padding) and, through the padding, the datagram length. The reflector's fields (32..56) and
the REFLECTED bit are what the reflector rewrites, so they are outside it: the reflected reply
still carries the client's valid tag. A keyed probe is at least ``KEYED_MIN_SIZE`` (72) bytes.

Freshness without a handshake: a keyed client builds its 64-bit session id as
``unix_seconds << 32 | random32`` (:func:`new_session_id`). The server accepts a *new* session only
when that time is within ``freshness`` of its own wall clock, and keeps every session it has seen
until it has been idle for ``freshness``; within a known session a sliding :class:`ReplayWindow`
accepts each sequence number once. So a recorded packet replayed later is either a duplicate in a
known session or belongs to a session too old to be accepted. (The cost: client and server clocks
must agree to within ``freshness``, 5 minutes by default, like Kerberos.)

Keyed TCP session header: the 37-byte :mod:`netkit.core.session_header` header with flag
``FLAG_KEYED`` set, followed by a 32-byte trailer::

    wall_ms u64 | nonce (8 random bytes) | tag = HMAC(header_key, header37 || wall_ms || nonce)[:16]

The server checks the tag, that ``wall_ms`` is within ``freshness`` of its clock, and that the
(nonce, tag) pair was not seen before (:class:`ReplayCache`).
"""

from __future__ import annotations

import hmac
import struct
from collections import OrderedDict
from dataclasses import dataclass

from netkit.core import packet

TAG_LEN = 16
TAG_OFFSET = packet.HEADER_SIZE  # 56
KEYED_MIN_SIZE = TAG_OFFSET + TAG_LEN  # 72
_CLIENT_END = 32  # bytes 0..32: the client's part of the header
_FLAGS_AT = 5

FLAG_KEYED = 0x8000  # in session_header.Header.flags: a keyed trailer follows the header
HEADER_TRAILER = struct.Struct("!Q8s16s")
HEADER_TRAILER_LEN = HEADER_TRAILER.size  # 32
DEFAULT_FRESHNESS_NS = 300 * 1_000_000_000
REPLAY_WINDOW = 1024  # sequence numbers behind the highest one that may still arrive (reordering)

_PROBE_LABEL = b"netkit/v1/udp-probe"
_HEADER_LABEL = b"netkit/v1/tcp-header"


class KeyTextError(ValueError):
    """An unusable key text (empty)."""


@dataclass(frozen=True, slots=True)
class Key:
    """Derived keys; build with :func:`derive_key`. ``repr`` never shows key material."""

    probe: bytes
    header: bytes

    def __repr__(self) -> str:
        return "Key(<hidden>)"


def derive_key(text: str | bytes) -> Key:
    """Derive the probe and header keys from the user's key text (see module docstring)."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    raw = raw.strip()
    if not raw:
        raise KeyTextError("the key is empty")
    return Key(
        probe=hmac.digest(raw, _PROBE_LABEL, "sha256"),
        header=hmac.digest(raw, _HEADER_LABEL, "sha256"),
    )


# ----- UDP probes ------------------------------------------------------------------------------

def _probe_message(data: bytes | bytearray | memoryview) -> bytes:
    mv = memoryview(data)
    return b"".join((
        mv[:_FLAGS_AT].tobytes(),
        bytes((mv[_FLAGS_AT] & ~packet.FLAG_REFLECTED & 0xFF,)),
        mv[_FLAGS_AT + 1:_CLIENT_END].tobytes(),
        mv[KEYED_MIN_SIZE:].tobytes(),
    ))


def probe_tag(key: Key, data: bytes | bytearray | memoryview) -> bytes:
    """The 16-byte tag of a probe datagram (at least ``KEYED_MIN_SIZE`` bytes)."""
    return hmac.digest(key.probe, _probe_message(data), "sha256")[:TAG_LEN]


def sign_probe_into(key: Key, buf: bytearray | memoryview) -> None:
    """Write the tag into ``buf`` (an encoded probe of at least 72 bytes), in place.

    Call it after ``packet.encode_into`` for every datagram (the send time changes each time).
    """
    if len(buf) < KEYED_MIN_SIZE:
        raise ValueError(f"a keyed probe needs at least {KEYED_MIN_SIZE} bytes, not {len(buf)}")
    buf[TAG_OFFSET:KEYED_MIN_SIZE] = probe_tag(key, buf)


def verify_probe(key: Key, data: bytes | bytearray | memoryview) -> bool:
    """True when ``data`` is a well-formed probe whose tag is right (constant-time compare)."""
    if len(data) < KEYED_MIN_SIZE or packet.peek_seq(data) is None:
        return False
    want = probe_tag(key, data)
    return hmac.compare_digest(want, bytes(data[TAG_OFFSET:KEYED_MIN_SIZE]))


def new_session_id(wall_ns: int, random32: int) -> int:
    """A keyed client's session id: its wall-clock second in the high half, random low half."""
    return ((wall_ns // 1_000_000_000) & 0xFFFFFFFF) << 32 | (random32 & 0xFFFFFFFF)


def session_wall_s(session: int) -> int:
    """The wall-clock second a keyed session id was made in."""
    return (session >> 32) & 0xFFFFFFFF


def session_fresh(session: int, wall_ns: int, freshness_ns: int = DEFAULT_FRESHNESS_NS) -> bool:
    """Was ``session`` made within ``freshness_ns`` of ``wall_ns`` (either side: clock skew)?"""
    return abs(session_wall_s(session) * 1_000_000_000 - wall_ns) <= freshness_ns + 1_000_000_000


class ReplayWindow:
    """Accept each sequence number once; tolerate reordering up to ``size`` behind the highest.

    The classic anti-replay sliding window (as in IPsec, RFC 4303 section 3.4.3), a Python int
    as the bitmap: bit i set means ``highest - i`` was seen.
    """

    __slots__ = ("bits", "highest", "size")

    def __init__(self, size: int = REPLAY_WINDOW) -> None:
        self.size = size
        self.highest = -1
        self.bits = 0

    def check_and_mark(self, seq: int) -> bool:
        """True (and remember it) for a sequence number not seen before and not too old."""
        if seq > self.highest:
            shift = seq - self.highest
            self.bits = ((self.bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.highest = seq
            return True
        back = self.highest - seq
        if back >= self.size:
            return False
        mask = 1 << back
        if self.bits & mask:
            return False
        self.bits |= mask
        return True


# ----- TCP session header ------------------------------------------------------------------------

def header_tag(key: Key, header37: bytes, wall_ms: int, nonce: bytes) -> bytes:
    msg = bytes(header37) + struct.pack("!Q", wall_ms & ((1 << 64) - 1)) + bytes(nonce)
    return hmac.digest(key.header, msg, "sha256")[:TAG_LEN]


def encode_header_trailer(key: Key, header37: bytes, wall_ms: int, nonce: bytes) -> bytes:
    """The 32-byte trailer that follows a keyed header (``header37`` has FLAG_KEYED set)."""
    if len(nonce) != 8:
        raise ValueError("the nonce is 8 bytes")
    return HEADER_TRAILER.pack(wall_ms, nonce, header_tag(key, header37, wall_ms, nonce))


@dataclass(frozen=True, slots=True)
class HeaderVerdict:
    """Result of :func:`verify_header_trailer`: ``ok`` or a short ``reason``."""

    ok: bool
    reason: str = ""
    nonce: bytes = b""


def verify_header_trailer(key: Key, header37: bytes, trailer: bytes, wall_ns: int,
                          freshness_ns: int = DEFAULT_FRESHNESS_NS) -> HeaderVerdict:
    """Check a keyed header's trailer: tag (constant time), then freshness. Replays: ReplayCache."""
    if len(header37) != 37 or len(trailer) != HEADER_TRAILER_LEN:
        return HeaderVerdict(False, "short")
    wall_ms, nonce, tag = HEADER_TRAILER.unpack(trailer)
    if not hmac.compare_digest(header_tag(key, header37, wall_ms, nonce), tag):
        return HeaderVerdict(False, "bad-key")
    if abs(wall_ms * 1_000_000 - wall_ns) > freshness_ns:
        return HeaderVerdict(False, "stale")
    return HeaderVerdict(True, "", nonce + tag)


class ReplayCache:
    """Remember tokens (nonce+tag) for ``ttl_ns``; a token seen twice is a replay. Bounded."""

    def __init__(self, ttl_ns: int = 2 * DEFAULT_FRESHNESS_NS, max_entries: int = 100_000) -> None:
        self.ttl_ns = ttl_ns
        self.max_entries = max_entries
        self._seen: OrderedDict[bytes, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_add(self, token: bytes, now_ns: int) -> bool:
        """True when ``token`` is new (and now remembered); False for a replay."""
        seen = self._seen
        while seen:
            _first, t = next(iter(seen.items()))
            if now_ns - t < self.ttl_ns and len(seen) < self.max_entries:
                break
            seen.popitem(last=False)  # expired, or the oldest when full (bounded memory)
        if token in seen:
            return False
        seen[token] = now_ns
        return True
