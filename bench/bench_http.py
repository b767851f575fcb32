"""measure http's request rate with reuse against nginx, side by side with wrk at the same concurrency.

    python bench/run.py http

One nginx (tests/nginx_http.py), HTTP/1.1 keep-alive on /small, 3 s each, concurrency 1 and 4; netkit
and `wrk -t1` one after the other in the same run, with the ratio (the target is at least 0.5x).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from benchlib import Row  # noqa: E402

DURATION_S = 3.0


def _netkit_rate(url: str, concurrency: int) -> float:
    r = subprocess.run([sys.executable, "-m", "netkit", "measure", "http", url, "-C", str(concurrency),
                        "-d", f"{DURATION_S:g}s", "--format", "json"], capture_output=True, text=True, check=True,
                       timeout=60)
    return float(json.loads(r.stdout)["urls"][0]["requests_per_s"])


def _wrk_rate(url: str, concurrency: int) -> float | None:
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{DURATION_S:g}s", url], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else None


def request_rate() -> list[Row]:
    if shutil.which("nginx") is None:
        return [Row("measure http req/s vs wrk", None, None, "req/s", note="nginx is not installed")]
    from nginx_http import nginx_http

    rows = []
    with nginx_http() as s:
        url = s.http + "/small"
        for c in (1, 4):
            netkit = _netkit_rate(url, c)
            ref = _wrk_rate(url, c) if shutil.which("wrk") else None
            rows.append(Row(f"measure http req/s, concurrency {c}, vs wrk -t1", netkit, ref, "req/s",
                            note="HTTP/1.1 keep-alive, nginx /small" if ref else "wrk is not installed"))
    return rows


CASES = [request_rate]
