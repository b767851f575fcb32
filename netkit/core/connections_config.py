"""What one ``netkit measure connections`` run does (pure data), and how a failed attempt is named.

The CLI builds a :class:`ConnectionsConfig`; :mod:`netkit.io.measure.connection_rate` runs it.
:func:`error_kind` maps an ``errno`` to the kind the results count, so the meter and the C connect
loop in ``bench/`` name the same failure the same way.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass

#: How long a run opens connections when neither a duration nor a count is given.
DEFAULT_DURATION_S = 10.0

#: Error kinds, always all present in results (zero when none happened). ``eaddrnotavail`` is
#: local port exhaustion (every ephemeral port toward the target in use or in TIME_WAIT);
#: ``emfile`` is this process out of descriptors (EMFILE or ENFILE); ``closed`` is a peer that
#: closed before the ``--expect`` bytes arrived.
ERROR_KINDS = ("refused", "timeout", "reset", "closed", "eaddrnotavail", "emfile", "unreachable", "other")

_KIND_OF_ERRNO = {
    errno.ECONNREFUSED: "refused",
    errno.ETIMEDOUT: "timeout",
    errno.ECONNRESET: "reset",
    errno.EPIPE: "reset",
    errno.ECONNABORTED: "reset",
    errno.EADDRNOTAVAIL: "eaddrnotavail",
    errno.EADDRINUSE: "eaddrnotavail",  # no free 4-tuple: the same exhaustion, other wording
    errno.EMFILE: "emfile",
    errno.ENFILE: "emfile",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
}


def error_kind(err: int) -> str:
    """The kind (one of :data:`ERROR_KINDS`) a failed attempt with ``errno`` ``err`` counts as."""
    return _KIND_OF_ERRNO.get(err, "other")


class CloseMode(str, enum.Enum):
    """How the client ends each connection; the value is what results publish as ``close``."""

    FIN = "fin"  # close(): the client's side keeps the 4-tuple in TIME_WAIT
    RST = "rst"  # SO_LINGER 0 then close(): a reset, no TIME_WAIT

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ConnectionsConfig:
    """What ``measure connections`` does. ``close`` may be given as its string value."""

    host: str
    port: int
    concurrency: int = 1
    duration_s: float | None = DEFAULT_DURATION_S
    count: int | None = None  # stop after this many attempts (with a duration: whichever first)
    close: CloseMode = CloseMode.FIN
    send: int = 0  # bytes sent on each connection once it is up
    expect: int = 0  # bytes awaited before closing
    timeout_s: float = 2.0  # every attempt, connect and exchange, ends within this
    family: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "close", CloseMode(self.close))
        except ValueError:
            raise ValueError(f"unknown close mode {self.close!r}") from None
        if self.concurrency < 1:
            raise ValueError("at least one connection at a time")
        if self.duration_s is None and self.count is None:
            raise ValueError("give a duration or a count")
        if self.send < 0 or self.expect < 0:
            raise ValueError("--send and --expect are byte counts")
        if self.timeout_s <= 0:
            raise ValueError("the timeout must be positive")

    @property
    def exchange(self) -> bool:
        """True when each connection sends or awaits bytes (a transaction, as netperf's TCP_CRR)."""
        return self.send > 0 or self.expect > 0
