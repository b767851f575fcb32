"""What one ``netkit measure responsiveness`` run does (pure data): the draft's test parameters.

The IETF IPPM draft "Responsiveness under Working Conditions" names the parameters (its "Test
Parameters" table): MAD, ID, TMP, SDT, INP, INC, MNP, MPS, PTC. netkit keeps the draft's values except
the interval duration: ID is 1 s here (the draft says 5 s) so that a direction ends in about 10-20 s, as
Apple's networkQuality does; with MAD 4 the moving averages then span 4 s of load.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: The wall-clock bound of a whole run when none is given (both directions, idle phase included).
DEFAULT_MAX_DURATION_S = 40.0


class Direction(str, enum.Enum):
    """Which load the run generates: ``download``, ``upload``, or ``both`` (one after the other,
    or at once with ``parallel``)."""

    DOWNLOAD = "download"
    UPLOAD = "upload"
    BOTH = "both"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class AlgorithmParams:
    """The draft's test parameters (names as in its table)."""

    mad: int = 4  # moving average distance: intervals in a moving average
    interval_s: float = 1.0  # ID: the draft's 5 s shortened so a direction takes 10-20 s
    trim_percent: float = 95.0  # TMP: the one-sided trimmed mean keeps the lowest 95 %
    sdt: float = 0.05  # standard deviation tolerance, a fraction of the moving average
    initial_connections: int = 1  # INP
    add_connections: int = 1  # INC: added each interval until goodput saturates
    max_connections: int = 16  # MNP
    max_probes_per_s: float = 100.0  # MPS: foreign + self probe pairs per second at most
    probe_capacity_share: float = 0.05  # PTC: probe traffic at most this share of the goodput
    stage_max_s: float = 10.0  # each stage (goodput, then responsiveness) ends by this at the latest

    def __post_init__(self) -> None:
        if self.mad < 2:
            raise ValueError("MAD must be at least 2 (a standard deviation needs two values)")
        if self.interval_s <= 0 or self.stage_max_s <= 0:
            raise ValueError("interval and stage durations must be positive")
        if not 0 < self.trim_percent <= 100:
            raise ValueError("the trimmed-mean percentage is in (0, 100]")
        if self.sdt <= 0:
            raise ValueError("the standard deviation tolerance must be positive")
        if not 1 <= self.initial_connections <= self.max_connections:
            raise ValueError("the initial connections must be between 1 and the maximum")
        if self.add_connections < 0:
            raise ValueError("connections added per interval cannot be negative")
        if self.max_probes_per_s <= 0 or not 0 < self.probe_capacity_share <= 1:
            raise ValueError("probe rate and capacity share must be positive")


#: Bytes one probe exchanges, the draft's estimates (its "Measuring Responsiveness"): a foreign probe
#: (TCP + TLS handshakes and a request) about 5000, a self probe about 1000.
FOREIGN_PROBE_BYTES = 5000
SELF_PROBE_BYTES = 1000


@dataclass(frozen=True)
class ResponsivenessConfig:
    """What ``measure responsiveness`` does.

    ``url`` is the configuration document's URL or a bare ``https://host:port`` (the well-known
    path). ``http1`` forces HTTP/1.1 (h2 is asked for by ALPN otherwise). ``max_duration_s`` bounds
    the whole run, wall clock; each stage is also bounded by ``params.stage_max_s``.
    """

    url: str
    direction: Direction = Direction.BOTH
    parallel: bool = False
    http1: bool = False
    params: AlgorithmParams = AlgorithmParams()
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    idle_probes: int = 5
    connect_timeout_s: float = 5.0
    io_timeout_s: float = 10.0  # a load connection that moves no byte for this long has failed
    insecure: bool = False
    cafile: str | None = None
    family: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", Direction(self.direction))
        if self.max_duration_s <= 0:
            raise ValueError("the maximum duration must be positive")
        if self.idle_probes < 1:
            raise ValueError("at least one idle probe")
        if self.connect_timeout_s <= 0 or self.io_timeout_s <= 0:
            raise ValueError("timeouts must be positive")

    @property
    def directions(self) -> tuple[Direction, ...]:
        """The directions measured, in order (a ``parallel`` run measures them at once)."""
        if self.direction is Direction.BOTH:
            return (Direction.DOWNLOAD, Direction.UPLOAD)
        return (self.direction,)


def stage_budget_s(max_duration_s: float, sequential_directions: int, idle_s: float = 1.0,
                   interval_s: float = 1.0) -> float:
    """How long each stage may run so that the whole run fits ``max_duration_s``: the time left after
    the idle phase, shared by two stages per direction run one after the other, at most 10 s (the
    draft's example allots 10 s to each stage). A stage ends at an interval's end: whole intervals,
    at least one."""
    left = max(max_duration_s - idle_s, 1.0)
    share = min(10.0, left / (2 * max(1, sequential_directions)))
    return max(1, int(share / interval_s + 1e-9)) * interval_s
