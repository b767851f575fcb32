"""The one live display every command uses: a view redrawn on stderr while a command runs.

It shows only where a person watches (stderr is a terminal and not ``-q``). It is transient: when
the command ends, normally or by Ctrl-C, the live view is erased, so the final result printed after
it is the clean last screen, never a frozen copy of the live view above it or a title twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import RenderableType
    from rich.live import Live

    from netkit.render.output import Output


#: Columns a live view leaves free at its right for the terminal's echo of Ctrl-C.
ECHO_ROOM = 2


class LiveScreen:
    """``with LiveScreen(out, draw) as screen: ... screen.refresh()``.

    ``draw`` builds the whole view from the command's state each time it is shown; with
    ``auto_refresh`` the view is also redrawn ``refresh_per_second`` times a second by Rich's thread
    (for views whose figures change between events, such as an elapsed time).
    """

    def __init__(self, out: Output, draw: Callable[[], RenderableType], *, refresh_per_second: float = 4,
                 auto_refresh: bool = True) -> None:
        self.out = out
        self.draw = draw
        self.refresh_per_second = refresh_per_second
        self.auto_refresh = auto_refresh
        self._live: Live | None = None

    @property
    def active(self) -> bool:
        """True while the view is on screen (stderr is a terminal and the command is not quiet)."""
        return self._live is not None

    @property
    def width(self) -> int:
        """Columns the view may use: the terminal's, less room for the terminal's echo of Ctrl-C
        (``^C``). Were that echo to wrap onto a new line, the erase at the end would miss the view's
        first line, and its title would be seen twice above the final result."""
        return max(int(self.out.err_console.width) - ECHO_ROOM, 20)

    def __enter__(self) -> LiveScreen:
        if self.out.live_ok:
            from rich.live import Live

            self._live = Live(get_renderable=self.draw, console=self.out.err_console,
                              refresh_per_second=self.refresh_per_second, auto_refresh=self.auto_refresh,
                              transient=True, redirect_stdout=False, redirect_stderr=False)
            self._live.__enter__()
        return self

    def refresh(self) -> None:
        """Redraw now (after an event the viewer should see at once)."""
        if self._live is not None:
            self._live.refresh()

    def __exit__(self, *exc: Any) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.__exit__(None, None, None)


ViewT = TypeVar("ViewT", bound="ScreenView")


class ScreenView:
    """A command's progress view that may own a :class:`LiveScreen` (None where nothing is drawn
    live): ``with view:`` shows the screen, and leaving, Ctrl-C included, erases it."""

    screen: LiveScreen | None = None

    def __enter__(self: ViewT) -> ViewT:
        if self.screen is not None:
            self.screen.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.screen is not None:
            self.screen.__exit__(*exc)


class IntervalRow(Protocol):
    """A meter's per-interval figures: its jsonl event is ``to_json()``."""

    def to_json(self) -> dict[str, Any]: ...


RowT = TypeVar("RowT", bound=IntervalRow)


class IntervalProgress(ScreenView, Generic[RowT]):
    """Where a meter's intervals go while it runs: jsonl events, a live table of the last
    ``live_rows`` on a terminal, or one plain line each.

    ``with Progress(out) as progress: meter(cfg, sink=progress.add)``; a meter's subclass says how
    its rows look (:meth:`live_table`, :meth:`line`).
    """

    live_rows = 10

    def __init__(self, out: Output) -> None:
        self.out = out
        self.rows: list[RowT] = []
        self.screen: LiveScreen | None = None
        if out.format == "table" and out.live_ok:
            self.screen = LiveScreen(out, self._draw, refresh_per_second=1, auto_refresh=False)

    def live_table(self, rows: Sequence[RowT], width: int | None) -> RenderableType:  # pragma: no cover
        raise NotImplementedError

    def line(self, row: RowT, width: int | None) -> str:  # pragma: no cover
        raise NotImplementedError

    def _draw(self) -> RenderableType:
        assert self.screen is not None
        return self.live_table(self.rows, self.screen.width)

    def add(self, row: RowT) -> None:
        out = self.out
        if out.format == "jsonl":
            out.jsonl(row.to_json())
        elif out.format != "table":
            return
        elif self.screen is not None:
            self.rows.append(row)
            del self.rows[:-self.live_rows]
            self.screen.refresh()
        else:
            out.line(self.line(row, out.width))
