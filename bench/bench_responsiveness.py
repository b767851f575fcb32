"""The RPM test's own overhead: on loopback, the goodput of ``measure responsiveness``'s
load-generating connections (download only, N connections from the start) against what
``netkit measure throughput -R -P N`` reaches on the same machine in the same run (target >= 0.8x).

The server is ``netkit serve responsiveness`` where this checkout has it, else nginx serving the
draft's endpoints (tests/nginx_nq.py); 4 curl downloads from the same server are the second reference
(the client's own cost, apart from the server's). Two cases, reported apart: h2 over TLS (TLS and h2 framing
cost a Python client CPU that plain TCP does not) and HTTP/1.1 in clear text (like for like).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchlib import Row

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

STREAMS = 4


def _netkit(*args: str, timeout: float = 60) -> dict:
    p = subprocess.run([sys.executable, "-m", "netkit", *args, "--format", "json"], capture_output=True,
                       text=True, timeout=timeout, cwd=REPO)
    return json.loads(p.stdout)


def _throughput_reference() -> float:
    srv = subprocess.Popen([sys.executable, "-m", "netkit", "serve", "tcp", "--port", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        assert srv.stdout is not None
        line = srv.stdout.readline()
        port = line.strip().rsplit(":", 1)[-1]
        doc = _netkit("measure", "throughput", f"127.0.0.1:{port}", "-R", "-P", str(STREAMS), "-t", "5")
        return float(doc["summary"]["received_bits_per_second"])
    finally:
        srv.terminate()
        srv.wait(10)


def _rpm_goodput(url: str, *extra: str) -> float:
    doc = _netkit("measure", "responsiveness", url, "-k", "--download-only", "--load-connections", str(STREAMS),
                  "--max-connections", str(STREAMS), "--max-duration", "8s", *extra)
    return float(doc["directions"][0]["goodput_bps"])


def _curl_goodput(url: str, *extra: str, seconds: float = 5.0) -> float | None:
    """``STREAMS`` curl downloads of the large object at once for ``seconds``: their summed rate."""
    if shutil.which("curl") is None:
        return None
    procs = [subprocess.Popen(["curl", "-sk", *extra, "-o", "/dev/null", "--max-time", str(seconds), "-w",
                               "%{speed_download}", url + "/large"], stdout=subprocess.PIPE, text=True)
             for _ in range(STREAMS)]
    total = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 10)
        total += float(out or 0)
    return total * 8


@contextlib.contextmanager
def _netkit_server(*extra: str) -> Iterator[str | None]:
    """``netkit serve responsiveness`` on a free port when this checkout has it: its base URL (None
    without it)."""
    if importlib.util.find_spec("netkit.io.servers.responsiveness_server") is None:
        yield None
        return
    proc = subprocess.Popen([sys.executable, "-m", "netkit", "serve", "responsiveness", "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 10
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("config "):
                url = line.split()[1].removesuffix("/.well-known/nq")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _rows(server: str, tls_url: str, clear_url: str, reference: float) -> list[Row]:
    h2 = _rpm_goodput(tls_url) / 1e9
    time.sleep(1)
    h1 = _rpm_goodput(clear_url) / 1e9
    curl_h2 = _curl_goodput(tls_url, "--http2")
    curl_h1 = _curl_goodput(clear_url, "--http1.1")
    return [
        Row(f"RPM load goodput, h2 over TLS, {STREAMS} conns, vs measure throughput -R -P {STREAMS}", h2, reference,
            "Gbit/s", f"{server} is the server; TLS and h2 against plain TCP: not like for like"),
        Row(f"RPM load goodput, HTTP/1.1 clear, {STREAMS} conns, vs measure throughput -R -P {STREAMS}", h1,
            reference, "Gbit/s", f"{server} is the server"),
        Row(f"RPM load goodput, h2 over TLS, vs {STREAMS} curl --http2 on the same server", h2,
            None if curl_h2 is None else curl_h2 / 1e9, "Gbit/s", "the client's own cost"),
        Row(f"RPM load goodput, HTTP/1.1 clear, vs {STREAMS} curl on the same server", h1,
            None if curl_h1 is None else curl_h1 / 1e9, "Gbit/s", "the client's own cost"),
    ]


def load_goodput() -> list[Row]:
    reference = _throughput_reference() / 1e9
    with _netkit_server() as tls_url, _netkit_server("--no-tls") as clear_url:
        if tls_url is not None and clear_url is not None:
            return _rows("netkit serve responsiveness", tls_url, clear_url, reference)
    try:
        from nginx_nq import NginxUnavailable, nginx_nq
    except ImportError as exc:  # pragma: no cover
        return [Row("responsiveness load goodput", None, None, "Gbit/s", f"cannot import the nginx fixture: {exc}")]
    try:
        with nginx_nq(tls=True) as tls_srv, nginx_nq(tls=False) as clear_srv:
            return _rows("nginx (one worker)", tls_srv.url, clear_srv.url, reference)
    except NginxUnavailable as exc:
        return [Row("responsiveness load goodput", None, reference, "Gbit/s", f"no nginx: {exc}")]


CASES = [load_goodput]
