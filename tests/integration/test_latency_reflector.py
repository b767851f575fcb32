"""The reflector of `netkit serve udp --mode echo` (netkit.io.servers.reflector): netkit probes get
their fields filled, everything else comes back verbatim. No socket is opened: the reflector is fed
bytes; it lives in io/ (with its server), so its test lives here, out of tests/unit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netkit.core import packet
from netkit.core.packet import ProbePacket
from netkit.io.servers.reflector import Reflector

ADDR = ("127.0.0.1", 5555)


def test_probe_fields_filled_and_counted_per_session() -> None:
    r = Reflector(clock=lambda: 2000)
    for i in range(3):
        reply = r.reflect(packet.encode(ProbePacket(42, i, 1, size=80)), ADDR, 1500)
        assert reply is not None and len(reply) == 80
        p = packet.decode(reply)
        assert (p.reflected, p.seq, p.refl_count, p.refl_recv_ns, p.refl_send_ns) == (True, i, i + 1, 1500, 2000)
    other = packet.decode(r.reflect(packet.encode(ProbePacket(43, 0, 1)), ADDR, 1))
    assert other.refl_count == 1
    assert r.stats["probes"] == 4 and r.stats["sessions"] == 2


def test_query_answers_count_without_counting_itself() -> None:
    r = Reflector()
    r.reflect(packet.encode(ProbePacket(1, 0, 0)), ADDR, 0)
    q = packet.decode(r.reflect(packet.encode(ProbePacket(1, 0, 0, flags=packet.FLAG_QUERY)), ADDR, 0))
    assert q.query and q.reflected and q.refl_count == 1
    assert r.session_count(1, ADDR) == 1 and r.stats["queries"] == 1
    assert r.session_count(1, ("127.0.0.2", ADDR[1])) == 0  # counted per sender, not per id alone


@given(st.binary(max_size=300))
def test_anything_else_verbatim_never_larger(data: bytes) -> None:
    r = Reflector()
    reply = r.reflect(data, ADDR, 0)
    assert reply is not None and len(reply) <= len(data)
    if not data.startswith(packet.MAGIC):
        assert reply == data


def test_malformed_probe_verbatim() -> None:
    bad = b"NKLP\x07" + bytes(60)
    r = Reflector()
    assert r.reflect(bad, ADDR, 0) == bad
    assert r.stats["malformed_probes"] == 1 and r.stats["verbatim"] == 1


def test_sessions_bounded() -> None:
    r = Reflector(max_sessions=2)
    for s in range(5):
        r.reflect(packet.encode(ProbePacket(s, 0, 0)), ADDR, 0)
    assert len(r._sessions) == 2 and r.stats["sessions_evicted"] == 3
