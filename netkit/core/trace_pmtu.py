"""``netkit trace --pmtu``: which don't-fragment probe to send next, and what the answers mean. Pure.

The io side sends the probes this machine asks for (DF, so a probe bigger than a link is dropped
rather than fragmented, and with the kernel's cached path MTU ignored, so it leaves at the size
asked) and feeds back what came of each: an answer (Time Exceeded from the hop its TTL reached,
the destination's answer, a "fragmentation needed" / "packet too big" with the router and its
next-hop MTU, or our own interface's EMSGSIZE with its MTU), or nothing by the time it is due.

The path MTU up to hop t, ``mtu(t)``, only falls along the path. The search finds each fall, from
the near end, in stages. A stage sends a probe of the current size ``cur`` to the destination:

- our own interface refuses it (EMSGSIZE) with its MTU: that is the first link's, ``cur`` becomes it;
- the destination answers: ``cur`` is the path MTU, done;
- a router answers "too big" with MTU m: a drop to m at the first hop behind that router
  (tracepath's attribution: "fragmentation needed" from the router at hop h is printed on the line
  of TTL h + 1). The hop is the router's hop in the trace plus one, or, when the trace never saw
  that address, the lowest TTL whose probe of size ``cur`` gets the report: one probe per TTL, all
  at once (routers do not rate-limit "too big", while they may be limiting Time Exceeded);
  ``cur = m``, next stage;
- the probe vanishes while a small one still gets through (a PMTU black hole: the router drops it
  and its ICMP is filtered): big probes at every TTL that answered in the trace find the last hop
  they still reach (Time Exceeded); the drop is at the TTL after it, and its MTU is found by
  search, exact to the byte (halving, with steps moved onto common MTUs), with probes to the
  first hop behind it that answers small probes (so a second black hole further on is told
  apart), or to the destination; next stage.

Every big probe goes with a small control probe to the same TTL, sent just after it (so when a
router has one reply left in its rate limit, the big probe gets it if it arrived). A big probe
counts as lost only when its control was answered: a router (or the destination) that limits its
ICMP replies would otherwise read as a black hole. A big probe that is not answered while its
control is fails after ``tries`` such rounds. When neither is answered the pair is sent again
after a wait that doubles, up to a quarter of the configured timeout; it is ``UNKNOWN`` once a
try sent after the whole timeout has gone unanswered too (Linux refills its ICMP rate limit once
a second, the default timeout). Each wait is a few times the path's round trip (never below
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
#: Drops found before the search stops believing the answers (each stage costs round trips).
MAX_DROPS = 32
#: MTUs a black hole most often hides (jumbo, Ethernet, PPPoE, tunnels: IPIP, GRE, VXLAN, WireGuard,
#: IPv6's minimum, IPv4's old floor): the search's steps move onto them when they are near.
COMMON_MTUS = frozenset({9000, 1500, 1492, 1480, 1476, 1460, 1450, 1420, 1400, 1380, 1280, 576})


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
    once: bool = False  # sent once with no control; whatever came back within one wait


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
    that answered in the trace (where big probes look for the last hop they reach: a hop that never
    answers would only cost waits); ``where``: the hop each address answered at in the trace, so a
    reporting router names its hop; ``small``: the control probes' size (small enough for any
    path); ``max_ttl``: the TTL of probes to the destination; ``wait_ns``: one try's wait
    (:func:`probe_wait_ns`); ``timeout_ns``: how long an unanswered probe is tried for.
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
        """The probes due now, in order (each big probe just before its control): send them all."""
        out: list[PmtuProbe] = []
        for i, p in enumerate(self._batch):
            if p.result is not None or p.due_ns is not None:
                continue
            p.attempt += 1
            p.control_answered = False
            p.due_ns = now_ns + self._round_wait(p)
            ttl = self.max_ttl if p.ask.ttl is None else p.ask.ttl
            out.append(self._probe(i, p, p.ask.size, ttl, control=False))
            if not p.ask.once:
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
            if p.ask.once:
                p.result = Result(Outcome.UNKNOWN)
            elif p.control_answered:
                p.fails += 1
                if p.fails >= self.tries:
                    p.result = Result(Outcome.LOST)
            else:
                before = p.waited_ns
                p.waited_ns += self._round_wait(p)
                p.silent += 1
                # Unknown once a round that started after the whole timeout has gone unanswered too:
                # a limiter that refills once per timeout (Linux's default) has had its chance.
                if before >= self.timeout_ns and p.attempt >= self.tries:
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
        """A round waits ``wait_ns``, doubled after each round in which nothing at all came back,
        up to a quarter of the timeout: a router limiting its ICMP replies refills slowly, and a
        probe soon after it does gets the answer."""
        return min(self.wait_ns << min(p.silent, 30), max(self.wait_ns, self.timeout_ns // 4))

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
            if len(found.drops) >= MAX_DROPS:
                found.gave_up = True  # no real path falls this often: forged or broken answers
                return
            (dest,) = yield [Ask(cur, None)]
            if dest.outcome is Outcome.TOO_BIG and dest.address is None:
                if dest.mtu is not None and self.floor <= dest.mtu < cur:
                    found.first_mtu = found.first_mtu or dest.mtu
                    cur = dest.mtu  # our own link: the first size that can leave at all
                    continue
                found.gave_up = True  # our own interface refuses even what it says it carries
                return
            if found.first_mtu is None:
                found.first_mtu = cur
            if dest.outcome is Outcome.REACHED:
                found.mtu = cur
                found.known_ttl = self.dest_ttl
                return
            if dest.outcome is Outcome.UNKNOWN:
                found.gave_up = True  # neither big nor small probes answered: nothing to go on
                return
            if self._usable(dest, cur):
                at = yield from self._reported_at(dest.address, cur, reached_ttl)
                found.drops.append(MtuDrop(at, dest.address, dest.mtu or 0))
                found.known_ttl = reached_ttl = at - 1
                cur = dest.mtu or 0
                continue
            # Big probes vanish (or a report came without a usable MTU): where do they stop?
            ttls = [t for t in self.hops if t > reached_ttl]
            results = yield [Ask(cur, t) for t in ttls]
            by_ttl = dict(zip(ttls, results, strict=True))
            last = max((t for t, r in by_ttl.items() if r.outcome is Outcome.REACHED), default=reached_ttl)
            at = last + 1
            report = dest if dest.outcome is Outcome.TOO_BIG else None
            # Search that stretch's MTU with probes to the first hop behind it that answers small
            # probes but not big ones (or the destination): a second drop further on stays apart.
            target = next((t for t in ttls if t > last and by_ttl[t].outcome is Outcome.LOST), None)
            bounds = _Bounds(self.floor, cur)
            while bounds.hi - bounds.lo > 1:
                size = bounds.next_size()
                (r,) = yield [Ask(size, target)]
                if not bounds.learn(size, r, self._usable(r, size)):
                    found.gave_up = True
                    return
            lo, reporter = bounds.lo, bounds.reporter
            address = reporter[0] if reporter is not None and reporter[1] == lo else None
            if address is None and report is not None:
                address = report.address  # it did report, only without an MTU we could use
            found.black_hole = found.black_hole or address is None
            found.drops.append(MtuDrop(at, address, lo))
            cur = lo
            found.known_ttl = reached_ttl = target if target is not None else self.dest_ttl
            if target is None:
                found.mtu = cur
                return

    def _usable(self, r: Result, size: int) -> bool:
        """A router's "too big" whose MTU is plausible: below the probe and not below the minimum."""
        return (r.outcome is Outcome.TOO_BIG and r.address is not None and r.mtu is not None
                and self.floor <= r.mtu < size)

    def _reported_at(self, address: str | None, size: int, reached_ttl: int) -> Generator[list[Ask], list[Result], int]:
        """The TTL of a reported drop: the first hop behind the router that reported it. Its hop in
        the trace plus one when the trace saw it; else the lowest TTL whose probe of ``size`` gets
        the report (one probe per TTL, all at once, sent once: routers do not rate-limit "too big",
        while they may well be limiting the Time Exceeded that would name their hop)."""
        hop = self.where.get(address) if address is not None else None
        if hop is not None and reached_ttl <= hop < self.dest_ttl:
            return hop + 1
        ttls = list(range(reached_ttl + 1, self.dest_ttl))
        results = yield [Ask(size, t, once=True) for t in ttls]
        told = [t for t, r in zip(ttls, results, strict=True) if r.outcome is Outcome.TOO_BIG]
        if told:
            return min(told)
        passed = [t for t, r in zip(ttls, results, strict=True) if r.outcome is Outcome.REACHED]
        return max(passed, default=reached_ttl) + 1


@dataclass
class _Bounds:
    """A search's knowledge: ``lo`` passes, ``hi`` does not; ``reporter`` said "too big" with an MTU."""

    lo: int
    hi: int
    reporter: tuple[str | None, int] | None = None
    tried: set[int] = field(default_factory=set)

    def next_size(self) -> int:
        """The next size to try: one byte above ``lo`` when ``lo`` is a common MTU (a common MTU is
        then pinned in two probes); else a common MTU in the middle half of the range (the one
        nearest its middle), so each probe still cuts at least a quarter; else the middle."""
        lo, hi = self.lo, self.hi
        if lo in COMMON_MTUS and lo + 1 < hi and lo + 1 not in self.tried:
            size = lo + 1
        else:
            mid, quarter = (lo + hi) // 2, (hi - lo) // 4
            near = [c for c in COMMON_MTUS if lo + quarter <= c <= hi - quarter and lo < c < hi and c not in self.tried]
            size = min(near, key=lambda c: (abs(c - mid), c)) if near else mid
        self.tried.add(size)
        return size

    def learn(self, size: int, r: Result, usable_report: bool) -> bool:
        """Take a probe's result in; False when it says nothing (the search cannot go on)."""
        if r.outcome is Outcome.REACHED:
            self.lo = max(self.lo, size)
        elif usable_report and r.mtu is not None and r.mtu >= self.lo:
            self.hi, self.reporter = min(self.hi, r.mtu + 1), (r.address, r.mtu)
        elif r.outcome in (Outcome.LOST, Outcome.TOO_BIG):
            self.hi = min(self.hi, size)
        else:
            return False
        return True


def mtu_at(result: PmtuResult, ttl: int) -> int:
    """The path MTU up to hop ``ttl``: the first link's, lowered by every drop at or before it."""
    mtu = result.first_mtu or 0
    for d in result.drops:
        if d.ttl <= ttl:
            mtu = d.mtu
    return mtu
