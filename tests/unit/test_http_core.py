"""measure http's pure parts: the status classes, --resolve, the checks, statistics and the waterfall."""

from __future__ import annotations

import pytest

from netkit.core.errors import InputError
from netkit.core.http_config import HttpChecks, parse_header, parse_resolve, parse_status_spec
from netkit.core.http_result import HttpSample, HttpUrlResult, check_result, check_sample
from netkit.render.http import waterfall_lines

MS = 1_000_000


def _sample(seq: int, total_ms: int, status: int = 200) -> HttpSample:
    ph = (0, 1 * MS, 2 * MS, 0, (total_ms - 4) * MS, 1 * MS, total_ms * MS)
    return HttpSample(seq, "https://h/", 0, status=status, bytes=10, http_version="2", tls_version="TLSv1.3",
                      cipher="X", cert_days_left=5.0, phases_ns=ph)


def test_status_spec() -> None:
    spec = parse_status_spec("2xx, 301")
    assert spec.matches(204) and spec.matches(301) and not spec.matches(302) and not spec.matches(404)
    with pytest.raises(InputError):
        parse_status_spec("2x")


def test_resolve_and_header() -> None:
    r = parse_resolve("example.com:443:[::1]")
    assert (r.host, r.port, r.addr) == ("example.com", 443, "::1")
    for bad in ("example.com:443", "h:0:1.2.3.4", "h:80:nothost"):
        with pytest.raises(InputError):
            parse_resolve(bad)
    assert parse_header("X-A:  b ") == ("X-A", "b")
    with pytest.raises(InputError):
        parse_header("bad header: x")


def test_stats_median_request_and_checks() -> None:
    r = HttpUrlResult("https://h/")
    for i, t in enumerate((10, 30, 20, 40, 50)):
        r.add(_sample(i, t, 200 if i else 404))
    r.add(HttpSample(9, "https://h/", 0, error_kind="timeout", error="timed out"))
    assert r.count == 6 and r.ok_count == 5 and r.errors["timeout"] == 1
    assert r.stats_ms("total")["p50"] == 30 and r.stats_ms("total")["max"] == 50
    med = r.median_request_ns()
    assert med is not None and med[-1] == 30 * MS
    failed = check_result(r, HttpChecks(expect_status=parse_status_spec("2xx"), max_total_ms=45, min_cert_days=7))
    assert any("requests failed" in f for f in failed)
    assert any("got 404 x1" in f for f in failed)
    assert any("max-total" in f for f in failed)
    assert any("min-cert-days" in f for f in failed)
    assert check_sample(_sample(1, 10), HttpChecks(expect_status=parse_status_spec("2xx"))) == []


def test_waterfall_fits_80_columns() -> None:
    lines = waterfall_lines((1234 * MS, 2 * MS, 3 * MS, 0, 200 * MS, 5 * MS, 1444 * MS))
    assert all(len(line) <= 80 for line in lines)
    assert "namelookup:1,234 ms" in lines[3] and lines[-1].endswith("total:1,444 ms")


def test_a_long_run_keeps_a_bounded_systematic_sample_and_exact_maxima(monkeypatch: pytest.MonkeyPatch) -> None:
    import netkit.core.http_result as hr

    monkeypatch.setattr(hr, "MAX_KEPT", 100)
    r = HttpUrlResult("https://h/")
    for i in range(1, 1001):  # totals 5..1004 ms, in order
        r.add(_sample(i, 4 + i))
    kept = len(r.phases[0])
    assert r.ok_count == r.count == 1000
    assert kept <= 101 and r.sampled_every == 16
    assert r.stats_ms("total")["max"] == 1004.0  # the maximum of every request, not of the sample
    p50 = r.stats_ms("total")["p50"]
    assert p50 is not None and abs(p50 - 504.5) < 16  # the sample spans the whole run evenly
    assert r.to_json()["sampled_every"] == 16
