"""The trace plan, exactly: rounds, windows, timeouts and matching on a fake clock (integer ns).

A small simulated network answers the plan's probes: per round a path (routers by TTL, silent ones
as None, the destination at some TTL) and an RTT per TTL. The driver does what the io loop does
(expire, send what is due, sleep until the next wake-up or answer) and fails on a busy loop.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netkit.core.trace_models import Answer, HopEvent, ProbeSpec
from netkit.core.trace_plan import MAX_OUTSTANDING, TracePlan

MS = 1_000_000
S = 1_000_000_000
DEST = "198.18.9.9"


@dataclass
class Path:
    """What a probe meets: routers by TTL (None: silent), the destination from ``dest_ttl`` on."""

    dest_ttl: int
    silent: frozenset[int] = frozenset()
    rtt_per_hop_ns: int = 1 * MS

    def outcome(self, ttl: int) -> tuple[str, Answer] | None:
        if ttl >= self.dest_ttl:
            return DEST, Answer.DESTINATION
        if ttl in self.silent:
            return None
        return f"198.18.0.{ttl}", Answer.TIME_EXCEEDED

    def rtt(self, ttl: int) -> int:
        return min(ttl, self.dest_ttl) * self.rtt_per_hop_ns


@dataclass
class Sim:
    plan: TracePlan
    path: Callable[[int], Path]  # by round
    drop: Callable[[ProbeSpec], bool] = lambda spec: False
    sends: list[tuple[int, ProbeSpec]] = field(default_factory=list)
    events: list[tuple[int, HopEvent]] = field(default_factory=list)
    max_outstanding_seen: int = 0
    now: int = 0

    def run(self, limit_ns: int = 3600 * S) -> int:
        """Drive the plan to its end; the time it finished."""
        plan = self.plan
        self.now = now = plan.start_ns
        wire: list[tuple[int, int, str, Answer]] = []  # (arrival, seq, address, answer)
        idle = 0
        while True:
            for ev in plan.expire(now):
                self.events.append((now, ev))
            sent = plan.to_send(now)
            for spec in sent:
                self.sends.append((now, spec))
                out = self.path(spec.round).outcome(spec.ttl)
                if out is not None and not self.drop(spec):
                    heapq.heappush(wire, (now + self.path(spec.round).rtt(spec.ttl), spec.seq, *out))
            outstanding = len(_outstanding(plan))
            self.max_outstanding_seen = max(self.max_outstanding_seen, outstanding)
            if plan.finished(now):
                return now
            wake = plan.next_wakeup_ns(now)
            nxt = min(t for t in (wake, wire[0][0] if wire else None) if t is not None)
            assert nxt >= now
            idle = idle + 1 if nxt == now and not sent else 0
            assert idle < 3, f"busy loop at {now}"
            assert nxt - plan.start_ns <= limit_ns, "the plan never ends"
            self.now = now = nxt
            while wire and wire[0][0] <= now:
                _t, seq, address, answer = heapq.heappop(wire)
                sent_ns = plan.sent_ns_of(seq)
                if sent_ns is None:
                    continue  # late: it timed out already
                ev = plan.answer(seq, address, answer, now - sent_ns)
                assert ev is not None
                self.events.append((now, ev))

    def sent_at(self, rnd: int) -> list[tuple[int, int]]:
        """(time, ttl) of a round's probes."""
        return [(t, s.ttl) for t, s in self.sends if s.round == rnd]

    def answered(self, rnd: int) -> dict[int, tuple[int, str | None]]:
        return {ev.ttl: (t, ev.address) for t, ev in self.events if ev.round == rnd}


def _outstanding(plan: TracePlan) -> list[int]:
    """The sequence numbers in flight (the plan's own table: asking ``outstanding`` of every seq
    ever sent would make the long runs quadratic)."""
    return list(plan._out)


def make_plan(**kw: object) -> TracePlan:
    args: dict[str, object] = {"start_ns": 5 * S, "first_hop": 1, "max_hops": 30, "window": 8,
                               "timeout_ns": 1 * S, "interval_ns": 1 * S, "rounds": 3, "deadline_ns": None}
    args.update(kw)
    return TracePlan(**args)  # type: ignore[arg-type]


# ----- pacing ---------------------------------------------------------------------------------------
def test_rounds_start_at_start_plus_r_interval_whatever_a_slow_round_does() -> None:
    # Round 0 meets a silent hop (a 1.5 s wait at most), the rest a clean path: round 1 still
    # starts at start + 1 s exactly, not after round 0 ends.
    plan = make_plan(interval_ns=700 * MS, timeout_ns=1500 * MS, rounds=4)
    sim = Sim(plan, lambda r: Path(dest_ttl=4, silent=frozenset({2}) if r == 0 else frozenset()))
    end = sim.run()
    starts = [min(t for t, _ttl in sim.sent_at(r)) for r in range(4)]
    assert starts == [5 * S, 5 * S + 700 * MS, 5 * S + 1400 * MS, 5 * S + 2100 * MS]
    assert plan.rounds_done == 4 and plan.rounds_started == 4
    assert end == 5 * S + 2100 * MS + 4 * MS  # the last round's destination answer


def test_count_rounds_then_finished() -> None:
    plan = make_plan(rounds=2, interval_ns=10 * MS)
    sim = Sim(plan, lambda r: Path(dest_ttl=3))
    end = sim.run()
    assert plan.rounds_done == 2
    assert {s.round for _t, s in sim.sends} == {0, 1}
    assert end == 5 * S + 10 * MS + 3 * MS
    assert plan.next_wakeup_ns(end) is None


@pytest.mark.parametrize(("interval_ms", "duration_ms", "rounds"), [
    (1000, 2500, 3),  # rounds at 0, 1, 2 s; the run ends at 2.5 s
    (300, 1000, 4),  # 0, 0.3, 0.6, 0.9 s
    (10_000, 2000, 1),  # an interval longer than the duration: one round, the run still lasts 2 s
    (1000, 1000, 1),  # a round due exactly at the deadline does not start
])
def test_duration_is_wall_clock_whatever_the_interval(interval_ms: int, duration_ms: int, rounds: int) -> None:
    start = 5 * S
    plan = make_plan(rounds=None, interval_ns=interval_ms * MS, deadline_ns=start + duration_ms * MS)
    sim = Sim(plan, lambda r: Path(dest_ttl=2))
    end = sim.run()
    assert plan.rounds_started == plan.rounds_done == rounds
    assert end == start + duration_ms * MS


def test_a_round_in_flight_at_the_deadline_settles_without_a_busy_loop() -> None:
    # Round 2 starts at 2 s, its silent hop times out at 3 s: past the 2.5 s deadline the plan
    # wakes for that timeout only (the driver fails on a wake-up at "now" with nothing to do).
    start = 5 * S
    plan = make_plan(rounds=None, interval_ns=1 * S, deadline_ns=start + 2500 * MS)
    sim = Sim(plan, lambda r: Path(dest_ttl=3, silent=frozenset({2})))
    end = sim.run()
    assert plan.rounds_started == 3
    assert end == start + 3 * S
    assert plan.next_wakeup_ns(start + 2600 * MS) is None or plan.finished(start + 2600 * MS)


def test_no_round_needs_a_count_or_a_deadline() -> None:
    with pytest.raises(ValueError):
        make_plan(rounds=None, deadline_ns=None)
    with pytest.raises(ValueError):
        make_plan(first_hop=31)


# ----- the window ------------------------------------------------------------------------------------
def test_a_near_destination_completes_in_one_round_trip() -> None:
    plan = make_plan(rounds=1)
    sim = Sim(plan, lambda r: Path(dest_ttl=3, rtt_per_hop_ns=2 * MS))
    end = sim.run()
    first = [ttl for t, ttl in sim.sent_at(0) if t == 5 * S]
    assert first == list(range(1, 9))  # one window at once
    # TTLs 1 and 2 answered at 2 and 4 ms and let 9 and 10 go (the path was not known yet); the
    # destination's answer at 6 ms ends the round: the probes beyond it are not waited for.
    assert [(t - 5 * S, ttl) for t, ttl in sim.sent_at(0) if t > 5 * S] == [(2 * MS, 9), (4 * MS, 10)]
    assert end == 5 * S + 6 * MS
    assert plan.dest_ttl == 3
    assert sorted(ev.ttl for _t, ev in sim.events) == [1, 2, 3]  # beyond the destination: no outcome


def test_the_destination_at_d_stops_ttls_beyond_d_in_later_rounds() -> None:
    plan = make_plan(rounds=5)
    sim = Sim(plan, lambda r: Path(dest_ttl=4))
    sim.run()
    for r in range(1, 5):
        assert sorted(ttl for _t, ttl in sim.sent_at(r)) == [1, 2, 3, 4]
        assert {t for t, _ttl in sim.sent_at(r)} == {5 * S + r * S}  # the known path all at once


@pytest.mark.parametrize(("silent_to", "dest_ttl", "timeouts"), [(12, 13, 1), (22, 23, 2)])
def test_a_silent_stretch_costs_one_timeout_per_window(silent_to: int, dest_ttl: int, timeouts: int) -> None:
    plan = make_plan(rounds=1, timeout_ns=1 * S)
    sim = Sim(plan, lambda r: Path(dest_ttl=dest_ttl, silent=frozenset(range(3, silent_to + 1))))
    sim.run()
    found = min(t for t, ev in sim.events if ev.answer is Answer.DESTINATION)
    # TTLs 1-2 answer at 1-2 ms and open 9-10; each window of silent TTLs costs one timeout.
    assert timeouts * S < found - 5 * S < timeouts * S + 50 * MS
    assert plan.dest_ttl == dest_ttl
    assert all(ttl <= dest_ttl + 8 for _t, ttl in sim.sent_at(0))


def test_a_path_that_gets_longer_is_followed() -> None:
    plan = make_plan(rounds=4)
    sim = Sim(plan, lambda r: Path(dest_ttl=3 if r < 2 else 5))
    sim.run()
    assert sorted(ttl for _t, ttl in sim.sent_at(1)) == [1, 2, 3]
    assert max(ttl for _t, ttl in sim.sent_at(2)) >= 5  # TTL 3 met a router: round 2 looked further
    assert sorted(ttl for _t, ttl in sim.sent_at(3)) == [1, 2, 3, 4, 5]
    assert plan.dest_ttl == 5
    r2 = sim.answered(2)
    assert r2[3][1] == "198.18.0.3" and r2[5][1] == DEST


def test_a_path_that_gets_shorter_is_followed() -> None:
    plan = make_plan(rounds=3)
    sim = Sim(plan, lambda r: Path(dest_ttl=5 if r < 1 else 3))
    sim.run()
    assert plan.dest_ttl == 3
    assert sorted(ttl for _t, ttl in sim.sent_at(2)) == [1, 2, 3]


def test_first_hop_and_max_hops_bound_the_ttls() -> None:
    plan = make_plan(rounds=2, first_hop=3, max_hops=6)
    sim = Sim(plan, lambda r: Path(dest_ttl=99))  # never reached: routers all the way
    sim.run()
    assert sorted(ttl for _t, ttl in sim.sent_at(0)) == [3, 4, 5, 6]
    assert sorted(ttl for _t, ttl in sim.sent_at(1)) == [3, 4, 5, 6]


def test_an_unreachable_answer_closes_its_round() -> None:
    plan = make_plan(rounds=1, window=2)
    seqs = {s.ttl: s.seq for s in plan.to_send(5 * S)}
    assert set(seqs) == {1, 2}
    plan.answer(seqs[1], "198.18.0.1", Answer.UNREACHABLE, 1 * MS)
    assert plan.to_send(5 * S + MS) == []  # the window grew, but the round is closed
    plan.answer(seqs[2], "198.18.0.1", Answer.UNREACHABLE, 1 * MS)
    assert plan.finished(5 * S + 2 * MS)


# ----- timeouts, late and duplicate answers ---------------------------------------------------------------
def test_a_probe_times_out_exactly_after_the_timeout_from_its_send_time() -> None:
    plan = make_plan(rounds=1, window=1, max_hops=1, timeout_ns=300 * MS)
    (spec,) = plan.to_send(5 * S)
    plan.sent(spec.seq, 5 * S + 2 * MS)  # it really left 2 ms later
    assert plan.expire(5 * S + 301 * MS) == []
    assert plan.next_wakeup_ns(5 * S + 301 * MS) == 5 * S + 302 * MS
    (ev,) = plan.expire(5 * S + 302 * MS)
    assert (ev.ttl, ev.seq, ev.address, ev.rtt_ns, ev.answer, ev.answered) == (1, spec.seq, None, None, None, False)
    assert plan.finished(5 * S + 302 * MS)


def test_late_and_duplicate_answers_are_ignored() -> None:
    plan = make_plan(rounds=1, window=2, max_hops=2, timeout_ns=100 * MS)
    a, b = plan.to_send(5 * S)
    assert plan.answer(a.seq, "198.18.0.1", Answer.TIME_EXCEEDED, MS) is not None
    assert plan.answer(a.seq, "198.18.0.1", Answer.TIME_EXCEEDED, MS) is None  # duplicate
    assert plan.match(a.seq, 1024, a.seq) is None
    assert [e.seq for e in plan.expire(5 * S + 100 * MS)] == [b.seq]
    assert plan.match(b.seq % 1024, 1024, None) is None
    assert plan.answer(b.seq, DEST, Answer.DESTINATION, 200 * MS) is None  # late
    assert plan.dest_ttl is None  # a late answer teaches nothing either


def test_match_by_full_sequence_and_by_low_bits() -> None:
    plan = make_plan(rounds=1, window=30)
    specs = plan.to_send(5 * S)
    seqs = [s.seq for s in specs]
    assert seqs == list(range(30))
    assert plan.match(7, 1024, 7) == 7
    assert plan.match(7, 1024, None) == 7
    assert plan.match(8, 1024, 7) is None  # the quoted payload and the port disagree
    assert plan.match(7 + 1024, 1024, 7) == 7  # low bits are compared modulo
    assert plan.match(0, 1, 12) == 12  # a fixed port: the payload alone
    assert plan.match(30, 1024, None) is None  # never sent
    assert plan.match(30, 1024, 30) is None
    assert plan.outstanding(7) == ProbeSpec(7, 8, 0)
    assert plan.outstanding(99) is None


def test_unsent_probes_count_nowhere() -> None:
    plan = make_plan(rounds=1, window=2, max_hops=2)
    for spec in plan.to_send(5 * S):
        plan.unsent(spec.seq)
    assert plan.expire(10 * S) == []
    assert plan.finished(10 * S) and plan.rounds_done == 1


def test_stop_starts_no_round_and_drop_forgets_what_is_in_flight() -> None:
    plan = make_plan(rounds=None, deadline_ns=100 * S)
    first = plan.to_send(5 * S)
    assert first
    plan.stop()
    assert plan.to_send(6 * S) == []  # round 1 was due
    assert not plan.finished(6 * S)  # round 0 still in flight
    plan.drop_outstanding()
    assert plan.finished(6 * S)
    assert all(plan.match(s.seq, 1024, s.seq) is None for s in first)


# ----- bounded -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("interval_ns", [0, 1 * MS])
def test_outstanding_probes_are_bounded_whatever_the_interval(interval_ns: int) -> None:
    # A path that never answers, a 10 s timeout and rounds every 1 ms (or back to back): without
    # a bound, 10,000 rounds of 8 probes would be in flight (interval 0 never stopped starting rounds).
    plan = make_plan(rounds=None, interval_ns=interval_ns, timeout_ns=10 * S, deadline_ns=5 * S + 30 * S)
    sim = Sim(plan, lambda r: Path(dest_ttl=99, silent=frozenset(range(1, 31))))
    sim.run()
    assert sim.max_outstanding_seen == MAX_OUTSTANDING
    by_time: dict[int, list[int]] = {}
    for t, spec in sim.sends:
        by_time.setdefault(t, []).append(spec.seq)
    assert len(by_time) > 1  # probes waited for room and left when the oldest timed out


def test_probes_in_flight_span_less_than_the_bound_so_low_bits_name_one() -> None:
    plan = make_plan(rounds=None, interval_ns=1 * MS, timeout_ns=10 * S, deadline_ns=5 * S + 12 * S)
    sim = Sim(plan, lambda r: Path(dest_ttl=99, silent=frozenset(range(1, 31))))
    checked = 0
    orig = plan.to_send

    def spy(now: int) -> list[ProbeSpec]:
        nonlocal checked
        out = orig(now)
        live = _outstanding(plan)
        if live:
            assert max(live) - min(live) < MAX_OUTSTANDING
            checked += 1
        return out

    plan.to_send = spy  # type: ignore[method-assign]
    sim.run()
    assert checked > 10


@settings(max_examples=60, deadline=None)
@given(dest=st.integers(1, 12), silent=st.frozensets(st.integers(1, 12), max_size=5),
       window=st.integers(1, 10), rounds=st.integers(1, 4), interval_ms=st.integers(0, 1500),
       drop_every=st.integers(0, 5))
def test_every_probe_settles_once_and_nothing_beyond_the_destination_after_it_is_known(
        dest: int, silent: frozenset[int], window: int, rounds: int, interval_ms: int, drop_every: int) -> None:
    plan = make_plan(rounds=rounds, window=window, max_hops=15, interval_ns=interval_ms * MS)
    sim = Sim(plan, lambda r: Path(dest_ttl=dest, silent=silent),
              drop=lambda spec: drop_every > 0 and spec.seq % drop_every == 0)
    sim.run()
    settled = [ev.seq for _t, ev in sim.events]
    assert len(settled) == len(set(settled))  # each probe settles once at most: answer or timeout
    ttl_of = {s.seq: s.ttl for _t, s in sim.sends}
    unsettled = ttl_of.keys() - set(settled)
    assert all(ttl_of[seq] > dest for seq in unsettled)  # only probes beyond the destination are forgotten
    assert plan.rounds_done == rounds
    # A probe sent once the destination has answered at TTL d never goes beyond d (d as known then:
    # a lost answer at the true TTL makes the plan believe in a later one for a while).
    answers = [(t, ev.ttl) for t, ev in sim.events if ev.answer is Answer.DESTINATION]
    for t, spec in sim.sends:
        known = [ttl for at, ttl in answers if at <= t]
        if known:
            assert spec.ttl <= min(known)
