"""Interface counters read with a monotonic timestamp, and the sampling loop of ``info traffic``.

The arithmetic (deltas, wraps, rates over measured time) is pure code in ``netkit.core.traffic``;
this module only reads counters, keeps the schedule and sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from netkit.core.errors import InputError
from netkit.core.sysinfo_models import CounterSnapshot, TrafficReport, TrafficSample
from netkit.core.traffic import samples_between, summarize_traffic
from netkit.io.clock import wall_iso

NS_PER_S = 1_000_000_000


def read_counters(now_ns: Callable[[], int] = time.perf_counter_ns) -> dict[str, CounterSnapshot]:
    """Every interface's raw counters (no wrap correction), stamped with ``now_ns()``.

    The stamp is the midpoint of the clock read before and after the system call, so the error in
    the elapsed time between two readings is at most half of each call's duration.
    """
    import psutil

    before = now_ns()
    raw = psutil.net_io_counters(pernic=True, nowrap=False)
    at = (before + now_ns()) // 2
    return {
        name: CounterSnapshot(
            interface=name, at_ns=at, rx_bytes=c.bytes_recv, tx_bytes=c.bytes_sent, rx_packets=c.packets_recv,
            tx_packets=c.packets_sent, rx_errors=c.errin, tx_errors=c.errout, rx_drops=c.dropin, tx_drops=c.dropout,
        )
        for name, c in raw.items()
    }


def choose_interfaces(requested: Sequence[str], available: Sequence[str], up: set[str]) -> list[str]:
    """The interfaces to watch: those asked for (each must exist), else every one that is up."""
    if requested:
        unknown = [n for n in requested if n not in available]
        if unknown:
            known = ", ".join(available) or "none"
            raise InputError(f"unknown interface {unknown[0]!r} (known: {known})")
        return list(dict.fromkeys(requested))
    return [n for n in available if n in up]


def iter_traffic(interval_s: float, count: int | None = None, interfaces: Sequence[str] = (), *,
                 now_ns: Callable[[], int] = time.perf_counter_ns,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[list[TrafficSample]]:
    """Yield one list of samples (one per interface) per interval; ``count`` None runs until closed.

    Deadlines are ``start + k * interval`` so the schedule does not drift by the work per round;
    rates are divided by the measured time between readings, whatever the sleep really took.
    """
    import psutil

    from netkit.sysinfo.interfaces import interface_names

    # Checked here, before the first next(): a bad --interface fails before any output starts.
    if interval_s <= 0:
        raise InputError("the interval must be more than 0")
    stats = psutil.net_if_stats()
    names = choose_interfaces(interfaces, interface_names(), {n for n, s in stats.items() if s.isup})
    return _schedule(round(interval_s * NS_PER_S), count, names, now_ns, sleep)


def _schedule(interval_ns: int, count: int | None, names: list[str], now_ns: Callable[[], int],
              sleep: Callable[[float], None]) -> Iterator[list[TrafficSample]]:
    prev = read_counters(now_ns)
    start = now_ns()
    seq = 0
    while count is None or seq < count:
        seq += 1
        delay_ns = start + seq * interval_ns - now_ns()
        if delay_ns > 0:
            sleep(delay_ns / NS_PER_S)
        cur = read_counters(now_ns)
        yield samples_between(prev, cur, seq=seq, timestamp=wall_iso(), interfaces=names)
        prev = cur


def sample_traffic(interval_s: float = 1.0, count: int = 1, interfaces: Sequence[str] = ()) -> TrafficReport:
    """Measure ``count`` intervals and return every sample and a whole-run summary (library use)."""
    if count < 1:
        raise InputError("count must be at least 1")
    samples: list[TrafficSample] = []
    for batch in iter_traffic(interval_s, count, interfaces):
        samples.extend(batch)
    return TrafficReport(interval_s=interval_s, samples=tuple(samples), summary=tuple(summarize_traffic(samples)))


class _Stopped(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived: raised from the sampling loop's sleep, so the report is kept."""


def watch_traffic(interval_s: float, count: int | None, interfaces: Sequence[str],
                  on_batch: Callable[[list[TrafficSample]], None],
                  on_start: Callable[[], None] | None = None) -> TrafficReport:
    """``info traffic``'s one entry point: sample until ``count`` intervals or a stop signal.

    ``on_batch`` gets each interval's samples as they are measured (the live view or the per-line
    output). SIGINT, SIGTERM and SIGHUP end the run between readings through the one
    :class:`netkit.io.aio.StopSignal` mechanism; the report then holds every completed interval
    and ``interrupted`` is set. An unknown interface raises ``InputError`` before ``on_start`` (the
    place for a header), so a bad ``--interface`` fails before any output.
    """
    from netkit.io.aio import StopSignal

    samples: list[TrafficSample] = []
    interrupted = False
    with StopSignal() as signals:
        def sleep(delay_s: float) -> None:
            if signals.flag.wait(delay_s):
                raise _Stopped()

        batches = iter_traffic(interval_s, count, interfaces, sleep=sleep)
        if on_start is not None:
            on_start()
        try:
            for batch in batches:
                samples.extend(batch)
                on_batch(batch)
        except (KeyboardInterrupt, _Stopped):
            interrupted = True
    return TrafficReport(interval_s=interval_s, samples=tuple(samples), summary=tuple(summarize_traffic(samples)),
                         interrupted=interrupted)
