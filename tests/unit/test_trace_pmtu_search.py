"""The path MTU search, exactly: a simulated path answers its probes on a fake clock."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netkit.core.trace_models import Answer, MtuDrop, PmtuResult
from netkit.core.trace_pmtu import (
    CAP_V4,
    IPV6_MIN_MTU,
    MAX_DROPS,
    MIN_WAIT_NS,
    PmtuSearch,
    mtu_at,
    probe_wait_ns,
)

MS = 1_000_000


@dataclass
class FakePath:
    """Hops 1..len(mtus): link k (into hop k) carries ``mtus[k-1]`` bytes; link 1 is our interface.
    The last hop is the destination. ``quiet``: routers whose "too big" is filtered (black hole);
    ``silent``: routers that send no Time Exceeded; ``every``: the destination answers only every
    n-th probe (an ICMP rate limit)."""

    mtus: list[int]
    quiet: set[int] = field(default_factory=set)
    silent: set[int] = field(default_factory=set)
    every: int = 1
    lose: set[int] = field(default_factory=set)  # probe numbers lost on the way (random loss)
    rtt_ns: int = 1 * MS
    _dest_count: int = 0
    _count: int = 0

    @property
    def dest(self) -> int:
        return len(self.mtus)

    def addr(self, hop: int) -> str:
        return f"198.18.{hop}.2"

    def send(self, size: int, ttl: int) -> tuple[str | None, Answer, int | None] | None:
        """The answer to one probe: (address, answer, mtu), or None when nothing comes back."""
        self._count += 1
        if self._count in self.lose:
            return None
        if size > self.mtus[0]:
            return None, Answer.FRAG_NEEDED, self.mtus[0]
        for hop in range(1, self.dest + 1):
            if hop == self.dest:
                self._dest_count += 1
                if self._dest_count % self.every:
                    return None
                return self.addr(hop), Answer.DESTINATION, None
            if ttl == hop:
                return None if hop in self.silent else (self.addr(hop), Answer.TIME_EXCEEDED, None)
            if size > self.mtus[hop]:
                return None if hop in self.quiet else (self.addr(hop), Answer.FRAG_NEEDED, self.mtus[hop])
        raise AssertionError("unreachable")


def run(path: FakePath, *, v6: bool = False, tries: int = 2, timeout_ns: int = 1000 * MS,
        small: int = 60) -> tuple[PmtuSearch, int]:
    hops = [h for h in range(1, path.dest) if h not in path.silent]
    search = PmtuSearch(v6=v6, dest_ttl=path.dest, max_ttl=30, hops=hops,
                        where={path.addr(h): h for h in hops}, small=small,
                        wait_ns=probe_wait_ns(path.rtt_ns, timeout_ns), timeout_ns=timeout_ns, tries=tries)
    now = 0
    arrivals: list[tuple[int, int, tuple[str | None, Answer, int | None]]] = []
    for _ in range(100_000):
        if search.done:
            return search, now
        for probe in search.to_send(now):
            got = path.send(probe.size, probe.ttl)
            if got is not None:
                delay = 0 if got[0] is None else path.rtt_ns  # our own interface answers at once
                heapq.heappush(arrivals, (now + delay, probe.seq, got))
        while arrivals and arrivals[0][0] <= now:
            _at, seq, (address, answer, mtu) = heapq.heappop(arrivals)
            search.answer(seq, address, answer, mtu, now)
        search.expire(now)
        if search.done:
            return search, now
        wake = search.next_wakeup_ns(now)
        nexts = [t for t in (wake, arrivals[0][0] if arrivals else None) if t is not None]
        now = max(now, min(nexts))
    raise AssertionError("the search did not end")


def test_reported_drops_are_named_at_tracepaths_hops() -> None:
    # tracepath: "2: 198.18.1.2 pmtu 1400" is the router at hop 1 on the line of TTL 2.
    path = FakePath([1500, 1400, 1280, 1280, 1280])
    search, elapsed = run(path)
    assert search.result() == PmtuResult(mtu=1280, first_mtu=1500, drops=(
        MtuDrop(2, path.addr(1), 1400), MtuDrop(3, path.addr(2), 1280)), black_hole=False)
    assert search.hop_mtus() == {1: 1500, 2: 1400, 3: 1280, 4: 1280, 5: 1280}
    assert elapsed == 3 * MS  # one round trip per stage; our interface's EMSGSIZE comes at once


def test_clean_path_is_one_round_trip_after_the_local_mtu() -> None:
    search, elapsed = run(FakePath([1500, 1500, 1500]))
    assert search.result() == PmtuResult(mtu=1500, first_mtu=1500)
    assert elapsed == 1 * MS


def test_a_filtered_report_is_found_by_search_exact_to_the_byte() -> None:
    path = FakePath([1500, 1400, 1280, 1280, 1280], quiet={2})
    search, elapsed = run(path)
    assert search.result() == PmtuResult(mtu=1280, first_mtu=1500, drops=(
        MtuDrop(2, path.addr(1), 1400), MtuDrop(3, None, 1280)), black_hole=True)
    assert search.hop_mtus()[3] == 1280
    assert elapsed < 400 * MS


@pytest.mark.parametrize("mtus", [[1500, 1499, 1499], [1500, 69, 69], [9000, 1500, 1492, 1492], [1500, 1500, 1337]])
def test_black_hole_search_is_exact(mtus: list[int]) -> None:
    path = FakePath(mtus, quiet=set(range(1, len(mtus))))
    search, _ = run(path)
    result = search.result()
    assert result.mtu == min(mtus)
    assert result.black_hole == (min(mtus) < mtus[0])
    drops = [(d.ttl, d.mtu) for d in result.drops]
    want = [(k + 1, m) for k, m in enumerate(mtus) if k and m < mtus[k - 1]]
    assert drops == want


def test_two_black_holes_are_told_apart() -> None:
    path = FakePath([1500, 1500, 1400, 1400, 1300, 1300], quiet={2, 4})
    search, _ = run(path)
    assert search.result().drops == (MtuDrop(3, None, 1400), MtuDrop(5, None, 1300))
    assert search.hop_mtus() == {1: 1500, 2: 1500, 3: 1400, 4: 1400, 5: 1300, 6: 1300}


def test_black_hole_behind_a_silent_hop_is_put_at_the_first_hop_it_may_be() -> None:
    # Hop 2 sends no Time Exceeded: the drop after hop 1 may be at 2 or 3; the earliest is named.
    path = FakePath([1500, 1500, 1400, 1400], quiet={2}, silent={2})
    result = run(path)[0].result()
    assert result.drops == (MtuDrop(2, None, 1400),) and result.black_hole


def test_ipv6_search_stays_above_1280() -> None:
    path = FakePath([1500, 1280, 1280], quiet={1})
    search, _ = run(path, v6=True, small=80)
    assert search.result().mtu == IPV6_MIN_MTU
    assert search.probes_sent <= 20  # 1281 is tried first: 1280 is a common MTU


def test_a_rate_limited_destination_is_not_a_black_hole() -> None:
    # The destination answers every other probe; a big probe must not read as lost for it.
    search, _ = run(FakePath([1500, 1500, 1500], every=2))
    assert search.result() == PmtuResult(mtu=1500, first_mtu=1500)


def test_a_lost_big_probe_is_sent_again() -> None:
    path = FakePath([1500, 1500, 1500], lose={3})  # the first 1500-byte probe to the destination
    search, _ = run(path)
    assert search.result() == PmtuResult(mtu=1500, first_mtu=1500)


def test_nothing_answering_gives_up_within_the_timeout() -> None:
    path = FakePath([1500, 1500, 1500], every=10**9)
    search, elapsed = run(path, timeout_ns=200 * MS)
    assert search.result().mtu is None
    assert elapsed <= 2 * 200 * MS


def test_a_report_without_a_usable_mtu_is_searched() -> None:
    path = FakePath([1500, 1500, 1400, 1400])

    real = path.send

    def send(size: int, ttl: int) -> tuple[str | None, Answer, int | None] | None:
        got = real(size, ttl)
        if got is not None and got[1] is Answer.FRAG_NEEDED and got[0] is not None:
            return got[0], got[1], 0  # an old router: "fragmentation needed" with no MTU
        return got

    path.send = send  # type: ignore[method-assign]
    result = run(path)[0].result()
    assert result.drops == (MtuDrop(3, path.addr(2), 1400),) and not result.black_hole


def test_loopback_sized_link() -> None:
    search, _ = run(FakePath([65536, 65536]))
    assert search.result().mtu == CAP_V4


def test_wait_follows_the_round_trip_within_bounds() -> None:
    assert probe_wait_ns(None, 1000 * MS) == MIN_WAIT_NS
    assert probe_wait_ns(50_000, 1000 * MS) == MIN_WAIT_NS
    assert probe_wait_ns(100 * MS, 1000 * MS) == 400 * MS
    assert probe_wait_ns(800 * MS, 1000 * MS) == 1000 * MS


def test_mtu_at() -> None:
    r = PmtuResult(mtu=1280, first_mtu=1500, drops=(MtuDrop(2, "a", 1400), MtuDrop(4, None, 1280)))
    assert [mtu_at(r, t) for t in range(1, 6)] == [1500, 1400, 1400, 1280, 1280]


def test_unknown_and_stale_answers_are_ignored() -> None:
    path = FakePath([1500, 1500])
    search = PmtuSearch(v6=False, dest_ttl=2, max_ttl=30, hops=[1], small=60, wait_ns=MIN_WAIT_NS,
                        timeout_ns=1000 * MS)
    first = search.to_send(0)
    search.answer(10_000, "198.18.9.9", Answer.DESTINATION, None, 0)  # never sent
    assert not search.done
    for p in first:
        got = path.send(p.size, p.ttl)
        if got is not None:
            search.answer(p.seq, got[0], got[1], got[2], 0)
    second = search.to_send(0)
    assert not search.match(first[0].seq) and search.match(second[0].seq)


def run_unseen(path: FakePath) -> PmtuSearch:
    """A search whose trace saw no router (every Time Exceeded rate-limited away): no ``where``."""
    search = PmtuSearch(v6=False, dest_ttl=path.dest, max_ttl=30, hops=[], small=60, wait_ns=MIN_WAIT_NS,
                        timeout_ns=1000 * MS)
    now, arrivals = 0, []
    while not search.done:
        for probe in search.to_send(now):
            got = path.send(probe.size, probe.ttl)
            if got is not None:
                arrivals.append((probe.seq, got))
        now += path.rtt_ns
        for seq, (address, answer, mtu) in arrivals:
            search.answer(seq, address, answer, mtu, now)
        arrivals.clear()
        search.expire(now)
        wake = search.next_wakeup_ns(now)
        now = max(now, wake or now)
    return search


def test_a_report_from_a_router_the_trace_never_saw_is_put_at_its_hop() -> None:
    # Routers 1-4 send no Time Exceeded (rate-limited): the lowest TTL told "too big" names the hop.
    path = FakePath([1500, 1500, 1400, 1400, 1280, 1280], silent={1, 2, 3, 4, 5})
    search = run_unseen(path)
    assert search.result() == PmtuResult(mtu=1280, first_mtu=1500, drops=(
        MtuDrop(3, path.addr(2), 1400), MtuDrop(5, path.addr(4), 1280)), black_hole=False)


def test_reports_named_by_the_trace_cost_no_sweep() -> None:
    path = FakePath([1500, 1500, 1400, 1400, 1280, 1280])
    search, _ = run(path)
    # One probe and its control per stage: CAP (refused locally), 1500, 1400, 1280.
    assert search.probes_sent == 8


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(68, 9000), min_size=2, max_size=8), st.data())
def test_any_path_any_filtering_is_found_exactly(mtus: list[int], data: st.DataObject) -> None:
    v6 = data.draw(st.booleans())
    if v6:
        mtus = [max(m, IPV6_MIN_MTU) for m in mtus]
    routers = range(1, len(mtus))
    quiet = data.draw(st.sets(st.sampled_from(list(routers))))
    path = FakePath(mtus, quiet=quiet)
    search, _ = run(path, v6=v6, small=80 if v6 else 60)
    want, current = [], mtus[0]
    for k in routers:  # link k + 1 (mtus[k]) is behind router k
        if mtus[k] < current:
            want.append(MtuDrop(k + 1, None if k in quiet else path.addr(k), mtus[k]))
            current = mtus[k]
    assert search.result() == PmtuResult(mtu=min(mtus), first_mtu=mtus[0], drops=tuple(want),
                                         black_hole=any(d.address is None for d in want))
    assert search.hop_mtus() == {t: min(mtus[:t]) for t in range(1, len(mtus) + 1)}


@pytest.mark.parametrize(("mtu", "failing"), [(1400, 3), (1492, 1), (1280, 1), (1420, 2), (1450, 1), (1337, 6)])
def test_common_mtus_take_few_failing_steps(mtu: int, failing: int) -> None:
    # A step that fails costs two waits (one that passes, a round trip): a common MTU behind a
    # black hole is pinned with few failures; another by halving.
    path = FakePath([1500, mtu, mtu], quiet={1})
    sizes: list[int] = []
    real = path.send

    def send(size: int, ttl: int) -> tuple[str | None, Answer, int | None] | None:
        if ttl == 2 and mtu < size < 1500:  # the search aims at hop 2, behind the quiet router
            sizes.append(size)
        return real(size, ttl)

    path.send = send  # type: ignore[method-assign]
    search, _ = run(path)
    assert search.result().mtu == mtu
    assert len(set(sizes)) <= failing  # halving alone fails about six times between 68 and 1500


def test_a_path_that_keeps_falling_is_not_followed_forever() -> None:
    # Every stage told "too big" by one byte less (forged or broken answers): bounded stages.
    mtus = [1500, *range(1499, 1499 - 40, -1)]
    search, _ = run(FakePath(mtus))
    assert search.done and search.result().mtu is None
    assert len(search.result().drops) == MAX_DROPS
