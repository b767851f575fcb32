"""Which probe to send when, and which probe an answer belongs to: one target's trace plan. Pure.

Rounds start every ``interval`` (at start + r * interval, so a slow round never shifts the rest),
until ``count`` rounds or the duration's deadline. Within a round every TTL is probed at once: a
window of ``window`` TTLs leaves first, and each outcome at TTL t (an answer or a timeout) lets
TTLs up to t + window go, so a near path completes in one round trip and a silent stretch costs
one timeout per window. Once the destination has answered at TTL d, the round's probes beyond d
are forgotten (they count nowhere), rounds in flight stop short of d, and no TTL beyond d is probed;
when TTL d later meets a router instead (the path got longer), the next rounds look further again.

Probes are numbered by one sequence per target. The io side puts the number (or its low bits) on
the wire; an answer is matched only when it names a probe that is still outstanding, so forged,
late or unrelated ICMP errors never count. Outstanding probes span fewer than ``MAX_OUTSTANDING``
sequence numbers (a probe waits while the oldest one in flight is that far behind, and no round
starts meanwhile), so memory is bounded whatever the interval and the timeout, and the low bits an
answer carries (the io side's modulus is at least ``MAX_OUTSTANDING``) name at most one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netkit.core.trace_models import Answer, HopEvent, ProbeSpec

NS_PER_S = 1_000_000_000
#: The most sequence numbers the probes in flight may span (and so the most in flight): below the
#: udp prober's 1024 destination ports, so a quote without our payload still names one probe.
MAX_OUTSTANDING = 512


@dataclass
class _Round:
    number: int
    limit: int  # the highest TTL this round may probe
    next_ttl: int  # the next TTL to send
    allowed: int  # TTLs up to here may be sent now (the window)
    pending: set[int] = field(default_factory=set)  # seqs in flight
    closed: bool = False  # the destination (or an unreachable) answered: nothing further

    @property
    def done(self) -> bool:
        return not self.pending and (self.closed or self.next_ttl > min(self.limit, self.allowed))


@dataclass(frozen=True)
class _Outstanding:
    round: int
    ttl: int
    sent_ns: int


class TracePlan:
    """The probe plan of one target. Every method takes the current monotonic time in ns."""

    def __init__(self, *, start_ns: int, first_hop: int, max_hops: int, window: int, timeout_ns: int,
                 interval_ns: int, rounds: int | None, deadline_ns: int | None) -> None:
        if not 1 <= first_hop <= max_hops:
            raise ValueError("need 1 <= first_hop <= max_hops")
        if rounds is None and deadline_ns is None:
            raise ValueError("a plan needs a round count or a deadline")
        self.first_hop = first_hop
        self.max_hops = max_hops
        self.window = max(1, window)
        self.timeout_ns = timeout_ns
        self.interval_ns = max(0, interval_ns)
        self.rounds_total = rounds
        self.start_ns = start_ns
        self.deadline_ns = deadline_ns
        self.dest_ttl: int | None = None  # the TTL the destination answered at (smallest seen)
        self.frontier = first_hop - 1  # the highest TTL that ever answered
        self.rounds_started = 0
        self.stopped = False
        self._seq = 0
        self._rounds: dict[int, _Round] = {}
        self._out: dict[int, _Outstanding] = {}

    # ----- the schedule -------------------------------------------------------------------
    def _round_due_ns(self, r: int) -> int:
        return self.start_ns + r * self.interval_ns

    def _room(self) -> bool:
        """May one more probe leave? Not while the oldest in flight is MAX_OUTSTANDING seqs behind."""
        return not self._out or self._seq - next(iter(self._out)) < MAX_OUTSTANDING

    def _blocked(self) -> bool:
        """Does some round wait for room to send a TTL its window allows?"""
        return any(not r.closed and r.next_ttl <= min(r.limit, r.allowed) for r in self._rounds.values())

    def _next_round_due_ns(self, now_ns: int) -> int | None:
        """When the next round may start; None when no round will (the first one always does)."""
        r = self.rounds_started
        if self.stopped or (self.rounds_total is not None and r >= self.rounds_total):
            return None
        due = self._round_due_ns(r)
        if self.deadline_ns is not None and r > 0 and (due >= self.deadline_ns or now_ns >= self.deadline_ns):
            return None  # past the deadline (an interval of 0 makes every round due at the start)
        return due

    def _may_start_round(self, now_ns: int) -> bool:
        if self._blocked():
            return False
        due = self._next_round_due_ns(now_ns)
        return due is not None and due <= now_ns

    def _start_round(self) -> _Round:
        r = self.rounds_started
        self.rounds_started += 1
        limit = self.dest_ttl if self.dest_ttl is not None else self.max_hops
        if self.dest_ttl is not None:
            allowed = limit  # the path is known: every TTL at once
        else:
            allowed = max(self.first_hop + self.window - 1, self.frontier + self.window)
        rnd = _Round(r, limit, self.first_hop, min(allowed, limit))
        self._rounds[r] = rnd
        return rnd

    def to_send(self, now_ns: int) -> list[ProbeSpec]:
        """The probes due now: new rounds that are due, and TTLs the windows now allow."""
        out: list[ProbeSpec] = []
        self._send_allowed(out, now_ns)
        while self._may_start_round(now_ns):
            self._send_round(self._start_round(), out, now_ns)
        return out

    def _send_allowed(self, out: list[ProbeSpec], now_ns: int) -> None:
        for rnd in list(self._rounds.values()):
            self._send_round(rnd, out, now_ns)

    def _send_round(self, rnd: _Round, out: list[ProbeSpec], now_ns: int) -> None:
        if rnd.closed:
            return
        top = min(rnd.limit, rnd.allowed)
        while rnd.next_ttl <= top and self._room():
            seq = self._seq
            self._seq += 1
            out.append(ProbeSpec(seq, rnd.next_ttl, rnd.number))
            self._out[seq] = _Outstanding(rnd.number, rnd.next_ttl, now_ns)
            rnd.pending.add(seq)
            rnd.next_ttl += 1

    def sent(self, seq: int, sent_ns: int) -> None:
        """The time a probe actually left (when the io side knows it better than ``to_send``'s now)."""
        o = self._out.get(seq)
        if o is not None:
            self._out[seq] = _Outstanding(o.round, o.ttl, sent_ns)

    def unsent(self, seq: int) -> None:
        """A probe the io side could not send (e.g. no buffer): forget it, it counts nowhere."""
        o = self._out.pop(seq, None)
        if o is not None:
            rnd = self._rounds.get(o.round)
            if rnd is not None:
                rnd.pending.discard(seq)
                self._retire_if_done(rnd)

    # ----- matching ----------------------------------------------------------------------
    def match(self, low: int, modulus: int, full: int | None = None) -> int | None:
        """The outstanding probe an answer names: by ``full`` sequence when the answer carries it
        (then it must agree with ``low``), else the newest outstanding one with ``seq % modulus == low``."""
        if full is not None:
            if full in self._out and full % modulus == low % modulus:
                return full
            return None
        best: int | None = None
        for seq in self._out:
            if seq % modulus == low % modulus and (best is None or seq > best):
                best = seq
        return best

    def outstanding(self, seq: int) -> ProbeSpec | None:
        o = self._out.get(seq)
        return None if o is None else ProbeSpec(seq, o.ttl, o.round)

    def sent_ns_of(self, seq: int) -> int | None:
        o = self._out.get(seq)
        return None if o is None else o.sent_ns

    def answer(self, seq: int, address: str, answer: Answer, rtt_ns: int, *, mtu: int | None = None) -> HopEvent | None:
        """Record the answer to probe ``seq``; None when it is not outstanding (late, duplicate, forged)."""
        o = self._out.pop(seq, None)
        if o is None:
            return None
        rnd = self._rounds.get(o.round)
        ttl = o.ttl
        if answer is Answer.DESTINATION:
            if self.dest_ttl is None or ttl < self.dest_ttl:
                self.dest_ttl = ttl
                for other in self._rounds.values():
                    other.limit = min(other.limit, ttl)  # rounds in flight stop short of it too
            if rnd is not None:
                self._close(rnd, ttl)
        elif answer is Answer.UNREACHABLE:
            if rnd is not None:
                self._close(rnd, ttl)
        elif answer is Answer.TIME_EXCEEDED:
            self.frontier = max(self.frontier, ttl)
            if self.dest_ttl is not None and ttl >= self.dest_ttl:
                self.dest_ttl = None  # the path got longer: look further from the next round on
                if rnd is not None:
                    rnd.limit = self.max_hops
        if rnd is not None:
            rnd.pending.discard(seq)
            rnd.allowed = max(rnd.allowed, ttl + self.window)
            self._retire_if_done(rnd)
        return HopEvent(o.round, ttl, seq, address, rtt_ns, answer, mtu)

    def _close(self, rnd: _Round, ttl: int) -> None:
        """The path ends at ``ttl`` in this round: its probes beyond it answer nothing new (they went
        to the same end), so they are forgotten rather than waited for (a rate-limited destination
        would otherwise hold the round for a whole timeout)."""
        rnd.closed = True
        rnd.limit = min(rnd.limit, ttl)
        for seq in [s for s in rnd.pending if s in self._out and self._out[s].ttl > ttl]:
            rnd.pending.discard(seq)
            del self._out[seq]

    def expire(self, now_ns: int) -> list[HopEvent]:
        """Timeouts: every outstanding probe older than the timeout."""
        gone = [seq for seq, o in self._out.items() if now_ns - o.sent_ns >= self.timeout_ns]
        events: list[HopEvent] = []
        for seq in gone:
            o = self._out.pop(seq)
            events.append(HopEvent(o.round, o.ttl, seq, None, None, None))
            rnd = self._rounds.get(o.round)
            if rnd is not None:
                rnd.pending.discard(seq)
                rnd.allowed = max(rnd.allowed, o.ttl + self.window)
                self._retire_if_done(rnd)
        return events

    def _retire_if_done(self, rnd: _Round) -> None:
        if rnd.done:
            self._rounds.pop(rnd.number, None)

    # ----- the end ------------------------------------------------------------------------
    def stop(self) -> None:
        """Start no more rounds (Ctrl-C, the duration's end); probes in flight still count."""
        self.stopped = True

    def drop_outstanding(self) -> None:
        """Forget every probe in flight (an interrupted run does not wait for them)."""
        self._out.clear()
        self._rounds.clear()

    @property
    def rounds_done(self) -> int:
        """Rounds started and finished."""
        return self.rounds_started - len(self._rounds)

    def finished(self, now_ns: int) -> bool:
        if self._out or any(not r.done for r in self._rounds.values()):
            return False
        if self.stopped:
            return True
        if self.rounds_total is not None and self.rounds_started >= self.rounds_total:
            return True
        return self.deadline_ns is not None and now_ns >= self.deadline_ns and self.rounds_started > 0

    def next_wakeup_ns(self, now_ns: int) -> int | None:
        """When something is next due: a round, a timeout, or the deadline; None when nothing is."""
        times: list[int] = []
        if self._out:
            times.append(min(o.sent_ns for o in self._out.values()) + self.timeout_ns)
        if self._blocked():
            if self._room():
                times.append(now_ns)  # a window grew since ``to_send``: send now
            # else nothing leaves before a probe in flight settles (its timeout is above)
        else:
            due = self._next_round_due_ns(now_ns)
            if due is not None:
                times.append(due)
            elif self.deadline_ns is not None and self.deadline_ns > now_ns and not self.stopped:
                times.append(self.deadline_ns)  # the run ends then (past it, only timeouts are due)
        return max(now_ns, min(times)) if times else None
