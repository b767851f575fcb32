"""``netkit measure http`` against a real nginx (HTTP/1.1 and h2 over TLS, HTTP/1.1 in the clear):
exact statuses and bytes, the slow endpoint's known time to first byte, and curl -w side by side."""

from __future__ import annotations

import shutil
import statistics
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.nginx_http import LARGE_BYTES, SLOW_S, SMALL, NginxHttp, NginxUnavailable, nginx_http
from tests.support import run_netkit


@pytest.fixture(scope="module")
def srv() -> Iterator[NginxHttp]:
    try:
        with nginx_http() as s:
            yield s
    except NginxUnavailable as exc:
        pytest.skip(str(exc))


def _requests(args: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    r = run_netkit(["measure", "http", *args, "--format", "jsonl"], timeout=60)
    assert "Traceback" not in r.stderr
    events = r.jsonl()
    return [e for e in events if e["event"] == "request"], events[-1]


@pytest.mark.parametrize("proto", ["--http1.1", "--http2"])
def test_slow_endpoint_ttfb_is_its_delay(srv: NginxHttp, proto: str) -> None:
    reqs, summary = _requests([srv.https + "/slow", "-k", proto, "-n", "5"])
    assert len(reqs) == 5 and all(r["ok"] for r in reqs)
    waits = []
    for r in reqs:
        assert r["status"] == 200 and r["bytes"] == 3
        assert r["http_version"] == ("1.1" if proto == "--http1.1" else "2")
        assert r["tls_version"] in ("TLSv1.2", "TLSv1.3") and r["cipher"]
        assert 0.9 < r["cert_days_left"] <= 1.0
        # Never less than nginx's timer: the answer cannot come before the delay.
        waits.append(r["ms"]["ttfb"] + r["ms"]["send"])
        assert SLOW_S * 1000 <= waits[-1]
    # ... and typically a few ms more (its event loop, our wake-up): the median, so that one request
    # delayed by a busy machine's scheduler is not taken for the meter's error.
    assert statistics.median(waits) < SLOW_S * 1000 + 15, waits
    assert summary["urls"][0]["new_connections"] == 1  # reused


@pytest.mark.parametrize("scheme,proto", [("http", "--http1.1"), ("https", "--http1.1"), ("https", "--http2")])
def test_small_and_large_bytes_exact(srv: NginxHttp, scheme: str, proto: str) -> None:
    base = srv.http if scheme == "http" else srv.https
    for path, size in (("/small", len(SMALL)), ("/large", LARGE_BYTES)):
        args = [base + path, "-n", "2", "--expect-status", "200", "--new-connection"]
        if scheme == "https":
            args += ["-k", proto]
        reqs, summary = _requests(args)
        assert [r["bytes"] for r in reqs] == [size, size]
        assert all(r["new_connection"] for r in reqs)
        assert all(r["ms"]["connect"] > 0 for r in reqs)
        assert all((r["ms"]["tls"] > 0) == (scheme == "https") for r in reqs)
        assert summary["checks"]["passed"]


def test_expect_body_and_redirects(srv: NginxHttp) -> None:
    r = run_netkit(["measure", "http", srv.https + "/moved", "-k", "-n", "2", "--max-redirs", "1",
                    "--expect-status", "2xx", "--expect-body", "netkit small"])
    assert r.exit_code == 0, r.stderr
    r = run_netkit(["measure", "http", srv.https + "/moved", "-k", "-n", "1", "--expect-status", "2xx"])
    assert r.exit_code == 1 and "expect-status 2xx: got 301" in r.stderr
    r = run_netkit(["measure", "http", srv.https + "/small", "-k", "-n", "1", "--expect-body", "nope"])
    assert r.exit_code == 1 and "expect-body" in r.stderr
    r = run_netkit(["measure", "http", srv.https + "/small", "-k", "-n", "1", "--min-cert-days", "30"])
    assert r.exit_code == 1 and "min-cert-days" in r.stderr
    r = run_netkit(["measure", "http", srv.https + "/slow", "-k", "-n", "1", "--max-total", "50"])
    assert r.exit_code == 1 and "max-total" in r.stderr


def test_resolve_names_a_host(srv: NginxHttp) -> None:
    url = f"https://example.test:{srv.port_https}/small"
    reqs, _ = _requests([url, "-k", "-n", "1", "--resolve", f"example.test:{srv.port_https}:127.0.0.1"])
    assert reqs[0]["ok"] and reqs[0]["bytes"] == len(SMALL)


_CURL_W = ("%{time_namelookup} %{time_connect} %{time_appconnect} %{time_pretransfer} "
           "%{time_starttransfer} %{time_total}\\n")


def _curl_phases(url: str, n: int, extra: list[str]) -> dict[str, float]:
    """curl -w's cumulative times as phases (ms), the median of ``n`` runs, each a new connection."""
    rows: list[list[float]] = []
    for _ in range(n):
        out = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", _CURL_W, *extra, url],
                             capture_output=True, text=True, timeout=20, check=True).stdout.split()
        dns, conn, app, pre, start, total = (float(x) * 1000 for x in out)
        rows.append([conn - dns, app - conn, start - pre, total - start])
    return {k: statistics.median(r[i] for r in rows) for i, k in enumerate(("connect", "tls", "ttfb", "transfer"))}


def _close(a: float, b: float, *, abs_ms: float = 0.5, rel: float = 0.10) -> bool:
    return abs(a - b) <= max(abs_ms, rel * max(a, b))


@pytest.mark.parametrize("proto", ["--http1.1", "--http2"])
def test_side_by_side_with_curl(srv: NginxHttp, proto: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("no curl")
    # The suite runs on two workers over two cores: another test's burst can move one tool's median
    # by more than 0.5 ms while the other runs (seen once in ten runs of the suite), so a miss is
    # measured once more, side by side again, before it counts.
    misses: list[str] = []
    for _ in range(2):
        misses = _compare_with_curl(srv.https + "/slow", proto)
        if not misses:
            return
    raise AssertionError("; ".join(misses))


def _compare_with_curl(url: str, proto: str) -> list[str]:
    n = 7
    curl = _curl_phases(url, n, [proto])
    reqs, _ = _requests([url, "-k", proto, "-n", str(n), "--new-connection"])
    ours = {k: statistics.median(r["ms"][k] for r in reqs) for k in ("connect", "tls", "transfer")}
    ours["ttfb"] = statistics.median(r["ms"]["send"] + r["ms"]["ttfb"] for r in reqs)
    misses = [f"{k}: netkit {ours[k]:.3f} ms, curl {curl[k]:.3f} ms" for k in ("connect", "ttfb", "transfer")
              if not _close(ours[k], curl[k])]
    # The TLS handshake: both run OpenSSL (netkit's inside the event loop's SSL protocol, over memory
    # BIOs). Its median moves 1-2 ms from run to run for either tool (measured here: netkit 3.0-4.7 ms,
    # curl 2.7-5.1 ms over six runs of seven), more than 10% of it: bounded at 3 ms apart.
    if not _close(ours["tls"], curl["tls"], abs_ms=3.0):
        misses.append(f"tls: netkit {ours['tls']:.3f} ms, curl {curl['tls']:.3f} ms")
    return misses
