"""The output contract in one place.

- Results go to stdout; progress, logs and diagnostics go to stderr.
- ``table`` renders Rich tables for people; ``json`` is one document, ``jsonl`` one object per line
  (flushed, so a pipe sees each event as it happens), ``csv`` one row per record.
- JSON always goes through ``json.dumps``, never through Rich, so a peer's bytes cannot become
  markup, and field names are exactly those of the result dataclasses.
- Anything from the network is shown through ``safe_text`` and Rich ``Text`` (markup off).

Commands get an :class:`Output` from the Click context (``netkit.cli.context``); tests build one
around ``io.StringIO`` streams.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from netkit.core.escape import UNSAFE_NON_C0, safe_text

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console, RenderableType

FORMATS = ("table", "json", "jsonl", "csv")


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, enums, bytes, tuples and non-finite floats to plain JSON values.

    Non-finite floats become null (JSON has no NaN); bytes become escaped text.
    """
    # Fast paths first: a full port scan hands over 65,535 records of plain values, and the
    # dataclass/enum checks below cost more than the values themselves.
    t = type(obj)
    if t is str or t is int or t is bool or obj is None:
        return obj
    if t is float:
        return obj if math.isfinite(obj) else None
    if t is dict:
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if t is list or t is tuple:
        return [to_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return safe_text(bytes(obj))
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# json.dumps escapes C0 controls but, with ensure_ascii=False, passes C1 controls (U+009B is a
# one-character CSI), bidi overrides and line separators through raw. Inside a JSON document these
# can only occur in strings, where a \uXXXX escape means the same: so escape them, and a JSON
# document printed to a terminal can never act on it. Other non-ASCII text stays readable.
_JSON_UNSAFE = re.compile(f"[{UNSAFE_NON_C0}]")  # the same set as safe_text (core.escape)


def dumps(obj: Any, *, indent: int | None = None) -> str:
    text = json.dumps(to_jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def _csv_scalar(v: Any) -> Any:
    """A value spelled as JSON spells it (``true``/``false``; null as an empty cell), so that a
    script reading CSV and one reading JSON compare against the same words."""
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    return v


def _csv_value(v: Any) -> Any:
    """One CSV cell: :func:`_csv_scalar`, with control characters in text escaped (peer bytes)."""
    v = _csv_scalar(v)
    return safe_text(v) if isinstance(v, str) else v


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"rtt_ms": {"p50": 1}}`` -> ``{"rtt_ms.p50": 1}`` for CSV columns; lists joined by ``;``."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list):
            out[name] = ";".join(str(_csv_scalar(v)) for v in value)
        else:
            out[name] = value
    return out


def _stream_is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Output:
    """Where and how a command writes. One per invocation."""

    def __init__(
        self,
        *,
        format: str = "table",
        quiet: bool = False,
        verbose: int = 0,
        color: bool | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}")
        self.format = format
        self.quiet = quiet
        self.verbose = verbose
        self.stdout: IO[str] = stdout if stdout is not None else sys.stdout
        self.stderr: IO[str] = stderr if stderr is not None else sys.stderr
        self.color = color  # None: decide by terminal and NO_COLOR (Rich does that)
        self._out_console: Console | None = None
        self._err_console: Console | None = None
        self._csv_writer: Any = None
        self._csv_fields: list[str] | None = None

    # ----- facts about the streams -------------------------------------------------------
    @property
    def machine(self) -> bool:
        """True for json/jsonl/csv: no tables, no live views on stdout."""
        return self.format != "table"

    @property
    def stdout_is_tty(self) -> bool:
        return _stream_is_tty(self.stdout)

    @property
    def stderr_is_tty(self) -> bool:
        return _stream_is_tty(self.stderr)

    @property
    def live_ok(self) -> bool:
        """A live view (on stderr) is allowed: stderr is a terminal and we are not quiet."""
        return self.stderr_is_tty and not self.quiet

    @property
    def table_on_screen(self) -> bool:
        """The result is a table printed on a terminal: what it shows (a failed check, say) the
        person has just read, so a stderr line that repeats it would say it twice."""
        return self.format == "table" and self.stdout_is_tty and not self.quiet

    # ----- Rich consoles (lazy) ----------------------------------------------------------
    def _make_console(self, stream: IO[str]) -> Console:
        from rich.console import Console

        tty = _stream_is_tty(stream)
        kwargs: dict[str, Any] = {
            "file": stream,
            "highlight": False,
            "markup": False,
            "emoji": False,
            "soft_wrap": False,
        }
        if self.color is False:
            kwargs["no_color"] = True
            kwargs["color_system"] = None
        if not tty:
            # Off a terminal Rich would wrap at 80 columns; a pipe or a file wants whole rows.
            kwargs["width"] = 200
            if self.color is not True:
                kwargs["color_system"] = None
        return Console(**kwargs)

    @property
    def console(self) -> Console:
        """Console on stdout, for results."""
        if self._out_console is None:
            self._out_console = self._make_console(self.stdout)
        return self._out_console

    @property
    def err_console(self) -> Console:
        """Console on stderr, for progress and live views."""
        if self._err_console is None:
            self._err_console = self._make_console(self.stderr)
        return self._err_console

    # ----- diagnostics on stderr ---------------------------------------------------------
    def _err_line(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def info(self, message: str) -> None:
        """A progress or status line (stderr), hidden by ``-q``."""
        if not self.quiet:
            self._err_line(message)

    def warn(self, message: str) -> None:
        """A warning (stderr), shown even with ``-q``: it concerns safety or correctness."""
        self._err_line(f"netkit: warning: {message}")

    def error(self, message: str) -> None:
        self._err_line(f"netkit: error: {message}")

    def debug(self, message: str) -> None:
        if self.verbose:
            self._err_line(f"netkit: {message}")

    # ----- results on stdout -------------------------------------------------------------
    def print(self, renderable: RenderableType | str = "") -> None:
        """A renderable (table) or plain text on stdout, never parsed as markup."""
        if self.quiet:
            return
        if isinstance(renderable, str):
            self.stdout.write(renderable + "\n")
            self.stdout.flush()
        elif not self.stdout_is_tty:
            self.stdout.write(plain_text(renderable))
            self.stdout.flush()
        else:
            self.console.print(renderable)

    @property
    def width(self) -> int | None:
        """Columns a table on stdout may use: the terminal's width, None off a terminal (whole rows)."""
        return self.console.width if self.stdout_is_tty else None

    @property
    def err_width(self) -> int | None:
        """Columns a live view on stderr may use (None off a terminal)."""
        return self.err_console.width if self.stderr_is_tty else None

    def line(self, text: str) -> None:
        """One plain result line on stdout (ping-style per-reply lines)."""
        if not self.quiet:
            self.stdout.write(text + "\n")
            self.stdout.flush()

    def json(self, obj: Any) -> None:
        """One JSON document on stdout (``--format json``)."""
        if self.quiet:
            return
        self.stdout.write(dumps(obj, indent=2) + "\n")
        self.stdout.flush()

    def jsonl(self, obj: Any) -> None:
        """One JSON object on one line, flushed at once (``--format jsonl`` events)."""
        if self.quiet:
            return
        self.stdout.write(dumps(obj) + "\n")
        self.stdout.flush()

    def csv_rows(self, rows: Iterable[Any], fields: Sequence[str] | None = None) -> None:
        """CSV with a header row (records: mappings or dataclasses); nested fields as ``parent.child``."""
        if self.quiet:
            return
        for row in rows:
            flat = flatten(to_jsonable(row))
            if self._csv_writer is None:
                self._start_csv(list(fields) if fields is not None else list(flat))
            self._csv_writer.writerow({k: _csv_value(v) for k, v in flat.items()})
        if self._csv_writer is None and fields is not None:
            # No row (a filter that matched nothing): the header still says what the columns would be,
            # so a reader of the file sees an empty table, not an empty file.
            self._start_csv(list(fields))
        self.stdout.flush()

    def _start_csv(self, fields: list[str]) -> None:
        self._csv_fields = fields
        self._csv_writer = csv.DictWriter(self.stdout, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        self._csv_writer.writeheader()

    def emit(
        self,
        result: Any,
        *,
        table: Any = None,
        rows: Iterable[Any] | None = None,
        fields: Sequence[str] | None = None,
    ) -> None:
        """Write a final result in the chosen format.

        ``table``: a callable returning a Rich renderable (built only for ``--format table``).
        ``rows``: the records for CSV (and for jsonl, one line each); default: the result itself.
        """
        if self.format == "json":
            self.json(result)
        elif self.format == "jsonl":
            for row in rows if rows is not None else [result]:
                self.jsonl(row)
        elif self.format == "csv":
            self.csv_rows(rows if rows is not None else [to_jsonable(result)], fields)
        elif table is not None:
            self.print(table() if callable(table) else table)


def _unboxed(renderable: Any) -> Any:
    """The same renderable with its tables' box characters taken off (recursing into groups)."""
    from rich.console import Group
    from rich.table import Table

    if isinstance(renderable, Table):
        renderable.box = None
        renderable.show_edge = False
        renderable.pad_edge = False
        renderable.padding = (0, 1)  # two spaces between columns: a cell such as "0.053 ms" holds one
        renderable.collapse_padding = False
    elif isinstance(renderable, Group):
        for part in renderable.renderables:
            _unboxed(part)
    return renderable


def plain_text(renderable: Any) -> str:
    """A table (or a group of them) as plain aligned text for a pipe or a file: no box characters,
    no colour, no blank first line, no trailing spaces, rows never wrapped."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=10_000, color_system=None, highlight=False, markup=False,
                      emoji=False, soft_wrap=False)
    console.print(_unboxed(renderable))
    lines = [line.rstrip() for line in buffer.getvalue().splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "".join(line + "\n" for line in lines)


def make_test_output(format: str = "table", **kwargs: Any) -> tuple[Output, io.StringIO, io.StringIO]:
    """An Output writing into two StringIO buffers (for tests)."""
    out, err = io.StringIO(), io.StringIO()
    return Output(format=format, stdout=out, stderr=err, **kwargs), out, err


class StreamedJsonDocument:
    """``{LIST_KEY: [...], TAIL_KEY: {...}}`` written as records come: the same bytes
    ``json.dumps(doc, indent=2)`` makes, one record at a time, so memory does not grow with the
    records and an interrupted run still ends with a valid document."""

    def __init__(self, out: Output, list_key: str, tail_key: str) -> None:
        self.out = out
        self.list_key = list_key
        self.tail_key = tail_key
        self.count = 0
        self.started = False

    def _write(self, text: str) -> None:
        if not self.out.quiet:
            self.out.stdout.write(text)

    def add(self, records: list[dict[str, Any]]) -> None:
        if not self.started:
            self._write(f'{{\n  "{self.list_key}": [')
            self.started = True
        parts = []
        for rec in records:
            body = dumps(rec, indent=2).replace("\n", "\n    ")
            parts.append(("," if self.count else "") + "\n    " + body)
            self.count += 1
        if parts:
            self._write("".join(parts))
            if not self.out.quiet:
                self.out.stdout.flush()

    def finish(self, tail: Any) -> None:
        self.add([])
        closing = "\n  ]" if self.count else "]"
        body = dumps(to_jsonable(tail), indent=2).replace("\n", "\n  ")
        self._write(f'{closing},\n  "{self.tail_key}": {body}\n}}\n')
        if not self.out.quiet:
            self.out.stdout.flush()
