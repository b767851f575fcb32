"""Interop: ``measure responsiveness`` against Debian's nginx serving the draft's endpoints on
loopback, over HTTP/2 + TLS and over HTTP/1.1."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
import support
from nginx_nq import NginxNq, NginxUnavailable, nginx_binary, nginx_nq


@pytest.fixture(scope="module")
def nginx() -> Iterator[NginxNq]:
    if nginx_binary() is None:
        pytest.skip("needs nginx (nginx-light)")
    try:
        with nginx_nq() as srv:
            yield srv
    except NginxUnavailable as exc:
        pytest.skip(str(exc))


def run(*args: str, timeout: float = 30) -> tuple[int, dict, str]:
    p = subprocess.run(support.netkit_cmd("measure", "responsiveness", *args, "--format", "json"),
                       capture_output=True, text=True, timeout=timeout, env=support.clean_env())
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else {}, p.stderr


def test_h2_over_tls(nginx: NginxNq) -> None:
    rc, doc, err = run(nginx.url, "--cafile", str(nginx.cert_path), "--download-only", "--max-duration", "4s")
    assert rc == 0, err
    assert doc["protocol"] == "h2" and doc["tls_version"] == "TLSv1.3" and doc["self_probe"] == "http"
    d = doc["directions"][0]
    # One nginx worker busy with the load may keep new handshakes (foreign probes) or the small
    # object behind /large (self probes) waiting past a 4 s run: either kind gives an RPM.
    assert d["goodput_bps"] > 1e6 and d["rpm"] > 0 and d["probes"]["foreign"] + d["probes"]["self"] > 0
    assert doc["idle"]["trimmed_mean_ms"]["tls_f"] is not None


def test_http11_both_directions(nginx: NginxNq) -> None:
    rc, doc, err = run(nginx.url, "-k", "--http1.1", "--max-duration", "6s")
    assert rc == 0, err
    assert doc["protocol"] == "http/1.1" and doc["self_probe"] == "tcp_info"
    down, up = doc["directions"]
    assert down["goodput_bps"] > 1e6 and down["rpm"] > 0
    # The upload goodput counts bytes the kernel saw acknowledged: far beyond any socket buffer, so
    # nginx really read (and threw away) the body.
    assert up["goodput_bps"] * up["duration_s"] / 8 > 64 * 1024 * 1024, up
    assert up["rpm"] > 0


def test_thresholds_exit_1(nginx: NginxNq) -> None:
    rc, doc, err = run(nginx.url, "-k", "--download-only", "--max-duration", "2s", "--min-rpm", "100000000",
                       "--max-added-latency", "0s")
    assert rc == 1, err
    assert not doc["thresholds"]["passed"] and "min-rpm" in doc["thresholds"]["failed"][0]
    assert "netkit: check failed: download RPM" in err


def test_ctrl_c_prints_what_was_measured_and_exits_130(nginx: NginxNq) -> None:
    import signal

    proc = subprocess.Popen(support.netkit_cmd("measure", "responsiveness", nginx.url, "-k", "--http1.1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=support.clean_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    first = proc.stdout.readline()  # piped: one plain line per interval, on stdout
    assert "download" in first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "(stopped early)" in out and "download" in out and "Traceback" not in err
