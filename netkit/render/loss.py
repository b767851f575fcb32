"""How ``netkit measure loss`` looks: a one-line progress view while sending, then the summary.

The progress shows on stderr only where a person watches (a :class:`LiveScreen`, erased at the end
and after Ctrl-C); ``--format jsonl`` gets one ``progress`` object a second instead. The summary is
the one ``measure latency`` prints (:func:`netkit.render.latency.emit_summary`), titled with the
rate asked for and the rate achieved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.core.latency_models import LossConfig, LossResult, ReflectorKind, fell_short, shortfall_note
from netkit.core.units import format_count, format_duration, format_rate
from netkit.render.latency import emit_summary
from netkit.render.live import ScreenView

if TYPE_CHECKING:  # pragma: no cover
    from rich.text import Text

    from netkit.core.accounting import Accounting
    from netkit.render.live import LiveScreen
    from netkit.render.output import Output

NS = 1_000_000_000


def progress_text(target: str, duration_s: float, sent: int, received: int, lost_so_far: int, elapsed_ns: int,
                  width: int | None = None) -> str:
    """The live line, ``127.0.0.1:9000: sent 2,000  received 1,998  lost so far 0  2.00s of 10.0s``,
    in the longest form that fits ``width`` (the figures stay whole: the words go first)."""
    sent_s, received_s, lost_s = format_count(sent), format_count(received), format_count(lost_so_far)
    time_s = f"{format_duration(elapsed_ns / NS)} of {format_duration(duration_s)}"
    forms = [f"measure loss {target}: sent {sent_s}  received {received_s}  lost so far {lost_s}  {time_s}",
             f"{target}: sent {sent_s}  received {received_s}  lost so far {lost_s}  {time_s}",
             f"{target}: sent {sent_s}  recv {received_s}  lost {lost_s}  {time_s}",
             f"{target}: sent {sent_s}  recv {received_s}  lost {lost_s}"]
    if width is None:
        return forms[0]
    return next((f for f in forms if len(f) <= width), forms[-1])


class LossProgress(ScreenView):
    """``with LossProgress(out, target, cfg) as progress: run_loss(..., progress=progress)``."""

    def __init__(self, out: Output, target: str, cfg: LossConfig) -> None:
        from netkit.render.live import LiveScreen

        self.out = out
        self.target = target
        self.cfg = cfg
        self._state = (0, 0, 0, 0)  # sent, received, lost so far, elapsed ns
        self._last_second = -1
        self.screen: LiveScreen | None = LiveScreen(out, self.draw) if out.format == "table" else None

    def draw(self) -> Text:
        from rich.text import Text

        width = self.screen.width if self.screen is not None else None
        return Text(progress_text(self.target, self.cfg.duration_s, *self._state, width=width),
                    no_wrap=True, overflow="fold")

    def __call__(self, acc: Accounting, elapsed_ns: int) -> None:
        self._state = (acc.sent, acc.received, acc.expired, elapsed_ns)
        second = elapsed_ns // NS
        if self.out.format == "jsonl" and second != self._last_second:
            self._last_second = second
            self.out.jsonl({"event": "progress", "target": self.target, "elapsed_s": round(elapsed_ns / NS, 3),
                            "sent": acc.sent, "received": acc.received, "lost_so_far": acc.expired})


def loss_title(result: LossResult) -> str:
    achieved = "-" if result.achieved_pps is None else format_rate(result.achieved_pps, "pps")
    stopped = " (stopped early)" if result.interrupted else ""
    return f"measure loss: {format_rate(result.rate_pps, 'pps')} requested, {achieved} achieved{stopped}"


def print_loss(out: Output, result: LossResult, *, samples: bool = False) -> None:
    """What ``measure loss`` says after the run: what answered (stderr), then the summary."""
    res = result.target
    if res.reflector is ReflectorKind.PLAIN:
        out.info(f"netkit: {res.target}: plain UDP echo (not netkit's reflector): round trip only, "
                 "no per-direction loss")
    elif res.reflector is ReflectorKind.NETKIT and res.acc.lost_forward is None and res.acc.sent:
        out.info(f"netkit: {res.target}: the reflector's final count did not arrive: no per-direction loss")
    if fell_short(res, result.rate_pps):
        out.warn(shortfall_note(res.target, result.rate_pps, result.achieved_pps or 0.0))
    emit_summary(out, result.to_json(samples=samples), [res], result.thresholds, loss_title(result),
                 histograms=False)
