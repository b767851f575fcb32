"""``netkit trace --pmtu``: which don't-fragment probe to send next, and what the answers mean. Pure.

The io side sends the probes this machine asks for (DF, so a probe bigger than a link is dropped
rather than fragmented, and with the kernel's cached path MTU ignored, so it leaves at the size
asked) and feeds back what came of each: an answer (Time Exceeded from the hop its TTL reached,
the destination's answer, a "fragmentation needed" / "packet too big" with the router and its
next-hop MTU, or our own interface's EMSGSIZE with its MTU), or nothing by the time it is due.

The path MTU up to hop t, ``mtu(t)``, only falls along the path. The search finds each fall, from
the near end, in stages. A stage sends probes of the current size ``cur`` at every TTL past the
last known fall that answered in the trace, and one to the destination, all at once:

- the destination answers: ``cur`` is the path MTU, done;
- a router answers "too big" with MTU m: a drop to m, at the TTL after the last hop that big probes
  still reached (tracepath's attribution: "fragmentation needed" from the router at hop h, named
  on the line of TTL h + 1, the first hop behind the small link); ``cur = m``, next stage;
- big probes vanish while small ones still answer (a PMTU black hole: the router drops them and
  its ICMP is filtered): the drop is after the last hop that still answered Time Exceeded for a
  big probe, and its MTU is found by binary search, exact to the byte, with probes to the first
  answering hop behind it (so a second black hole further on is told apart), then the next stage.

Every big probe goes with a small control probe to the same TTL, sent just after it. A big probe
counts as lost only when its control was answered: a router (or the destination) that limits its
ICMP replies would otherwise read as a black hole. When neither is answered the probe is sent
again after a wait that doubles, until the waits add up to the configured timeout; it is
``UNKNOWN`` after that. A big probe that is not answered while its control is fails after
``tries`` such rounds. Each wait is a few times the path's round trip (never below
``MIN_WAIT_NS``, never above the timeout), so a search on a near path takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from enum import Enum

from netkit.core.trace_models import Answer, MtuDrop, PmtuResult

#: The largest IP packet a probe can be: a 16-bit total length (IPv4), or payload length (IPv6).
CAP_V4 = 65535
CAP_V6 = 65535 + 40
#: Every IPv6 link carries at least this (RFC 8200), so a search never goes below it.
IPV6_MIN_MTU = 1280
IPV4_MIN_MTU = 68
#: A probe is waited for RTT_FACTOR times the path's round trip, at least MIN_WAIT_NS.
MIN_WAIT_NS = 10_000_000
RTT_FACTOR = 4
DEFAULT_TRIES = 2


def probe_wait_ns(rtt_ns: int | None, timeout_ns: int) -> int:
    """How long one try waits for its answer: a few round trips, bounded by the timeout."""
    base = MIN_WAIT_NS if rtt_ns is None else max(MIN_WAIT_NS, RTT_FACTOR * rtt_ns)
    return max(1, min(base, timeout_ns))


class Outcome(str, Enum):
    REACHED = "reached"  # the probe reached the hop its TTL aimed at (or the destination)
    TOO_BIG = "too-big"  # a router (or our own interface) said the probe is too big, with an MTU
    LOST = "lost"  # the probe vanished while its small control was answered
    UNKNOWN = "unknown"  # neither the probe nor its control was ever answered

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Ask:
    """Find out whether a DF probe of ``size`` bytes reaches hop ``ttl`` (None: the destination)."""

    size: int
    ttl: int | None


@dataclass(frozen=True)
class Result:
    """What became of an :class:`Ask`. TOO_BIG: ``address`` is the router (None: our interface)."""

    outcome: Outcome
    address: str | None = None
    mtu: int | None = None


@dataclass(frozen=True)
class PmtuProbe:
    """One probe to send: its sequence number (the answer's key), whole IP packet size and TTL."""

    seq: int
    size: int
    ttl: int


@dataclass
class _Pending:
    ask: Ask
    attempt: int = 0
    fails: int = 0  # rounds in which the control was answered and the probe was not
    silent: int = 0  # rounds in which nothing was answered
    waited_ns: int = 0  # the sum of those rounds' waits
    due_ns: int | None = None  # when the current round ends (None: to be sent)
    control_answered: bool = False  # in the current round
    result: Result | None = None


@dataclass(frozen=True)
class _Sent:
    index: int
    attempt: int
    control: bool


#: The search as a coroutine: it yields a batch of asks and is sent their results in order.
Flow = Generator["list[Ask]", "list[Result]", None]


@dataclass
class _Found:
    """What the search found so far."""

    first_mtu: int | None = None
    drops: list[MtuDrop] = field(default_factory=list)
    black_hole: bool = False
    mtu: int | None = None
    known_ttl: int = 0  # mtu(t) is known for every t up to here
    gave_up: bool = False


class PmtuSearch:
    """The path MTU search for one destination. Every method takes times as monotonic ns.

    ``dest_ttl``: the hop count of the destination (from the trace); ``hops``: the TTLs below it
    that answered in the trace (silent ones are never asked); ``where``: the hop each address
    answered at in the trace, so a reporting router names its hop; ``small``: a probe size known
    to reach the destination (the trace's); ``max_ttl``: the TTL of probes to the destination.
    """

    def __init__(self, *, v6: bool, dest_ttl: int, max_ttl: int, hops: Sequence[int],
                 where: dict[str, int] | None = None, small: int, wait_ns: int, timeout_ns: int,
                 tries: int = DEFAULT_TRIES, cap: int | None = None) -> None:
        self.v6 = v6
        self.dest_ttl = dest_ttl
        self.max_ttl = max(max_ttl, dest_ttl)
        self.hops = sorted({t for t in hops if 1 <= t < dest_ttl})
        self.where = dict(where or {})
        self.small = small
        self.floor = max(small, IPV6_MIN_MTU if v6 else IPV4_MIN_MTU)
        self.wait_ns = max(1, wait_ns)
        self.timeout_ns = max(self.wait_ns, timeout_ns)
        self.tries = max(1, tries)
        self.cap = cap if cap is not None else (CAP_V6 if v6 else CAP_V4)
        self.found = _Found()
        self.probes_sent = 0
        self._seq = 0
        self._sent: dict[int, _Sent] = {}
        self._batch: list[_Pending] = []
        self._flow: Flow = self._search()
        self._done = False
        self._start(next(self._flow))

    # ----- the io side's interface --------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done

    def to_send(self, now_ns: int) -> list[PmtuProbe]:
        """The probes due now, each big probe just before its control. Call :meth:`sent` after each."""
        out: list[PmtuProbe] = []
        for i, p in enumerate(self._batch):
            if p.result is not None or p.due_ns is not None:
                continue
            p.attempt += 1
            p.control_answered = False
            p.due_ns = now_ns + self._round_wait(p)
            ttl = self.max_ttl if p.ask.ttl is None else p.ask.ttl
            out.append(self._probe(i, p, p.ask.size, ttl, control=False))
            out.append(self._probe(i, p, self.small, ttl, control=True))
        return out

    def match(self, seq: int) -> bool:
        """Is ``seq`` a probe of the current batch (so an answer to it is believed)?"""
        return seq in self._sent

    def answer(self, seq: int, address: str | None, answer: Answer, mtu: int | None, now_ns: int) -> None:
        """An answer to probe ``seq``: ``address`` None with FRAG_NEEDED is our own interface's EMSGSIZE."""
        sent = self._sent.get(seq)
        if sent is None or self._done:
            return
        p = self._batch[sent.index]
        if sent.control:
            if sent.attempt == p.attempt:
                p.control_answered = True
            return
        if answer is Answer.FRAG_NEEDED:
            if p.result is None or p.result.outcome is not Outcome.REACHED:
                p.result = Result(Outcome.TOO_BIG, address, mtu)
        elif answer is Answer.DESTINATION or (answer is Answer.TIME_EXCEEDED and p.ask.ttl is not None):
            p.result = Result(Outcome.REACHED, address)
        else:
            p.control_answered = p.control_answered or sent.attempt == p.attempt  # alive, not reached
        self._advance(now_ns)

    def expire(self, now_ns: int) -> None:
        """Close the rounds that are due: lost, unknown, or sent again."""
        for p in self._batch:
            if p.result is not None or p.due_ns is None or p.due_ns > now_ns:
                continue
            if p.control_answered:
                p.fails += 1
                if p.fails >= self.tries:
                    p.result = Result(Outcome.LOST)
            else:
                p.waited_ns += self._round_wait(p)
                p.silent += 1
                if p.waited_ns >= self.timeout_ns and p.attempt >= self.tries:
                    p.result = Result(Outcome.UNKNOWN)
            p.due_ns = None
        self._advance(now_ns)

    def next_wakeup_ns(self, now_ns: int) -> int | None:
        if self._done:
            return None
        times = [now_ns if p.due_ns is None else p.due_ns for p in self._batch if p.result is None]
        return min(times) if times else now_ns

    def result(self) -> PmtuResult:
        f = self.found
        return PmtuResult(mtu=f.mtu, first_mtu=f.first_mtu, drops=tuple(f.drops), black_hole=f.black_hole)

    def hop_mtus(self) -> dict[int, int]:
        """The path MTU up to each hop whose MTU is known (every hop once the search is done)."""
        f = self.found
        if f.first_mtu is None:
            return {}
        top = self.dest_ttl if f.mtu is not None else f.known_ttl
        return {t: mtu_at(self.result(), t) for t in range(1, top + 1)}

    # ----- the batch executor ---------------------------------------------------------------
    def _round_wait(self, p: _Pending) -> int:
        """A round waits ``wait_ns``, doubled after each round in which nothing at all came back
        (a router limiting its ICMP replies refills slowly), never beyond the timeout."""
        return min(self.wait_ns << min(p.silent, 30), self.timeout_ns)

    def _probe(self, index: int, p: _Pending, size: int, ttl: int, *, control: bool) -> PmtuProbe:
        self._seq += 1
        self._sent[self._seq] = _Sent(index, p.attempt, control)
        self.probes_sent += 1
        return PmtuProbe(self._seq, size, ttl)

    def _start(self, asks: list[Ask]) -> None:
        self._sent.clear()
        self._batch = [_Pending(a) for a in asks]

    def _advance(self, now_ns: int) -> None:
        while not self._done and all(p.result is not None for p in self._batch):
            results = [p.result for p in self._batch if p.result is not None]
            try:
                self._start(self._flow.send(results))
            except StopIteration:
                self._done = True
                self._batch = []
                self._sent.clear()

    # ----- the search -----------------------------------------------------------------------
    def _search(self) -> Flow:
        found = self.found
        cur = self.cap
        reached_ttl = 0  # probes of size ``cur`` are known to reach every hop up to here
        while True:
            ttls = [t for t in self.hops if t > reached_ttl]
            results = yield [Ask(cur, t) for t in ttls] + [Ask(cur, None)]
            dest = results[-1]
            by_ttl = dict(zip(ttls, results[:-1], strict=True))
            local = next((r for r in results if r.outcome is Outcome.TOO_BIG and r.address is None), None)
            if local is not None and local.mtu is not None and self.floor <= local.mtu < cur:
                if found.first_mtu is None:
                    found.first_mtu = local.mtu
                cur = local.mtu  # our own link: the first size that can leave at all
                continue
            if found.first_mtu is None:
                found.first_mtu = cur
            if dest.outcome is Outcome.REACHED:
                found.mtu = cur
                found.known_ttl = self.dest_ttl
                return
            last = max((t for t, r in by_ttl.items() if r.outcome is Outcome.REACHED), default=reached_ttl)
            reports = [(t, r) for t, r in [*by_ttl.items(), (self.dest_ttl, dest)]
                       if r.outcome is Outcome.TOO_BIG and r.address is not None and t > last]
            if reports:
                t_report, report = reports[0]
                at = self._drop_ttl(report.address, last, t_report)
                if report.mtu is not None and self.floor <= report.mtu < cur:
                    found.drops.append(MtuDrop(at, report.address, report.mtu))
                    found.known_ttl = at - 1
                    cur = report.mtu
                    reached_ttl = at - 1
                    continue
                # A report without a usable MTU (0 from an old router, or not below the size): search.
            elif dest.outcome is Outcome.UNKNOWN and all(r.outcome is not Outcome.LOST for r in by_ttl.values()):
                found.gave_up = True  # nothing said a big probe was lost: answers are not coming back
                return
            else:
                at = last + 1
            # Big probes stop after hop ``last`` with no usable report: search the MTU of that stretch
            # with probes to the first hop behind it that answers (or the destination).
            target = next((t for t in ttls if t > last and by_ttl[t].outcome is Outcome.LOST), None)
            lo, hi, reporter = self.floor, cur, None
            while hi - lo > 1:
                mid = (lo + hi) // 2
                (r,) = yield [Ask(mid, target)]
                if r.outcome is Outcome.REACHED:
                    lo = mid
                elif r.outcome is Outcome.TOO_BIG and r.mtu is not None and lo <= r.mtu < mid:
                    hi, reporter = r.mtu + 1, (r.address, r.mtu)
                elif r.outcome in (Outcome.LOST, Outcome.TOO_BIG):
                    hi = mid
                else:
                    found.gave_up = True
                    return
            address = reporter[0] if reporter is not None and reporter[1] == lo else None
            if address is None and not reports:
                found.black_hole = True
            if reports and address is None:
                address = reports[0][1].address
            found.drops.append(MtuDrop(at, address, lo))
            cur = lo
            reached_ttl = target if target is not None else self.dest_ttl
            found.known_ttl = reached_ttl
            if target is None:
                found.mtu = cur
                return

    def _drop_ttl(self, address: str | None, last: int, t_report: int) -> int:
        """The first hop behind the router that reported: its hop in the trace plus one, or else the
        TTL after the last hop big probes still reached (both are the lowest TTL the report comes for)."""
        hop = self.where.get(address) if address is not None else None
        if hop is not None and hop < t_report:
            return hop + 1
        return min(last + 1, t_report)


def mtu_at(result: PmtuResult, ttl: int) -> int:
    """The path MTU up to hop ``ttl``: the first link's, lowered by every drop at or before it."""
    mtu = result.first_mtu or 0
    for d in result.drops:
        if d.ttl <= ttl:
            mtu = d.mtu
    return mtu
