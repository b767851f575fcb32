"""``netkit trace``: rounds of TTL-limited probes to each target, concurrently (the io side).

The probe plan, the matching of answers to probes and the per-hop statistics are pure code in
``netkit.core.trace_plan`` / ``netkit.core.trace_hops``; this module owns the sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.targets import Target
    from netkit.core.trace_models import HopEvent, TargetTrace, TraceConfig, TraceResult


@dataclass
class LiveTrace:
    """One target while a run goes on, for a live view: ``snapshot()`` is its trace so far."""

    label: str
    snapshot: Callable[[], TargetTrace]


#: Gets every probe outcome as it happens (jsonl events): the target's label and the event.
EventSink = Callable[[str, "HopEvent"], None]


def run_trace(targets: list[Target], cfg: TraceConfig, *, max_loss_pct: float | None = None,
              max_rtt_ms: float | None = None, on_event: EventSink | None = None,
              on_start: Callable[[list[LiveTrace]], None] | None = None) -> TraceResult:
    """``netkit trace`` from its config to its result: every target at once, until the rounds or the
    duration are done or SIGINT/SIGTERM/SIGHUP arrives (then ``interrupted`` is True and the result
    holds what was measured). ``on_event`` raising BrokenPipeError stops the run; the error is raised
    again after it. Raises RuntimeFailure (exit 3) when the method cannot run here (no permission)."""
    raise NotImplementedError
