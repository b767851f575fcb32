"""The one number formatter set (core.units): units on every figure, separators, never ``e+``.

Tables print every figure through these functions, so the properties here hold on every screen:
no scientific notation at any magnitude, thousands separators from 1,000 on, a unit after each
figure, and ``-`` (not ``nan`` or a traceback) for a figure that is not a number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.core import units

EXPONENT = re.compile(r"\d[eE][+-]?\d|\b(?:nan|inf)\b", re.IGNORECASE)
GROUPED = re.compile(r"^-?\d{1,3}(?:,\d{3})*(?:\.\d+)?$")

# From far below a nanosecond or a bit to far beyond any link or counter, both signs.
WIDE = st.one_of(
    st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e-3, max_value=1e-3, allow_nan=False),
    st.integers(min_value=-(10**20), max_value=10**20).map(float),
)
NON_NEGATIVE = st.one_of(
    st.floats(min_value=0, max_value=1e30, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0, max_value=1e-3),
)

#: Each formatter with the units its output may end in.
FORMATTERS: dict[str, tuple[Callable[[float], str], tuple[str, ...]]] = {
    "format_bitrate": (units.format_bitrate, ("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s")),
    "format_bytes": (units.format_bytes, ("B", "KiB", "MiB", "GiB", "TiB")),
    "format_byte_rate": (units.format_byte_rate, ("B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s")),
    "format_rate": (lambda x: units.format_rate(x, "pps"), ("pps",)),
    "format_ms": (units.format_ms, ("ms",)),
    "format_ns_as_ms": (units.format_ns_as_ms, ("ms",)),
    "format_percent": (units.format_percent, ("%",)),
}


def _figure(text: str) -> str:
    """The number in ``"12,345 Mbit/s"``."""
    return text.split(" ")[0]


@pytest.mark.parametrize("name", list(FORMATTERS))
@given(x=WIDE)
def test_no_formatter_ever_prints_an_exponent_and_each_keeps_its_unit(name: str, x: float) -> None:
    fmt, unit_names = FORMATTERS[name]
    text = fmt(x)
    assert not EXPONENT.search(text), text
    assert "e" not in _figure(text).lower(), text
    assert text.endswith(unit_names), text
    assert GROUPED.match(_figure(text)), text


@given(x=WIDE)
def test_three_digits_is_fixed_notation_with_separators(x: float) -> None:
    text = units.three_digits(x)
    assert "e" not in text.lower() and GROUPED.match(text), text
    if abs(x) >= 999.5:
        assert "," in text  # 1,000 and up are grouped
    if abs(x) >= 99.95:
        assert "." not in text  # no digits past the third significant one


@given(x=WIDE)
def test_three_digits_keeps_three_significant_digits_in_the_decimals(x: float) -> None:
    text = units.three_digits(x)
    digits = text.lstrip("-").replace(",", "")
    if 0.995 <= abs(x) < 99.95:
        significant = digits.replace(".", "").lstrip("0")
        assert len(significant) == 3, (x, text)  # "2.50", "24.0": trailing zeros stay


@given(n=st.one_of(st.integers(min_value=-(10**24), max_value=10**24), st.floats(min_value=-1e18, max_value=1e18)))
def test_format_count_groups_thousands_and_reads_back(n: float) -> None:
    text = units.format_count(n)
    assert GROUPED.match(text) and "." not in text, text
    assert int(text.replace(",", "")) == round(n)


@given(seconds=NON_NEGATIVE)
def test_format_duration_never_prints_an_exponent(seconds: float) -> None:
    text = units.format_duration(seconds)
    assert not EXPONENT.search(text), text
    assert re.fullmatch(r"[\d,]+us|[\d.]+ms|[\d.]+s|[\d,]+m\d\ds", text), text
    assert not text.endswith("60s") or "." in text, text  # 3m60s would be a rounding slip


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "0.00"), (2.5, "2.50"), (24.0, "24.0"), (999.4, "999"), (999.5, "1,000"), (12_345.0, "12,345"),
    (1e17, "100,000,000,000,000,000"), (-1234.5, "-1,234"), (0.001, "0.00"),
])
def test_three_digits_examples(value: float, text: str) -> None:
    assert units.three_digits(value) == text


@pytest.mark.parametrize(("fmt", "value", "text"), [
    (units.format_bitrate, 1e3, "1.00 kbit/s"),  # was "1e+03 kbit/s" with :g
    (units.format_bitrate, 999.7e6, "1.00 Gbit/s"),
    (units.format_bitrate, 1e18, "1,000,000 Tbit/s"),
    (units.format_bytes, 1023.999, "1.00 KiB"),  # never "1024.00 KiB"
    (units.format_bytes, 2**50, "1,024 TiB"),
    (units.format_bytes, 956 * 2**20, "956 MiB"),  # three digits, as iperf3 and every other figure
    (units.format_byte_rate, 1536, "1.50 KiB/s"),
    (units.format_rate, 112_634.2, "112,634 pps"),
    (units.format_ms, 0.0534, "0.053 ms"),
    (units.format_ms, 1234.5, "1,234 ms"),
    (units.format_ns_as_ms, 12_345_678, "12.3 ms"),
    (units.format_percent, 12.46, "12.5 %"),
    (units.format_percent, 99.96, "100 %"),
    (units.format_percent, 2 / 35_711 * 100, "0.0056 %"),  # 2 lost: never "0.0 %"
    (units.format_percent, 0.049, "0.049 %"),
    (units.format_percent, 1e-30, "0.000000001 %"),
    (units.format_percent, 0.0, "0.0 %"),
    (units.format_count, 368_917, "368,917"),
    (units.format_duration, 239.6, "4m00s"),  # whole seconds first: never "3m60s"
    (units.format_duration, 0.0009996, "1ms"),  # never "1000us"
    (units.format_duration, 3725, "62m05s"),
])
def test_examples(fmt: Callable[..., str], value: float, text: str) -> None:
    if fmt is units.format_rate:
        assert fmt(value, "pps") == text
    else:
        assert fmt(value) == text


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_figure_that_is_not_a_number_prints_as_a_dash(bad: float) -> None:
    for fmt, _ in FORMATTERS.values():
        assert fmt(bad) == units.NO_FIGURE
    for fmt2 in (units.three_digits, units.format_count, units.format_duration):
        assert fmt2(bad) == units.NO_FIGURE
    assert units.format_ms(None) == units.format_percent(None) == units.format_ns_as_ms(None) == "-"


def test_wall_clock_is_iso_utc_with_milliseconds() -> None:
    assert units.format_wall_iso(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123Z"
    assert units.format_wall_iso(0) == "1970-01-01T00:00:00.000Z"
