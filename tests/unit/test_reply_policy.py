"""What the reflector never answers, and how much it answers one source (netkit.core.limits)."""

from __future__ import annotations

from netkit.core import packet
from netkit.core.limits import (
    DEFAULT_REPLIES_PER_SOURCE,
    REFLECTION_PORTS,
    REPEAT_IDLE_NS,
    REPEAT_MAX,
    RepeatLimiter,
    ReplyPolicy,
)

NS = 1_000_000_000
PROBE = packet.encode(packet.ProbePacket(1, 2, 3, size=64))
REPLY = packet.encode(packet.ProbePacket(1, 2, 3, flags=packet.FLAG_REFLECTED, size=64))


def test_never_answers_its_own_address() -> None:
    p = ReplyPolicy(9000, {"127.0.0.1"})
    assert p.refuse_source("127.0.0.1", 9000, b"x", False) == "dropped_self"
    assert p.refuse_source("127.0.0.1", 9001, b"x", False) is None  # another program on this host
    assert p.refuse_source("127.0.0.2", 9000, b"x", False) is None  # not where this socket listens
    assert p.counters["dropped_self"] == 1


def test_wildcard_bind_treats_every_loopback_and_local_address_as_itself() -> None:
    p = ReplyPolicy(9000, {"198.18.0.2", "2001:db8::2"}, wildcard=True)
    for host in ("127.0.0.1", "127.9.9.9", "::1", "198.18.0.2", "::ffff:198.18.0.2", "2001:db8::2"):
        assert p.refuse_source(host, 9000, b"x", False) == "dropped_self", host
    assert p.refuse_source("198.18.0.1", 9000, b"x", False) is None


def test_service_ports_and_port_zero_are_never_answered() -> None:
    p = ReplyPolicy(9000, {"127.0.0.1"})
    for port in (0, 7, 9, 13, 19, 37, 53, 123, 161, 1900, 11211):
        assert port in REFLECTION_PORTS
        assert p.refuse_source("127.0.0.1", port, b"x", False) == "dropped_service_port"
    assert p.refuse_source("127.0.0.1", 40000, b"x", False) is None


def test_a_probe_that_is_already_a_reply_is_not_answered() -> None:
    p = ReplyPolicy(9000, {"127.0.0.1"})
    assert p.refuse_source("127.0.0.5", 40000, REPLY, True) == "dropped_reply"
    assert p.refuse_source("127.0.0.5", 40000, PROBE, True) is None
    # A malformed probe with the flag comes back verbatim: the repeat rule stops its loops.
    assert p.refuse_source("127.0.0.5", 40000, b"NKLP\x01\x01", False) is None


def test_a_plain_datagram_repeated_without_pause_stops_being_answered() -> None:
    r = RepeatLimiter()
    answered = sum(r.allow("h", 1, b"same", i * 10_000) for i in range(3 * REPEAT_MAX))
    assert answered == REPEAT_MAX
    assert r.allow("h", 2, b"same", 0) and r.allow("h", 1, b"other", 0)  # per sender, per content
    # a pause ends the row: a client repeating itself now and then is always answered
    assert r.allow("h", 1, b"same", 3 * REPEAT_MAX * 10_000 + REPEAT_IDLE_NS)


def test_a_slow_loop_stops_too() -> None:
    r = RepeatLimiter()
    answered = sum(r.allow("h", 1, b"x", i * NS) for i in range(2 * REPEAT_MAX))  # 1 s round trip
    assert answered == REPEAT_MAX


def test_repeat_memory_is_bounded() -> None:
    r = RepeatLimiter(max_entries=100)
    for i in range(10_000):
        r.allow("h", i, b"x", 0)
    assert len(r) == 100


def test_probes_are_exempt_from_repeats_but_not_from_the_rate() -> None:
    p = ReplyPolicy(9000, {"127.0.0.1"}, rate=1000)  # burst: 100
    answered = sum(p.refuse_reply("10.0.0.1", 5, PROBE, True, 0) is None for _ in range(REPEAT_MAX + 500))
    assert answered == 100
    assert p.counters["dropped_rate"] == REPEAT_MAX + 400 and p.counters["dropped_repeat"] == 0
    assert p.refuse_reply("10.0.0.1", 5, PROBE, True, NS) is None  # refilled after a second
    assert p.refuse_reply("10.0.0.2", 5, PROBE, True, 0) is None  # another source: its own bucket


def test_default_rate_leaves_room_for_the_documented_meters() -> None:
    # measure loss documents -r 100k; the default bound is twice that, with a 0.1 s burst
    p = ReplyPolicy(9000, {"127.0.0.1"})
    assert DEFAULT_REPLIES_PER_SOURCE >= 2 * 100_000
    step = NS // 100_000
    refused = sum(p.refuse_reply("10.0.0.1", 5, PROBE, True, i * step) is not None for i in range(300_000))
    assert refused == 0
