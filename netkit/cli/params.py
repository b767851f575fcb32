"""Click parameter types for netkit's value syntaxes; each wraps a pure parser from the core.

A bad value is a usage error (exit 2) that names the option and the value: every option of every
command parses through one of these (or a Click type that fails the same way), so no value can
get past parsing to end in an internal error. Numbers are finite (no ``nan``, no ``inf``: a NaN
threshold would compare false and turn its check off), and bytes follow one escape rule.
"""

from __future__ import annotations

import math
from typing import Any

import click

from netkit.core import targets, units
from netkit.core.errors import InputError


class _CoreType(click.ParamType):
    def _parse(self, value: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except InputError as exc:
            self.fail(str(exc), param, ctx)


class Duration(_CoreType):
    """Seconds as float: ``250ms``, ``2s``, ``1m``; bounds inclusive."""

    name = "duration"

    def __init__(self, min: float = 0.0, max: float | None = None, min_open: bool = False) -> None:
        self.min, self.max, self.min_open = min, max, min_open

    def _parse(self, value: str) -> float:
        seconds = units.parse_duration(value)
        if self.min_open and seconds <= self.min:
            # "more than 0us" read as if a microsecond were the floor: zero needs no unit
            floor = "0" if self.min == 0 else units.format_duration(self.min)
            raise InputError(f"invalid duration {value!r}: must be more than {floor}")
        if seconds < self.min:
            raise InputError(f"invalid duration {value!r}: must be at least {units.format_duration(self.min)}")
        if self.max is not None and seconds > self.max:
            raise InputError(f"invalid duration {value!r}: must be at most {units.format_duration(self.max)}")
        return seconds


class Size(_CoreType):
    """Bytes as int: ``128K``, ``1M``, ``64``."""

    name = "size"

    def __init__(self, min: int = 0, max: int | None = None) -> None:
        self.min, self.max = min, max

    def _parse(self, value: str) -> int:
        n = units.parse_size(value)
        if n < self.min:
            raise InputError(f"invalid size {value!r}: must be at least {self.min} bytes")
        if self.max is not None and n > self.max:
            raise InputError(f"invalid size {value!r}: must be at most {self.max} bytes")
        return n


class BitRate(_CoreType):
    """Bits per second as float: ``500M``, ``1G``."""

    name = "rate"

    def _parse(self, value: str) -> float:
        return units.parse_bitrate(value)


def _bound(x: float) -> str:
    """A bound as a person reads it: ``10,000,000``, ``0.001``, ``100`` (never ``1e+07``)."""
    if x == int(x):
        return f"{int(x):,}"
    return f"{x:,.6f}".rstrip("0")


class Count(_CoreType):
    """A non-negative quantity with decimal suffixes: ``100k``."""

    name = "number"

    def __init__(self, min: float = 0, integer: bool = True, max: float | None = None) -> None:
        self.min, self.integer, self.max = min, integer, max

    def _parse(self, value: str) -> float | int:
        n = units.parse_count(value)
        if self.integer:
            if n != int(n):
                raise InputError(f"invalid number {value!r}: must be a whole number")
            n = int(n)
        if n < self.min:
            raise InputError(f"invalid number {value!r}: must be at least {_bound(self.min)}")
        if self.max is not None and n > self.max:
            raise InputError(f"invalid number {value!r}: must be at most {_bound(self.max)}")
        return n


class Number(_CoreType):
    """A finite decimal number (thresholds, factors); bounds inclusive unless ``min_open``.

    Click's FloatRange lets ``nan`` through (every comparison with NaN is false): not this one.
    """

    name = "number"

    def __init__(self, min: float | None = None, max: float | None = None, min_open: bool = False) -> None:
        self.min, self.max, self.min_open = min, max, min_open

    def _parse(self, value: str) -> float:
        try:
            n = float(value.strip())
        except ValueError:
            raise InputError(f"invalid number {value!r}") from None
        if not math.isfinite(n):
            raise InputError(f"invalid number {value!r}: must be a finite number")
        if self.min is not None and (n <= self.min if self.min_open else n < self.min):
            word = "more than" if self.min_open else "at least"
            raise InputError(f"invalid number {value!r}: must be {word} {_bound(self.min)}")
        if self.max is not None and n > self.max:
            raise InputError(f"invalid number {value!r}: must be at most {_bound(self.max)}")
        return n


class Bytes(_CoreType):
    r"""Bytes typed as text, by the one rule of :func:`netkit.core.escape.unescape`.

    ``\n \r \t \0 \\ \e \xHH`` are escapes; bytes that are not UTF-8 on the command line pass as
    typed. With ``allow_file``, ``@FILE`` reads the bytes from FILE (at most ``max_size``).
    """

    name = "bytes"

    def __init__(self, *, allow_empty: bool = True, allow_file: bool = False, max_size: int | None = None) -> None:
        self.allow_empty, self.allow_file, self.max_size = allow_empty, allow_file, max_size

    def _parse(self, value: str) -> bytes:
        from netkit.core.escape import unescape

        if self.allow_file and value.startswith("@"):
            data = _read_file(value[1:], self.max_size)
        else:
            data = unescape(value)
            if self.max_size is not None and len(data) > self.max_size:
                raise InputError(f"{len(data)} bytes is over the limit of {self.max_size} bytes")
        if not data and not self.allow_empty:
            raise InputError("empty: give at least one byte")
        return data


def _read_file(path: str, max_size: int | None) -> bytes:
    from netkit.core.escape import safe_text

    limit = -1 if max_size is None else max_size + 1
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError as exc:
        raise InputError(f"cannot read {safe_text(path)}: {exc.strerror or exc}") from None
    if max_size is not None and len(data) > max_size:
        raise InputError(f"{safe_text(path)} is over the limit of {max_size} bytes")
    return data


class Port(_CoreType):
    name = "port"

    def _parse(self, value: str) -> int:
        return targets.parse_port(value)


class ListenPort(_CoreType):
    """0..65535: 0 asks the kernel for a free port."""

    name = "port"

    def _parse(self, value: str) -> int:
        return targets.parse_port(value, allow_zero=True)


class Host(_CoreType):
    name = "host"

    def _parse(self, value: str) -> str:
        return targets.validate_host(value)


class TargetType(_CoreType):
    """Exactly one HOST:PORT."""

    name = "host:port"

    def _parse(self, value: str) -> targets.Target:
        return targets.parse_target(value)


DURATION = Duration()
POSITIVE_DURATION = Duration(min=0.0, min_open=True)
SIZE = Size()
BITRATE = BitRate()
COUNT = Count()
PORT = Port()
LISTEN_PORT = ListenPort()
HOST = Host()
TARGET = TargetType()


BYTES = Bytes()


class Choice(click.Choice):
    """``click.Choice`` whose error names the closest choice: ``--only tcp-echo`` gets
    "Did you mean 'tcp'?", as a mistyped command or option does."""

    def get_invalid_choice_message(self, value: Any, ctx: click.Context | None) -> str:
        import difflib

        message = super().get_invalid_choice_message(value, ctx)
        typed = str(value).lower()
        names = [str(c) for c in self.choices]
        close = ([n for n in names if typed.startswith(n.lower()) or n.lower().startswith(typed)]
                 or difflib.get_close_matches(typed, names, n=2, cutoff=0.6))
        if typed and 0 < len(close) <= 2:
            message += " Did you mean " + " or ".join(repr(n) for n in close) + "?"
        return message


def usage_error(message: str, param_hint: str | None = None) -> click.UsageError:
    """A Click usage error (exit 2) for checks that span several options."""
    if param_hint:
        return click.BadParameter(message, param_hint=param_hint)
    return click.UsageError(message)
