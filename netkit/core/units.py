"""Parsing and formatting of durations, sizes and rates.

Conventions follow the tools our users already know:
- durations: ``250ms``, ``2s``, ``1m``, ``1h``, ``500us``, ``100ns``; a bare number is seconds.
- sizes (bytes): ``128K`` = 131072, ``1M`` = 1 MiB, as iperf3's ``-l``; ``KiB``/``KB`` spellings too.
- bit rates (bits/s): ``500M`` = 500,000,000, decimal as iperf3's ``-b``.
- counts and packet rates: ``100k`` = 100,000.

Every parser either returns a finite, non-negative value or raises ``InputError`` naming the text.
"""

from __future__ import annotations

import math
import re

from netkit.core.errors import InputError

NS_PER_S = 1_000_000_000

_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}

_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Zµ/]*)\s*$")

# A week is far longer than any measurement; anything larger is a typo, not a plan.
MAX_DURATION_S = 7 * 24 * 3600.0


def _split(text: str, what: str) -> tuple[float, str]:
    if not isinstance(text, str):
        text = str(text)
    m = _NUMBER_UNIT.match(text)
    if not m:
        raise InputError(f"invalid {what} {text!r}")
    try:
        value = float(m.group(1))
    except ValueError as exc:  # pragma: no cover - the regex admits only floats
        raise InputError(f"invalid {what} {text!r}") from exc
    if not math.isfinite(value):
        raise InputError(f"invalid {what} {text!r}")
    return value, m.group(2)


def _finite(value: float, text: str, what: str) -> float:
    """A product that overflowed (``1e308T``) is bad input, not infinity."""
    if not math.isfinite(value):
        raise InputError(f"invalid {what} {text!r}: too large")
    return value


def parse_duration(text: str) -> float:
    """Return seconds for ``text`` such as ``250ms``, ``2s``, ``1m`` or ``1.5`` (seconds)."""
    value, unit = _split(text, "duration")
    factor = _DURATION_UNITS.get(unit.lower() if unit != "µs" else unit, None) if unit else 1.0
    if factor is None:
        raise InputError(f"invalid duration {text!r}: unknown unit {unit!r} (use ns, us, ms, s, m, h)")
    seconds = value * factor
    if seconds > MAX_DURATION_S:
        raise InputError(f"invalid duration {text!r}: longer than 7 days")
    return seconds


def parse_duration_ns(text: str) -> int:
    """Like :func:`parse_duration`, in integer nanoseconds (the core's unit of time)."""
    return round(parse_duration(text) * NS_PER_S)


_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}

MAX_SIZE = 1024**4


def parse_size(text: str) -> int:
    """Return bytes for ``128K``, ``1M``, ``64``, ``1KiB``. Binary multiples, as iperf3 sizes."""
    value, unit = _split(text, "size")
    factor = _SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise InputError(f"invalid size {text!r}: unknown unit {unit!r} (use K, M, G)")
    size = value * factor
    if not math.isfinite(size) or size > MAX_SIZE:
        raise InputError(f"invalid size {text!r}: larger than 1 TiB")
    if size != int(size):
        raise InputError(f"invalid size {text!r}: not a whole number of bytes")
    return int(size)


_DECIMAL_UNITS: dict[str, int] = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_bitrate(text: str) -> float:
    """Return bits/s for ``500M``, ``1G``, ``10k``, ``2.5Gbit``, ``100mbps``. Decimal multiples."""
    value, unit = _split(text, "rate")
    u = unit.lower()
    for suffix in ("bit/s", "bps", "bits", "bit", "b/s"):
        if u.endswith(suffix):
            u = u[: -len(suffix)]
            break
    factor = _DECIMAL_UNITS.get(u)
    if factor is None:
        raise InputError(f"invalid rate {text!r}: unknown unit {unit!r} (use k, M, G)")
    return _finite(value * factor, text, "rate")


def parse_count(text: str) -> float:
    """Return a plain quantity for ``100``, ``100k``, ``2.5M`` (decimal multiples)."""
    value, unit = _split(text, "number")
    factor = _DECIMAL_UNITS.get(unit.lower())
    if factor is None:
        raise InputError(f"invalid number {text!r}: unknown unit {unit!r} (use k, M, G)")
    return _finite(value * factor, text, "number")


#: What every formatter prints for a figure that is not a number (NaN, infinity): a table's "none".
NO_FIGURE = "-"


def _finite_number(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def three_digits(x: float) -> str:
    """Three significant digits in fixed notation, never ``e+``: ``2.50``, ``24.0``, ``999``, ``12,345``.

    Trailing zeros stay, so figures of one column line up and read with the same precision.
    Thousands separators from 1,000 on; below 0.005 the figure reads ``0.00``, never ``5e-03``.
    """
    if not _finite_number(x):
        return NO_FIGURE
    magnitude = abs(x)
    if magnitude >= 99.95:
        return f"{x:,.0f}"
    if magnitude >= 9.995:
        return f"{x:.1f}"
    return f"{x:.2f}"


def format_duration(seconds: float) -> str:
    """Short human form: ``850us``, ``12.3ms``, ``2.50s``, ``3m20s``."""
    if not _finite_number(seconds):
        return NO_FIGURE
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds * 1e6 < 999.5:  # 0.9996 ms rounds to "1.00ms", not "1000us"
        return f"{seconds * 1e6:.0f}us"
    if seconds * 1e3 < 999.5:  # below that, 3 significant digits cannot round up to an "e+03"
        return f"{seconds * 1e3:.3g}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    # Whole seconds first: 239.6 s is 4m00s, not 3m60s.
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes:,}m{rest:02d}s"


def format_bytes(n: float) -> str:
    """Binary multiples with three significant digits, as iperf3 prints transfer sizes and as every
    other figure reads: ``1.50 MiB``, ``956 MiB``, ``2.06 GiB``, ``2,048 TiB``; bytes whole: ``512 B``."""
    if not _finite_number(n):
        return NO_FIGURE
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if unit == "B":
            if abs(round(n)) < 1024:
                return f"{n:,.0f} B"
        # 1023.6 KiB would print as "1,024 KiB" (three digits round it up): take the next unit.
        elif abs(n) < 1023.5 or unit == "TiB":
            return f"{three_digits(n)} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_bitrate(bps: float) -> str:
    """Decimal multiples, as iperf3 prints rates: ``21.3 Gbit/s``, ``24.0 Gbit/s``, ``1,250 Tbit/s``."""
    if not _finite_number(bps):
        return NO_FIGURE
    for unit in ("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"):
        if abs(bps) < 999.5 or unit == "Tbit/s":
            return f"{bps:.0f} {unit}" if unit == "bit/s" else f"{three_digits(bps)} {unit}"
        bps /= 1000
    raise AssertionError("unreachable")


def format_count(n: float) -> str:
    """A count with thousands separators: ``368,917``; a float count is rounded to a whole one."""
    if not _finite_number(n):
        return NO_FIGURE
    return f"{round(n):,}"


def format_rate(per_s: float, unit: str) -> str:
    """Events per second with three significant digits and separators: ``112,634 req/s``, ``8.20 pps``."""
    if not _finite_number(per_s):
        return NO_FIGURE
    return f"{three_digits(per_s)} {unit}"


def format_ms(ms: float | None) -> str:
    """Milliseconds for tables: three decimals below 10 ms (``0.053 ms``), then three significant
    digits (``12.3 ms``, ``1,234 ms``); None as ``-``. Never ``e+``."""
    if ms is None or not math.isfinite(ms):
        return NO_FIGURE
    if abs(ms) < 9.9995:
        return f"{ms:.3f} ms"
    return f"{three_digits(ms)} ms"


def format_ns_as_ms(ns: float | None) -> str:
    """:func:`format_ms` of a time in integer nanoseconds (the unit the I/O layer measures in)."""
    return format_ms(None if ns is None else ns / 1e6)


def format_percent(pct: float | None) -> str:
    """``0.0 %``, ``12.5 %``, ``100 %``, ``250 %`` (one decimal below 100, whole from 100 on: a CPU
    share over several cores passes 100); None as ``-``.

    A share that is not zero never reads as zero: below 0.05 it keeps two significant digits, so
    2 lost of 35,711 is ``0.0056 %`` (as iperf3 says), not ``0.0 %`` beside "2 lost"."""
    if pct is None or not math.isfinite(pct):
        return NO_FIGURE
    if 0 < abs(pct) < 0.05:
        decimals = min(9, 1 - math.floor(math.log10(abs(pct))))
        text = f"{pct:.{decimals}f}"
        if float(text) == 0:  # below a billionth of a percent: the smallest figure that is not zero
            text = f"{math.copysign(1e-9, pct):.9f}"
        return f"{text} %"
    return f"{pct:,.0f} %" if abs(pct) >= 99.95 else f"{pct:.1f} %"


def format_byte_rate(bytes_per_s: float) -> str:
    """Binary multiples per second for byte counters (``info traffic`` in bytes): ``1.50 MiB/s``."""
    if not _finite_number(bytes_per_s):
        return NO_FIGURE
    return format_bytes(bytes_per_s) + "/s"


def format_wall_iso(epoch_ns: int) -> str:
    """A wall-clock time for events and records: ISO 8601 in UTC with milliseconds, ``...T12:00:00.123Z``.

    The caller reads the clock (``netkit.io.clock.wall_iso``); this only formats, so it stays pure.
    """
    import datetime as dt

    stamp = dt.datetime.fromtimestamp(epoch_ns / 1e9, tz=dt.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_text(seconds: float) -> str:
    """A time from settings or limits, as a user writes it: ``5s``, ``0.3s``, ``10us`` (never ``e-05``)."""
    if seconds < 0.001:
        return format_duration(seconds)
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
