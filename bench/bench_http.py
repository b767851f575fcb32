"""measure http's request rate with reuse against nginx, side by side with wrk at the same concurrency.

    python bench/run.py http                     # 5 rounds (NETKIT_BENCH_ROUNDS to change)

One nginx (tests/nginx_http.py: one worker), HTTP/1.1 keep-alive on /small, 3 s per measurement, at
concurrency 1, 4 and 8. In every round netkit (``measure http -C N -d 3s``) and ``wrk -tT -cN -d3s``
run one right after the other against the same URL, the order alternating between rounds, so both
see the same machine; the ratio is taken per round. T is the number of event loops netkit runs:
one per core up to the concurrency (its worker processes), so wrk gets as many threads as netkit
gets loops (-t1 at concurrency 1). The target is at least 0.5x. Other work on the machine moves
both rates: read the ratios, and their range over the rounds, not the absolute figures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from benchlib import Row, netkit_argv  # noqa: E402

DURATION_S = 3.0
CONCURRENCY = (1, 4, 8)
ROUNDS = int(os.environ.get("NETKIT_BENCH_ROUNDS", "5"))


def _netkit_rate(url: str, concurrency: int) -> float:
    r = subprocess.run(netkit_argv("--format", "json", "measure", "http", url, "-C", str(concurrency),
                                   "-d", f"{DURATION_S:g}s"), capture_output=True, text=True, check=True,
                       timeout=60)
    doc = json.loads(r.stdout)["urls"][0]
    if doc["errors"]["total"]:
        raise RuntimeError(f"netkit: {doc['errors']['total']} requests failed ({doc['last_error']})")
    return float(doc["requests_per_s"])


def _loops(concurrency: int) -> int:
    """netkit's event loops at this concurrency: one worker process per usable core, up to it."""
    from netkit.io.measure.http_workers import usable_cores

    return max(1, min(concurrency, usable_cores()))


def _wrk_rate(url: str, concurrency: int) -> float:
    argv = ["wrk", f"-t{_loops(concurrency)}", f"-c{concurrency}", f"-d{DURATION_S:g}s", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk: unexpected output: {out!r}")
    return float(m.group(1))


def request_rate() -> list[Row]:
    if shutil.which("nginx") is None:
        return [Row("measure http req/s vs wrk", None, None, "req/s", note="nginx is not installed")]
    if shutil.which("wrk") is None:
        return [Row("measure http req/s vs wrk", None, None, "req/s", note="wrk is not installed")]
    from nginx_http import nginx_http

    runs: dict[int, list[tuple[float, float]]] = {c: [] for c in CONCURRENCY}
    rows = []
    with nginx_http() as s:
        url = s.http + "/small"
        for rnd in range(ROUNDS):
            for c in CONCURRENCY:
                if rnd % 2:
                    ref = _wrk_rate(url, c)
                    netkit = _netkit_rate(url, c)
                else:
                    netkit = _netkit_rate(url, c)
                    ref = _wrk_rate(url, c)
                runs[c].append((netkit, ref))
                rows.append(Row(f"measure http req/s, concurrency {c}, round {rnd + 1}", netkit, ref, "req/s",
                                note=f"vs wrk -t{_loops(c)}"))
                print(f"# round {rnd + 1} concurrency {c}: netkit {netkit:,.0f} wrk {ref:,.0f} req/s "
                      f"ratio {netkit / ref:.2f}", file=sys.stderr, flush=True)
    for c in CONCURRENCY:
        ratios = [n / r for n, r in runs[c]]
        rows.append(Row(f"measure http req/s, concurrency {c}, median of {ROUNDS}",
                        statistics.median(n for n, _ in runs[c]), statistics.median(r for _, r in runs[c]),
                        "req/s", note=f"vs wrk -t{_loops(c)}; ratio per round {min(ratios):.2f}-{max(ratios):.2f}"))
    return rows


CASES = [request_rate]
