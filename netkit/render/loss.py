"""How ``netkit measure loss`` looks: a one-line progress view while sending, then the summary.

The progress shows on stderr only where a person watches (a :class:`LiveScreen`, erased at the end
and after Ctrl-C); ``--format jsonl`` gets one ``progress`` object a second instead. The summary is
the one ``measure latency`` prints (:func:`netkit.render.latency.emit_summary`), titled with the
rate asked for and the rate achieved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.core.latency_models import LossConfig, LossResult, ReflectorKind, shortfall_note
from netkit.core.units import format_count, format_duration, format_rate
from netkit.render.latency import emit_summary

if TYPE_CHECKING:  # pragma: no cover
    from rich.text import Text

    from netkit.core.accounting import Accounting
    from netkit.render.live import LiveScreen
    from netkit.render.output import Output

NS = 1_000_000_000


def progress_text(target: str, rate_pps: float, duration_s: float, sent: int, received: int, lost_so_far: int,
                  elapsed_ns: int) -> str:
    """The live line: ``measure loss 127.0.0.1:9000 at 1,000 pps: sent 2,000 ...``."""
    return (f"measure loss {target} at {format_rate(rate_pps, 'pps')}: sent {format_count(sent)}  "
            f"received {format_count(received)}  lost so far {format_count(lost_so_far)}  "
            f"{format_duration(elapsed_ns / NS)} of {format_duration(duration_s)}")


class LossProgress:
    """``with LossProgress(out, target, cfg) as progress: run_loss(..., progress=progress)``."""

    def __init__(self, out: Output, target: str, cfg: LossConfig) -> None:
        from netkit.render.live import LiveScreen

        self.out = out
        self.target = target
        self.cfg = cfg
        self._line = progress_text(target, cfg.rate_pps, cfg.duration_s, 0, 0, 0, 0)
        self._last_second = -1
        self.screen: LiveScreen | None = LiveScreen(out, self.draw) if out.format == "table" else None

    def draw(self) -> Text:
        from rich.text import Text

        return Text(self._line, no_wrap=True, overflow="crop")

    def __call__(self, acc: Accounting, elapsed_ns: int) -> None:
        self._line = progress_text(self.target, self.cfg.rate_pps, self.cfg.duration_s, acc.sent, acc.received,
                                   acc.expired, elapsed_ns)
        second = elapsed_ns // NS
        if self.out.format == "jsonl" and second != self._last_second:
            self._last_second = second
            self.out.jsonl({"event": "progress", "target": self.target, "elapsed_s": round(elapsed_ns / NS, 3),
                            "sent": acc.sent, "received": acc.received, "lost_so_far": acc.expired})

    def __enter__(self) -> LossProgress:
        if self.screen is not None:
            self.screen.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.screen is not None:
            self.screen.__exit__(*exc)


def loss_title(result: LossResult) -> str:
    achieved = "-" if result.achieved_pps is None else format_rate(result.achieved_pps, "pps")
    return f"measure loss: {format_rate(result.rate_pps, 'pps')} requested, {achieved} achieved"


def print_loss(out: Output, result: LossResult, *, samples: bool = False) -> None:
    """What ``measure loss`` says after the run: what answered (stderr), then the summary."""
    from netkit.core.pacing import fell_behind

    res = result.target
    if res.reflector is ReflectorKind.PLAIN:
        out.info(f"netkit: {res.target}: plain UDP echo (not netkit's reflector): round trip only, "
                 "no per-direction loss")
    elif res.reflector is ReflectorKind.NETKIT and res.acc.lost_forward is None and res.acc.sent:
        out.info(f"netkit: {res.target}: the reflector's final count did not arrive: no per-direction loss")
    if fell_behind(result.rate_pps, result.achieved_pps):
        out.warn(shortfall_note(res.target, result.rate_pps, result.achieved_pps or 0.0))
    emit_summary(out, result.to_json(samples=samples), [res], result.thresholds, loss_title(result),
                 histograms=False)
