"""An nginx (Debian's) for ``measure http``'s interop tests: HTTP/1.1 in the clear, and h2 + HTTP/1.1
(by ALPN) over TLS with an ephemeral certificate, serving a small page, a large file and a slow
endpoint (the echo module's ``echo_sleep``: a known time to first byte).

    with nginx_http() as srv:
        srv.https + "/slow"     # 200 "ok\\n" after SLOW_S seconds

Importable without pytest: a missing nginx or echo module raises :class:`NginxUnavailable`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.nginx_nq import NginxUnavailable, _listening, free_port, main_context, nginx_binary

ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
SLOW_S = 0.2
SMALL = b"<html><body>netkit small page</body></html>\n"
LARGE_BYTES = 4 * 1024 * 1024

__all__ = ["ECHO_MODULE", "LARGE_BYTES", "SLOW_S", "SMALL", "NginxHttp", "NginxUnavailable", "nginx_http"]


@dataclass
class NginxHttp:
    port_http: int
    port_https: int
    root: Path
    proc: subprocess.Popen[bytes]
    cert_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port_http}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.port_https}"


def _config(root: Path, port_http: int, port_https: int) -> str:
    return f"""load_module {ECHO_MODULE};
{main_context(root)}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port_http};
    listen 127.0.0.1:{port_https} ssl http2;
    ssl_certificate {root}/cert.pem; ssl_certificate_key {root}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    root {root}/www;
    location = /slow {{ default_type text/plain; echo_sleep {SLOW_S}; echo ok; }}
    location = /moved {{ return 301 /small; }}
    location = /missing {{ return 404; }}
  }}
}}
"""


@contextlib.contextmanager
def nginx_http(ready_timeout: float = 10.0) -> Iterator[NginxHttp]:
    binary = nginx_binary()
    if binary is None:
        raise NginxUnavailable("nginx is not installed")
    if not os.path.exists(ECHO_MODULE):
        raise NginxUnavailable("nginx's echo module is not installed (libnginx-mod-http-echo)")
    from netkit.io.tls import make_self_signed

    root = Path(tempfile.mkdtemp(prefix="netkit-nginx-http-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        os.chmod(root, 0o755)
        www = root / "www"
        www.mkdir(mode=0o755)
        (www / "small").write_bytes(SMALL)
        with open(www / "large", "wb") as f:
            f.truncate(LARGE_BYTES)
        for p in www.iterdir():
            os.chmod(p, 0o644)
        cert, key = make_self_signed()
        (root / "cert.pem").write_bytes(cert)
        (root / "key.pem").write_bytes(key)
        port_http, port_https = free_port(), free_port()
        (root / "nginx.conf").write_text(_config(root, port_http, port_https))
        argv = [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + ready_timeout
        while not (_listening("127.0.0.1", port_http, None) and _listening("127.0.0.1", port_https, None)):
            if proc.poll() is not None:
                said = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise NginxUnavailable(f"nginx exited: {said}")
            if time.monotonic() > deadline:
                raise NginxUnavailable("nginx did not start listening")
            time.sleep(0.02)
        yield NginxHttp(port_http, port_https, root, proc, root / "cert.pem")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(root, ignore_errors=True)
