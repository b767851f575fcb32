"""Matching answers to probes through the probers' own matchers: genuine answers match, forged
ones (wrong ports, session, magic, ids, sequence numbers, addresses) never do. The probers are fed
error-queue records and datagrams directly: no socket is opened."""

from __future__ import annotations

import socket

import pytest

from netkit.core import errqueue as eq
from netkit.core import icmp_errors as ie
from netkit.core import packet
from netkit.core.trace_models import Answer, TraceConfig, TraceMethod
from netkit.core.trace_plan import TracePlan

TARGET = "198.18.9.9"
BASE = 33434


class _NoPoller:
    """The probers here are never opened: nothing is watched."""

    def add_reader(self, fd: object, callback: object, *args: object) -> None:
        raise AssertionError("no socket in a unit test")

    add_writer = add_reader

    def remove_reader(self, fd: object) -> None:
        return None

    remove_writer = remove_reader


class Probes:
    """A plan with round 0 sent (TTLs 1-8, seqs 0-7) and a prober of ``method`` wired to it."""

    def __init__(self, method: TraceMethod, *, port: int | None = None, v6: bool = False) -> None:
        from netkit.io.measure import trace_probers as tp

        self.plan = TracePlan(start_ns=0, first_hop=1, max_hops=30, window=8, timeout_ns=10**9,
                              interval_ns=10**9, rounds=1, deadline_ns=None)
        self.specs = self.plan.to_send(0)
        self.answers: list[tuple[int, str, Answer]] = []
        cfg = TraceConfig(method=method, port=port)
        family = socket.AF_INET6 if v6 else socket.AF_INET
        kind = {TraceMethod.UDP: tp.UdpTraceProber, TraceMethod.ICMP: tp.IcmpTraceProber}[method]
        self.prober = kind(TARGET, family, cfg, match=self.plan.match, on_answer=self._on_answer,
                           poller=_NoPoller())
        self.prober.ident = 4321  # type: ignore[attr-defined]
        self.prober.raw = False  # type: ignore[attr-defined]

    def _on_answer(self, seq: int, address: str, answer: Answer, *_rest: object) -> None:
        # What the run does with a matched answer: the plan records it (None: not outstanding).
        if self.plan.answer(seq, address, answer, 1) is not None:
            self.answers.append((seq, address, answer))

    def payload(self, seq: int, *, session: int | None = None, magic: bytes = ie.PAYLOAD_MAGIC) -> bytes:
        head = ie.PAYLOAD.pack(magic, (self.prober.session if session is None else session) & 0xFFFFFFFF, seq)
        return head + bytes(20)


TE = eq.ExtendedError(113, ie.ORIGIN_ICMP, 11, 0, 0, 0, "198.18.0.5")
PU = eq.ExtendedError(111, ie.ORIGIN_ICMP, 3, 3, 0, 0, TARGET)


def test_udp_genuine_answers_match() -> None:
    p = Probes(TraceMethod.UDP)
    p.prober._on_record(TE, p.payload(3), (TARGET, BASE + 3), None)
    p.prober._on_record(PU, b"", (TARGET, BASE + 4), None)  # a bare quote: by port alone
    assert p.answers == [(3, "198.18.0.5", Answer.TIME_EXCEEDED), (4, TARGET, Answer.DESTINATION)]


@pytest.mark.parametrize("forgery", [
    "wrong session", "wrong magic", "port outside the range", "port of a probe never sent",
    "payload names another probe", "payload names a probe never sent", "another destination",
    "a name that is no address", "payload of an answered probe",
])
def test_udp_forged_errors_never_match(forgery: str) -> None:
    p = Probes(TraceMethod.UDP)
    p.prober._on_record(TE, p.payload(2), (TARGET, BASE + 2), None)  # probe 2 answered
    p.answers.clear()
    seq, port, name_host, data = 3, BASE + 3, TARGET, p.payload(3)
    if forgery == "wrong session":
        data = p.payload(3, session=p.prober.session + 1)
    elif forgery == "wrong magic":
        data = p.payload(3, magic=b"NKTX")
    elif forgery == "port outside the range":
        port = BASE - 1
    elif forgery == "port of a probe never sent":
        port, data = BASE + 500, p.payload(500)
    elif forgery == "payload names another probe":
        data = p.payload(5)
    elif forgery == "payload names a probe never sent":
        data = p.payload(3 + 1024)
    elif forgery == "another destination":
        name_host = "198.18.9.10"
    elif forgery == "payload of an answered probe":
        port, data = BASE + 2, p.payload(2)
    for rec in (TE, PU):
        if forgery == "a name that is no address":
            p.prober._on_record(rec, data, None, None)
        else:
            p.prober._on_record(rec, data, (name_host, port), None)
    assert p.answers == [], forgery
    assert seq in {s.seq for s in p.specs}


def test_udp_fixed_port_needs_the_payload() -> None:
    p = Probes(TraceMethod.UDP, port=53)
    p.prober._on_record(TE, b"", (TARGET, 53), None)  # no payload: cannot tell which probe
    p.prober._on_record(TE, p.payload(4), (TARGET, 54), None)  # another port
    assert p.answers == []
    p.prober._on_record(TE, p.payload(4), (TARGET, 53), None)
    assert p.answers == [(4, "198.18.0.5", Answer.TIME_EXCEEDED)]


def echo_request(p: Probes, seq16: int, payload: bytes, *, ident: int = 4321) -> bytes:
    return bytes(packet.icmp_echo_request(ident, seq16, payload, v6=False))


def test_icmp_genuine_answers_match() -> None:
    p = Probes(TraceMethod.ICMP)
    p.prober._on_record(TE, echo_request(p, 3, p.payload(3)), (TARGET, 0), None)
    reply = bytearray(echo_request(p, 6, p.payload(6)))
    reply[0] = packet.ICMP_ECHO_REPLY
    p.prober._echo_reply(bytes(reply), TARGET, 0, None, check_ident=False)
    assert p.answers == [(3, "198.18.0.5", Answer.TIME_EXCEEDED), (6, TARGET, Answer.DESTINATION)]


@pytest.mark.parametrize("forgery", ["wrong seq", "wrong session", "seq and payload disagree", "not a request",
                                     "wrong ident (raw socket)", "a port unreachable", "another destination"])
def test_icmp_forged_errors_never_match(forgery: str) -> None:
    p = Probes(TraceMethod.ICMP)
    rec, ident, seq16, data, name = TE, 4321, 3, p.payload(3), (TARGET, 0)
    if forgery == "wrong seq":
        seq16, data = 300, p.payload(300)
    elif forgery == "wrong session":
        data = p.payload(3, session=p.prober.session ^ 1)
    elif forgery == "seq and payload disagree":
        data = p.payload(4)
    elif forgery == "wrong ident (raw socket)":
        p.prober.raw = True  # type: ignore[attr-defined]
        ident = 4322
    elif forgery == "a port unreachable":
        rec = PU
    elif forgery == "another destination":
        name = ("198.18.9.10", 0)
    quoted = bytearray(echo_request(p, seq16, data, ident=ident))
    if forgery == "not a request":
        quoted[0] = packet.ICMP_ECHO_REPLY
    p.prober._on_record(rec, bytes(quoted), name, None)
    assert p.answers == [], forgery


@pytest.mark.parametrize("forgery", ["wrong seq", "wrong session", "wrong ident (raw socket)", "another source"])
def test_icmp_forged_echo_replies_never_match(forgery: str) -> None:
    p = Probes(TraceMethod.ICMP)
    ident, seq16, data, source, check = 4321, 5, p.payload(5), TARGET, False
    if forgery == "wrong seq":
        seq16, data = 9, p.payload(9)
    elif forgery == "wrong session":
        data = p.payload(5, session=p.prober.session + 7)
    elif forgery == "wrong ident (raw socket)":
        ident, check = 1234, True
    elif forgery == "another source":
        source = "198.18.9.10"
    reply = bytearray(echo_request(p, seq16, data, ident=ident))
    reply[0] = packet.ICMP_ECHO_REPLY
    p.prober._echo_reply(bytes(reply), source, 0, None, check_ident=check)
    assert p.answers == [], forgery
