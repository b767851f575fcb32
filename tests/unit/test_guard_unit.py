"""The server guard (netkit.core.guard) driven in memory with fake clocks: no sockets, no files."""

from __future__ import annotations

import os
import typing

from netkit.core import guard as sg
from netkit.core import keyed, packet
from netkit.core import session_header as sh
from netkit.core.limits import NS, Limits

WALL = 1_764_000_000 * NS
KEY = keyed.derive_key("k1")
A = ("127.0.0.1", 40000)
B = ("127.0.0.2", 40001)


def probe(key: keyed.Key | None, session: int, seq: int, size: int = 80, flags: int = 0) -> bytes:
    buf = bytearray(size)
    packet.encode_into(buf, session, seq, 5, flags=flags)
    if key is not None:
        keyed.sign_probe_into(key, buf)
    return bytes(buf)


class Echo:
    """The inner reflector: answers with the request itself and counts netkit probes."""

    def __init__(self) -> None:
        self.stats = {"probes": 0}

    def reflect(self, data: bytes, addr: object, recv_ns: int) -> bytes:
        if packet.peek_seq(data) is not None:
            self.stats["probes"] += 1
        return data


def guard(limits: Limits | None = None, key: keyed.Key | None = KEY, events: list | None = None) -> sg.Guard:
    return sg.Guard(limits, key, wall_clock=lambda: WALL,
                    on_event=None if events is None else events.append)


def test_keyed_reflector_answers_keyed_probes_only() -> None:
    events: list = []
    r = sg.GuardedReflector(guard(events=events), Echo())
    sess = keyed.new_session_id(WALL, 7)
    good = probe(KEY, sess, 0)
    reply = r.reflect(good, A, 1)
    assert reply is not None and len(reply) == len(good) and keyed.verify_probe(KEY, reply)
    assert r.reflect(probe(None, sess, 1), A, 2) is None  # unkeyed
    assert r.reflect(probe(keyed.derive_key("wrong"), sess, 2), A, 3) is None
    flipped = bytearray(probe(KEY, sess, 3))
    flipped[20] ^= 0x10
    assert r.reflect(bytes(flipped), A, 4) is None
    assert r.reflect(b"plain echo", A, 5) is None  # a keyed server answers keyed probes only
    assert r.reflect(good, A, 6) is None  # replay within the session
    assert r.stats["rejected_by_key"] == 5 and r.stats["replayed"] == 1 and r.stats["probes"] == 1
    assert events and events[0]["event"] == "limit" and events[0]["limit"] == "rejected_by_key"
    assert len(events) == 1  # throttled: one event per cause per second


def test_replay_from_an_earlier_session_rejected_after_it_is_forgotten() -> None:
    old = keyed.new_session_id(WALL - 400 * NS, 9)  # recorded 400 s ago
    g = guard()
    assert not g.check_datagram(probe(KEY, old, 0), A, 1)
    assert g.counters.rejected_by_key == 1


def test_unkeyed_guard_passes_plain_echo_and_limits_size() -> None:
    r = sg.GuardedReflector(guard(Limits(max_packet=100), key=None), Echo())
    assert r.reflect(b"x" * 100, A, 1) == b"x" * 100
    assert r.reflect(b"x" * 101, A, 2) is None
    assert r.stats["over_limit"] == 1


def test_never_amplifies_even_with_a_bad_inner_reflector() -> None:
    class Loud:
        stats: typing.ClassVar[dict] = {}

        def reflect(self, data: bytes, addr: object, recv_ns: int) -> bytes:
            return data * 2

    r = sg.GuardedReflector(guard(key=None), Loud())
    assert r.reflect(b"abc", A, 1) is None
    assert r.guard.counters.over_limit == 1


def test_rate_limit_per_source_and_deny() -> None:
    g = guard(Limits(max_pps_per_source=100, deny=("127.0.0.3/32",)), key=None)
    ok_a = sum(g.admit(A, t * NS // 1000) for t in range(1000))  # 1000/s for 1 s
    ok_b = sum(g.admit(B, t * NS // 50) for t in range(50))  # 50/s
    assert 100 <= ok_a <= 111 and ok_b == 50
    assert not g.admit(("127.0.0.3", 1), 0)
    assert g.counters.denied == 1 and g.counters.rate_limited == 1000 - ok_a


def test_udp_max_duration_and_sessions() -> None:
    g = guard(Limits(max_duration_ns=2 * NS, max_sessions=1), key=None)
    assert g.check_datagram(probe(None, 1, 0), A, 0)
    assert not g.check_datagram(probe(None, 2, 0), B, 1)  # a second session at once
    assert not g.check_datagram(probe(None, 1, 1), A, 3 * NS)  # cut at --max-duration
    assert g.counters.over_limit == 2


def test_tcp_header_checks() -> None:
    g = guard(Limits(max_sessions=1, max_duration_ns=3 * NS))
    h = sh.encode_header(sh.Header(flags=keyed.FLAG_KEYED))
    tr = keyed.encode_header_trailer(KEY, h, WALL // 10**6, os.urandom(8))
    assert not g.check_header(h, None, A, 0)
    assert g.check_header(h, tr, A, 0)
    assert not g.check_header(h, tr, A, 1)  # replayed header
    bad = keyed.encode_header_trailer(keyed.derive_key("x"), h, WALL // 10**6, os.urandom(8))
    assert not g.check_header(h, bad, A, 2)
    assert g.counters.rejected_by_key == 3 and g.counters.replayed == 1
    assert g.session_opened(A, 0) and not g.session_opened(B, 0)
    g.session_closed()
    assert g.session_opened(B, 0)
    assert g.cap_duration_s(10) == 3 and g.cap_duration_s(1) == 1


def test_exposure_warning() -> None:
    assert sg.exposure_warning("127.0.0.1", "udp", None) is None
    assert sg.exposure_warning("::1", "tcp", None) is None
    assert sg.exposure_warning("192.0.2.1", "tcp", KEY) is None  # one named address, keyed: fine
    keyed_all = sg.exposure_warning("0.0.0.0", "tcp", KEY)  # keyed, but every address: say so
    assert keyed_all and "all addresses" in keyed_all and "without --key" not in keyed_all
    msg = sg.exposure_warning("0.0.0.0", "udp", None)
    assert msg and "without --key" in msg and "reflect" in msg
