import math

import pytest

from netkit.core import units
from netkit.core.errors import InputError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("2s", 2.0), ("1m", 60.0), ("1.5", 1.5), ("500us", 0.0005), ("1h", 3600.0), ("0", 0.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert math.isclose(units.parse_duration(text), seconds)


@pytest.mark.parametrize("text", ["", "abc", "-1s", "1x", "nan", "inf", "1e400", "8d", "1..2s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InputError):
        units.parse_duration(text)


def test_sizes_are_binary_and_rates_decimal() -> None:
    assert units.parse_size("128K") == 131072
    assert units.parse_size("1M") == 1048576
    assert units.parse_size("1KiB") == 1024
    assert units.parse_bitrate("500M") == 500e6
    assert units.parse_bitrate("1Gbit") == 1e9
    assert units.parse_count("100k") == 100_000
    with pytest.raises(InputError):
        units.parse_size("1.5")


def test_formatting() -> None:
    assert units.format_bitrate(21.3e9) == "21.3 Gbit/s"
    assert units.format_bitrate(24e9) == "24.0 Gbit/s"  # same precision as its neighbours
    assert units.format_bitrate(999.7e6) == "1.00 Gbit/s"  # rounding never shows 1000 of a unit
    assert units.format_bitrate(1e17) == "100,000 Tbit/s"  # never scientific notation
    assert units.format_duration(0.9996) == "1.00s"
    assert units.format_bytes(1536) == "1.50 KiB"
    assert units.format_duration(0.0123) == "12.3ms"
