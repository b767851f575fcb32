"""What every ``netkit serve`` command does around its server: stdout that never blocks serving, the
guarded event sink, and the summary at the end (unless the reader went away: the quiet exit 141)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.serve_models import ServerEventSink
    from netkit.io.stdout_queue import ServerStdout
    from netkit.render.output import Output


def start_serving(out: Output, write_event: Callable[[dict[str, Any]], None]) -> tuple[ServerStdout, ServerEventSink]:
    """Point ``out.stdout`` at a queue a running server never waits on; the guarded event sink that
    hands each event to ``write_event``."""
    from netkit.io.stdout_queue import ServerStdout

    serving = ServerStdout(out.stdout, out.stderr)
    out.stdout = serving.stream
    # An error ends the command before finish_serving: still give queued events their short chance.
    click.get_current_context().call_on_close(lambda: serving.close(idle_s=0.2, max_s=1.0, final=False))
    return serving, serving.guarded(write_event)


def finish_serving(serving: ServerStdout, print_summary: Callable[[int | None], None]) -> int:
    """``print_summary(events dropped)`` after the events queued before it, then flush: exit 0."""
    serving.check()
    serving.summary_next()
    print_summary(serving.dropped)
    serving.close()
    return ExitCode.OK
