"""Per-invocation settings shared by the root group and every subcommand.

Output options may be given on the root group (``netkit --format json probe ...``), on the leaf
command (``netkit probe ... --format json``), or as ``NETKIT_FORMAT`` etc.; the most specific wins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # pragma: no cover
    from netkit.render.output import Output

FORMAT_CHOICES = ("table", "json", "jsonl", "csv")

#: The spellings of on and off an environment variable may use for a count (``NETKIT_VERBOSE=true``).
_TRUE = frozenset({"true", "yes", "on", "y", "t"})
_FALSE = frozenset({"false", "no", "off", "n", "f", ""})


class VerbosityCount(click.ParamType):
    """``-v``'s count, which ``NETKIT_VERBOSE`` may also give as a number or as a boolean.

    ``-vv`` counts 2 on the command line; from the environment ``2`` is 2, ``true``/``yes``/``on``
    is 1 and ``false``/``no``/``off``/``0`` is 0, as every other boolean variable reads.
    """

    name = "count"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return max(value, 0)
        text = str(value).strip().lower()
        if text in _TRUE:
            return 1
        if text in _FALSE:
            return 0
        try:
            count = int(text)
        except ValueError:
            count = -1
        if count < 0:
            # Only the environment hands a count over as text (-vv arrives as the number 2).
            self.fail(f"{value!r}{_from_env(param, ctx)} is not a count (a whole number, or true/false, "
                      "yes/no, on/off)", param, ctx)
        return count


def _from_env(param: click.Parameter | None, ctx: click.Context | None) -> str:
    """`` in NETKIT_VERBOSE``: the variable a value came from, so the message points at the right place."""
    if param is None:
        return ""
    name = param.envvar if isinstance(param.envvar, str) else None
    if name is None and ctx is not None and ctx.auto_envvar_prefix and param.name:
        name = f"{ctx.auto_envvar_prefix}_{param.name.upper()}"
    return f" in {name}" if name else ""


VERBOSITY = VerbosityCount()


@dataclass
class AppContext:
    format: str = "table"
    quiet: bool = False
    verbose: int = 0
    no_color: bool = False
    _output: Output | None = field(default=None, repr=False)

    @property
    def output(self) -> Output:
        if self._output is None:
            from netkit.render.output import Output

            color = False if (self.no_color or os.environ.get("NO_COLOR")) else None
            self._output = Output(format=self.format, quiet=self.quiet, verbose=self.verbose, color=color)
        return self._output


def get_app(ctx: click.Context | None = None) -> AppContext:
    ctx = ctx or click.get_current_context()
    app = ctx.find_object(AppContext)
    if app is None:
        app = ctx.ensure_object(AppContext)
    return app


def get_output(ctx: click.Context | None = None) -> Output:
    return get_app(ctx).output


def _set(attr: str) -> Any:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        # Only an explicit value on the leaf overrides the root's (default/None leaves it alone).
        if value is None or value is False or value == 0:
            return value
        src = ctx.get_parameter_source(param.name or "")
        if src is not None and src.name == "DEFAULT":
            return value
        setattr(get_app(ctx), attr, value)
        return value

    return callback


def output_options(f: Any) -> Any:
    """Add ``--format/-q/-v/--no-color`` to a leaf command (same meaning as on the root)."""
    f = click.option(
        "--no-color", is_flag=True, default=False, expose_value=False, callback=_set("no_color"),
        help="Disable colour (NO_COLOR is honoured too).",
    )(f)
    f = click.option(
        "-v", "--verbose", count=True, type=VERBOSITY, expose_value=False, callback=_set("verbose"),
        help="More detail on stderr.",
    )(f)
    f = click.option(
        "-q", "--quiet", is_flag=True, default=False, expose_value=False, callback=_set("quiet"),
        help="Print nothing; only the exit status tells.",
    )(f)
    f = click.option(
        # Named "format" (not format_) so that auto_envvar_prefix derives NETKIT_<COMMAND>_FORMAT.
        "--format", "format", type=click.Choice(FORMAT_CHOICES), default=None, expose_value=False,
        callback=_set("format"), help="Output format (default: table).",
    )(f)
    return f
