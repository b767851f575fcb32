"""What a :class:`netkit.io.clients.pool.ConnectionPool` is told (:class:`PoolConfig`) and what
it reports (:class:`PoolStats`). Pure data; seconds as floats, the reconnect schedule as a
:class:`netkit.core.backoff.Backoff` in nanoseconds."""

from __future__ import annotations

from dataclasses import dataclass

from netkit.core.backoff import Backoff

NS = 1_000_000_000

#: The reconnect schedule: the same defaults as ``netkit probe`` (0.5 s doubling, at most 10 s).
DEFAULT_BACKOFF = Backoff(500_000_000, 2.0, 10 * NS)


@dataclass(frozen=True)
class PoolConfig:
    """How a :class:`netkit.io.clients.pool.ConnectionPool` behaves. Seconds as floats."""

    size: int = 10
    connect_timeout_s: float = 5.0
    #: How long ``acquire()`` waits for a free connection before ``PoolTimeout``.
    acquire_timeout_s: float = 5.0
    #: Idle connections are checked this often (0: never).
    health_interval_s: float = 1.0
    backoff: Backoff = DEFAULT_BACKOFF
    jitter: bool = False
    #: A slot that cannot reconnect within this long after a drop gives up (a bound, not a goal).
    reconnect_window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("pool size must be at least 1")
        if self.connect_timeout_s <= 0 or self.acquire_timeout_s < 0 or self.health_interval_s < 0:
            raise ValueError("pool timeouts must be positive")


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of a pool's counters."""

    size: int
    open: int
    idle: int
    in_use: int
    connects: int  # successful connects, first ones and reconnects
    reconnects: int  # successful connects that replaced a dropped connection
    drops: int  # connections lost while the pool was running (peer closed, reset, closed by a check)
    connect_failures: int
    health_failures: int
    acquire_timeouts: int
    gave_up: int  # slots that could not reconnect within the reconnect window
