"""Traffic rates from two readings of interface counters: pure code, times passed in as ns.

Two things make naive ``(b - a) / interval`` wrong, and both are handled here:

- Elapsed time: the divisor is the measured time between the two counter reads, not the
  requested interval (a 0.5 s sleep that took 0.52 s is not "per second" material either way).
- Counters that go down. Kernels expose counters 32 or 64 bits wide (32-bit kernels and some
  drivers wrap at 2**32). A counter that went down either wrapped or was reset because the
  interface was re-created. The rule: if the previous value was in the upper half of a width
  (32 or 64 bits), the counter wrapped at that width and the delta is taken modulo it; otherwise it
  restarted from zero and the delta is the new value. A 64-bit counter never wraps in practice (at
  100 Gbit/s it takes 46 years) and a reset from a low value cannot be told from a 32-bit wrap of
  a small counter, so the upper-half test is what keeps a reset from counting as 4 GiB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from netkit.core.sysinfo_models import COUNTER_NAMES, CounterSnapshot, TrafficSample

NS_PER_S = 1_000_000_000
_WIDTHS = (32, 64)


def counter_delta(prev: int, cur: int) -> tuple[int, str]:
    """How much a counter grew from ``prev`` to ``cur``, and how: ``ok``, ``wrap`` or ``reset``."""
    if prev < 0 or cur < 0:
        raise ValueError("counters are never negative")
    if cur >= prev:
        return cur - prev, "ok"
    for bits in _WIDTHS:
        top = 1 << bits
        if prev < top:
            if prev >= top >> 1:
                return cur + top - prev, "wrap"
            break
    return cur, "reset"


def rate(delta: int, elapsed_ns: int) -> float:
    """Per second, over the measured elapsed time (0.0 when no time passed)."""
    if elapsed_ns <= 0:
        return 0.0
    return delta * NS_PER_S / elapsed_ns


def sample_between(prev: CounterSnapshot, cur: CounterSnapshot, *, seq: int = 0,
                   timestamp: str | None = None) -> TrafficSample:
    """The rates of one interface between two snapshots (``cur`` taken after ``prev``)."""
    if prev.interface != cur.interface:
        raise ValueError(f"snapshots of different interfaces: {prev.interface} and {cur.interface}")
    elapsed_ns = cur.at_ns - prev.at_ns
    if elapsed_ns < 0:
        raise ValueError("the second snapshot was taken before the first")
    deltas: dict[str, int] = {}
    wrapped: list[str] = []
    reset: list[str] = []
    for name in COUNTER_NAMES:
        d, how = counter_delta(getattr(prev, name), getattr(cur, name))
        deltas[name] = d
        if how == "wrap":
            wrapped.append(name)
        elif how == "reset":
            reset.append(name)
    return TrafficSample(
        seq=seq,
        timestamp=timestamp,
        interface=cur.interface,
        elapsed_s=elapsed_ns / NS_PER_S,
        rx_bytes=deltas["rx_bytes"],
        tx_bytes=deltas["tx_bytes"],
        rx_packets=deltas["rx_packets"],
        tx_packets=deltas["tx_packets"],
        rx_bytes_per_s=rate(deltas["rx_bytes"], elapsed_ns),
        tx_bytes_per_s=rate(deltas["tx_bytes"], elapsed_ns),
        rx_packets_per_s=rate(deltas["rx_packets"], elapsed_ns),
        tx_packets_per_s=rate(deltas["tx_packets"], elapsed_ns),
        rx_errors=deltas["rx_errors"],
        tx_errors=deltas["tx_errors"],
        rx_drops=deltas["rx_drops"],
        tx_drops=deltas["tx_drops"],
        wrapped=tuple(wrapped),
        reset=tuple(reset),
    )


def samples_between(prev: Mapping[str, CounterSnapshot], cur: Mapping[str, CounterSnapshot], *,
                    seq: int = 0, timestamp: str | None = None,
                    interfaces: Sequence[str] | None = None) -> list[TrafficSample]:
    """Samples for every interface present in both readings, in ``interfaces`` order (or ``cur``'s).

    An interface that appeared or vanished between the readings has no rate for that interval.
    """
    names = list(interfaces) if interfaces is not None else list(cur)
    return [sample_between(prev[n], cur[n], seq=seq, timestamp=timestamp) for n in names if n in prev and n in cur]


def summarize_traffic(samples: Sequence[TrafficSample]) -> list[TrafficSample]:
    """One row per interface for the whole run: summed counts over summed elapsed time.

    Summing the per-interval deltas (not last minus first) keeps wraps and resets handled.
    ``seq`` is 0 and ``timestamp`` the last sample's.
    """
    order: list[str] = []
    acc: dict[str, dict[str, int]] = {}
    elapsed: dict[str, float] = {}
    wrapped: dict[str, set[str]] = {}
    reset: dict[str, set[str]] = {}
    last_ts: dict[str, str | None] = {}
    for s in samples:
        if s.interface not in acc:
            order.append(s.interface)
            acc[s.interface] = dict.fromkeys(COUNTER_NAMES, 0)
            elapsed[s.interface] = 0.0
            wrapped[s.interface] = set()
            reset[s.interface] = set()
        for name in COUNTER_NAMES:
            acc[s.interface][name] += getattr(s, name)
        elapsed[s.interface] += s.elapsed_s
        wrapped[s.interface].update(s.wrapped)
        reset[s.interface].update(s.reset)
        last_ts[s.interface] = s.timestamp
    out = []
    for name in order:
        a = acc[name]
        secs = elapsed[name]

        def per_s(v: int, secs: float = secs) -> float:
            return v / secs if secs > 0 else 0.0

        out.append(TrafficSample(
            seq=0, timestamp=last_ts[name], interface=name, elapsed_s=secs,
            rx_bytes=a["rx_bytes"], tx_bytes=a["tx_bytes"], rx_packets=a["rx_packets"],
            tx_packets=a["tx_packets"], rx_bytes_per_s=per_s(a["rx_bytes"]), tx_bytes_per_s=per_s(a["tx_bytes"]),
            rx_packets_per_s=per_s(a["rx_packets"]), tx_packets_per_s=per_s(a["tx_packets"]),
            rx_errors=a["rx_errors"], tx_errors=a["tx_errors"], rx_drops=a["rx_drops"], tx_drops=a["tx_drops"],
            wrapped=tuple(n for n in COUNTER_NAMES if n in wrapped[name]),
            reset=tuple(n for n in COUNTER_NAMES if n in reset[name]),
        ))
    return out
