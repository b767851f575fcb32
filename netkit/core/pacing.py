"""When a paced sender counts as having kept up: one rule for every meter that takes a rate.

A sender that reached less than ``KEEP_UP_SHARE`` of the asked rate could not keep up; the meters
say so once on stderr and report the achieved rate. A shortfall is never counted as loss.
"""

from __future__ import annotations

#: Below this share of the asked rate, the sender could not keep up (said once on stderr).
KEEP_UP_SHARE = 0.95


def fell_behind(asked_rate: float | None, achieved_rate: float | None) -> bool:
    """True when the sender reached less than ``KEEP_UP_SHARE`` of the asked rate (any unit, both alike).

    ``asked_rate`` None or 0 (as fast as possible) never falls behind; an unknown achieved rate
    (nothing sent, no time measured) is not judged here.
    """
    if asked_rate is None or asked_rate <= 0 or achieved_rate is None:
        return False
    return achieved_rate < asked_rate * KEEP_UP_SHARE
