"""measure http's request rate with reuse against nginx, side by side with wrk at the same concurrency.

    python bench/bench_http.py [-C 4] [-d 3]

One run each, printed with the ratio (the target is at least 0.5x wrk's rate).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.nginx_http import nginx_http


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-C", "--concurrency", type=int, action="append", default=None,
                    help="repeatable (default: 1 and 4)")
    ap.add_argument("-d", "--duration", type=float, default=3.0)
    a = ap.parse_args()
    with nginx_http() as s:
        url = s.http + "/small"
        for c in a.concurrency or [1, 4]:
            r = subprocess.run([sys.executable, "-m", "netkit", "measure", "http", url, "-C", str(c),
                                "-d", f"{a.duration}s", "--format", "json"], capture_output=True, text=True,
                               check=True)
            nk = json.loads(r.stdout)["urls"][0]["requests_per_s"]
            w = subprocess.run(["wrk", "-t1", f"-c{c}", f"-d{a.duration:g}s", url],
                               capture_output=True, text=True, check=True).stdout
            m = re.search(r"Requests/sec:\s+([\d.]+)", w)
            wr = float(m.group(1)) if m else float("nan")
            print(f"netkit measure http: {nk:,.0f} req/s   wrk: {wr:,.0f} req/s   ratio {nk / wr:.2f}x "
                  f"(concurrency {c}, {a.duration:g} s, HTTP/1.1 keep-alive, nginx /small)")


if __name__ == "__main__":
    main()
