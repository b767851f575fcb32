"""The ``info traffic`` sampling loop with a fake clock: schedule without drift, rates over real time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import netkit.sysinfo.traffic as traffic_mod
from netkit.core.errors import InputError
from netkit.core.sysinfo_models import CounterSnapshot
from netkit.sysinfo.traffic import choose_interfaces, iter_traffic

NS = 1_000_000_000


class FakeClock:
    """A clock whose sleeps overshoot by ``lag`` seconds, like a busy machine."""

    def __init__(self, lag: float = 0.0) -> None:
        self.now = 5 * NS
        self.lag = lag
        self.sleeps: list[float] = []

    def now_ns(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += round((seconds + self.lag) * NS)


def fake_reader(clock: FakeClock, bytes_per_s: int) -> Callable[..., dict[str, CounterSnapshot]]:
    def read(now_ns: Callable[[], int]) -> dict[str, CounterSnapshot]:
        t = now_ns()
        total = (t - 5 * NS) * bytes_per_s // NS
        return {"lo": CounterSnapshot("lo", t, total, total, 0, 0, 0, 0, 0, 0)}

    return read


def test_rates_use_measured_elapsed_time_and_deadlines_do_not_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(lag=0.05)  # every sleep takes 50 ms longer than asked
    monkeypatch.setattr(traffic_mod, "read_counters", fake_reader(clock, 1_000_000))
    batches = list(iter_traffic(0.2, 3, ["lo"], now_ns=clock.now_ns, sleep=clock.sleep))
    assert [b[0].seq for b in batches] == [1, 2, 3]
    for b in batches:
        # The true rate, not 1 MB * 0.25 / 0.2: divided by the time that really passed.
        assert b[0].rx_bytes_per_s == pytest.approx(1_000_000, rel=1e-6)
    # Deadlines are start + k * interval: after an overshoot the next sleep is shorter.
    assert clock.sleeps[0] == pytest.approx(0.2)
    assert clock.sleeps[1] == pytest.approx(0.15)


def test_bad_interface_fails_before_the_first_reading() -> None:
    with pytest.raises(InputError, match="unknown interface 'no-such-if0'"):
        iter_traffic(1.0, 1, ["no-such-if0"])


def test_choose_interfaces() -> None:
    assert choose_interfaces([], ["lo", "eth0", "dummy"], {"lo", "eth0"}) == ["lo", "eth0"]
    assert choose_interfaces(["eth0", "lo", "eth0"], ["lo", "eth0"], set()) == ["eth0", "lo"]
    with pytest.raises(InputError, match="known: lo"):
        choose_interfaces(["x"], ["lo"], {"lo"})
