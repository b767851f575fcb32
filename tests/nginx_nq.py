"""An nginx (Debian's nginx-light) serving the responsiveness test's endpoints, for interop tests.

    with nginx_nq() as srv:                      # https://127.0.0.1:PORT, h2 and HTTP/1.1 by ALPN
        run("netkit", "measure", "responsiveness", srv.url, "-k")

It serves what the draft's test server serves: the configuration document at ``/.well-known/nq``,
a large object at ``/large`` (a sparse 8 GiB file: no disk used, endless for a test), a 1-byte
``/small``, and ``/upload`` accepting a body of any size (``client_max_body_size 0``). nginx reads and
throws away an upload's body for a ``return`` (its "discard body" path, which keeps reading while the
client sends, up to ``lingering_time``); the interop test checks the bytes the client sent were acked
far beyond any socket buffer. ``ns=`` runs it in a network namespace (``ip netns exec``).

Importable without pytest: a missing nginx raises :class:`NginxUnavailable`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LARGE_BYTES = 8 * 1024**3


class NginxUnavailable(RuntimeError):
    pass


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


@dataclass
class NginxNq:
    host: str
    port: int
    root: Path
    proc: subprocess.Popen[bytes]
    tls: bool
    cert_path: Path

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The bare URL a user passes (the client adds /.well-known/nq)."""
        return self.base

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def main_context(root: Path) -> str:
    """The head every test nginx shares: in the foreground, one worker, everything under ``root``,
    and the opening of the ``http`` block (the caller adds its servers and closes it)."""
    temp = "\n  ".join(f"{k}_temp_path {root}/tmp_{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  {temp}
  sendfile on;
  keepalive_requests 100000;"""


def _config(root: Path, host: str, port: int, tls: bool) -> str:
    listen_host = f"[{host}]" if ":" in host else host
    listen = f"listen {listen_host}:{port}" + (" ssl http2" if tls else "") + ";"
    ssl = (f"ssl_certificate {root}/cert.pem; ssl_certificate_key {root}/key.pem;\n"
           "    ssl_protocols TLSv1.2 TLSv1.3;\n") if tls else ""
    return f"""{main_context(root)}
  http2_chunk_size 1m;  # nginx's default 8k frames cost a Python h2 client a parse each
  output_buffers 2 1m;  # over TLS (no sendfile) the file is read, and framed, in these
  lingering_time 600s;
  types {{ application/json json; application/octet-stream bin; }}
  default_type application/octet-stream;
  server {{
    {listen}
    {ssl}
    root {root}/www;
    location = /.well-known/nq {{ default_type application/json; try_files /nq.json =404; }}
    location = /upload {{ client_max_body_size 0; return 200 "ok\\n"; }}
  }}
}}
"""


@contextlib.contextmanager
def nginx_nq(host: str = "127.0.0.1", port: int | None = None, *, tls: bool = True, ns: str | None = None,
             ready_timeout: float = 10.0) -> Iterator[NginxNq]:
    """Start nginx on ``host:port`` (a free loopback port when None), stop it (by its PID) on exit."""
    binary = nginx_binary()
    if binary is None:
        raise NginxUnavailable("nginx is not installed (Debian: apt-get install nginx-light)")
    from netkit.core.nq_config import build_nq_config
    from netkit.io.tls import make_self_signed

    root = Path(tempfile.mkdtemp(prefix="netkit-nginx-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        os.chmod(root, 0o755)  # nginx's workers run as another user: they must read the files
        www = root / "www"
        www.mkdir(mode=0o755)
        with open(www / "large", "wb") as f:
            f.truncate(LARGE_BYTES)  # sparse: no blocks written
        (www / "small").write_bytes(b"x")
        port = port if port is not None else free_port(host)
        listen_host = f"[{host}]" if ":" in host else host
        base = f"{'https' if tls else 'http'}://{listen_host}:{port}"
        (www / "nq.json").write_bytes(build_nq_config(base))
        cert, key = make_self_signed()
        (root / "cert.pem").write_bytes(cert)
        (root / "key.pem").write_bytes(key)
        for p in www.iterdir():
            os.chmod(p, 0o644)
        (root / "nginx.conf").write_text(_config(root, host, port, tls))
        argv = [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
        if ns is not None:
            argv = ["ip", "netns", "exec", ns, *argv]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + ready_timeout
        while not _listening(host, port, ns):
            if proc.poll() is not None:
                said = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                log = (root / "error.log").read_text(errors="replace") if (root / "error.log").exists() else ""
                raise NginxUnavailable(f"nginx exited: {said} {log}")
            if time.monotonic() > deadline:
                raise NginxUnavailable("nginx did not start listening")
            time.sleep(0.02)
        yield NginxNq(host, port, root, proc, tls, root / "cert.pem")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # fast shutdown: master and workers
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(root, ignore_errors=True)


def _listening(host: str, port: int, ns: str | None) -> bool:
    """True once something listens on host:port (read from the namespace's socket table)."""
    argv = ["ss", "-Htln", f"sport = :{port}"]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    return bool(out.strip())
