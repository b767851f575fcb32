"""``netkit serve responsiveness`` as third-party clients see it: curl, and h2 clients built here.

One TLS server and one cleartext server (module-scoped, in this process through
``serving_responsiveness``) take every client in turn:

- curl (``--http2`` and ``--http1.1``, and h2c prior knowledge in cleartext): the configuration
  document is valid JSON by the draft's rules naming this server, the negotiated version is the
  one asked for, /large is 200 application/octet-stream of at least 8 GB (read N bytes, then
  stop), /small is one byte, an upload of a few MB is answered 200 and a stranger path 404;
- hand-made HTTP/2 clients (the h2 library on a TLS socket with ALPN h2): streams beyond
  SETTINGS_MAX_CONCURRENT_STREAMS are refused with RST_STREAM(REFUSED_STREAM) while the others
  are served; garbage frames get a GOAWAY and end that connection only, another one keeps its
  download going; an upload over the cap gets 413 and a reset while the connection goes on;
- limits at accept and on headers: connections beyond the per-address cap are closed at once,
  a header block over the cap is answered 431 (HTTP/1.1) or ends the connection (HTTP/2).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
import support

from netkit.core.nq_config import parse_nq_config
from netkit.core.nq_server import LARGE_SIZE, NqServerConfig
from netkit.io.servers.responsiveness_server import ServingHandle, serving_responsiveness

MAX_STREAMS = 4
MAX_UPLOAD = 1024 * 1024
PER_IP = 24


@pytest.fixture(scope="module")
def tls_srv() -> Iterator[ServingHandle]:
    support.require_tool("curl")
    cfg = NqServerConfig(port=0, max_streams=MAX_STREAMS, max_upload=MAX_UPLOAD, max_conns_per_ip=PER_IP,
                         idle_timeout_s=5.0)
    with serving_responsiveness(cfg) as srv:
        yield srv


@pytest.fixture(scope="module")
def clear_srv() -> Iterator[ServingHandle]:
    support.require_tool("curl")
    with serving_responsiveness(NqServerConfig(port=0, tls=False, max_upload=MAX_UPLOAD)) as srv:
        yield srv


def curl(*args: str, timeout: float = 15.0) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-s", "-S", *args], capture_output=True, timeout=timeout)


def _versions(srv: ServingHandle) -> list[tuple[list[str], str]]:
    if srv.cafile is not None:
        return [(["--http2", "--cacert", srv.cafile], "2"), (["--http1.1", "--cacert", srv.cafile], "1.1")]
    return [(["--http2-prior-knowledge"], "2"), (["--http1.1"], "1.1")]


@pytest.mark.parametrize("which", ["tls", "clear"])
def test_curl_reads_the_config_document(which: str, request: pytest.FixtureRequest) -> None:
    srv: ServingHandle = request.getfixturevalue(f"{which}_srv")
    for opts, version in _versions(srv):
        res = curl(*opts, "-w", "\n%{http_version} %{content_type}", srv.config_url)
        assert res.returncode == 0, res.stderr
        body, _, tail = res.stdout.decode().rpartition("\n")
        assert tail == f"{version} application/json"
        nq = parse_nq_config(body)
        assert str(nq.large_download_url) == srv.base_url + "/large"
        assert str(nq.small_download_url) == srv.base_url + "/small"
        assert str(nq.upload_url) == srv.base_url + "/upload"
        assert json.loads(body)["version"] == 1


@pytest.mark.parametrize("which", ["tls", "clear"])
def test_curl_large_small_upload_and_404(which: str, request: pytest.FixtureRequest,
                                         tmp_path: Any) -> None:
    srv: ServingHandle = request.getfixturevalue(f"{which}_srv")
    payload = tmp_path / "up.bin"
    payload.write_bytes(os.urandom(3 * 1024 * 1024))  # over the module's 1 MiB cap
    small_upload = tmp_path / "small-up.bin"
    small_upload.write_bytes(os.urandom(MAX_UPLOAD - 1000))
    want = 20 * 1024 * 1024
    for opts, version in _versions(srv):
        # /large: read N bytes, then stop (curl sees its pipe close); the headers went to a file first.
        headers = tmp_path / f"h{version}.txt"
        proc = subprocess.Popen(["curl", "-s", *opts, "-D", str(headers), srv.base_url + "/large"],
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None
        got = 0
        while got < want:
            chunk = proc.stdout.read(min(1 << 20, want - got))
            if not chunk:
                break
            got += len(chunk)
        proc.kill()
        proc.communicate(timeout=10)
        assert got == want
        head = headers.read_text().lower()
        assert head.split("\r\n")[0].startswith(f"http/{version} 200")
        assert "content-type: application/octet-stream" in head and "content-encoding" not in head
        length = int(head.split("content-length:")[1].split()[0])
        assert length == LARGE_SIZE and length >= 8_000_000_000

        res = curl(*opts, "-w", "\n%{http_code} %{content_type}", srv.base_url + "/small")
        body, _, tail = res.stdout.rpartition(b"\n")
        assert (len(body), tail) == (1, b"200 application/octet-stream")

        res = curl(*opts, "-w", "%{http_code} %{size_upload}", "-H", "content-type: application/octet-stream",
                   "--data-binary", f"@{small_upload}", srv.base_url + "/upload")
        assert res.stdout == f"200 {MAX_UPLOAD - 1000}".encode(), res.stderr

        res = curl(*opts, "-o", "/dev/null", "-w", "%{http_code}", srv.base_url + "/nope")
        assert res.stdout == b"404"
        res = curl(*opts, "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", srv.base_url + "/large")
        assert res.stdout == b"405"

        # Over the server's upload cap: a 413, never a 200 (curl may also see the reset that follows).
        res = curl(*opts, "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", f"@{payload}",
                   srv.base_url + "/upload")
        assert res.stdout in (b"413", b"000"), res.stdout
        assert res.stdout != b"200"


def test_a_few_megabytes_upload_is_answered_200(tmp_path: Any) -> None:
    """The draft's upload sink takes any size: 8 MB with the default cap, HTTP/2 and HTTP/1.1."""
    payload = tmp_path / "up.bin"
    payload.write_bytes(os.urandom(8 * 1024 * 1024))
    with serving_responsiveness(NqServerConfig(port=0)) as srv:
        assert srv.cafile is not None
        for version in ("--http2", "--http1.1"):
            res = curl(version, "--cacert", srv.cafile, "-w", "%{http_code} %{size_upload} %{http_version}",
                       "--data-binary", f"@{payload}", srv.base_url + "/upload")
            assert res.stdout.decode() == f"200 {8 * 1024 * 1024} {version[6:]}", res.stderr


# ----- hand-made HTTP/2 clients --------------------------------------------------------------------

class H2Client:
    """A blocking HTTP/2 client on a TLS socket (ALPN h2), enough to misbehave on purpose."""

    def __init__(self, srv: ServingHandle, *, window: int = 65535, max_frame: int = 16384) -> None:
        ctx = ssl.create_default_context(cafile=srv.cafile)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((srv.host, srv.port), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname=srv.host)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        if window != 65535:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
            self.conn.increment_flow_control_window(window - 65535)
        if max_frame != 16384:
            self.conn.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame})
        self.authority = f"{srv.host}:{srv.port}"
        self.flush()

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def request(self, method: str, path: str, *, end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", method), (":path", path), (":scheme", "https"),
                                     (":authority", self.authority)], end_stream=end)
        return sid

    def events(self, until: Any, timeout: float = 5.0, *, ack: bool = True) -> list[Any]:
        """Read events until ``until(events)`` is true (or the connection ends)."""
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while not until(got):
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; events so far: {got[-5:]}")
            data = self.sock.recv(1 << 20)
            if not data:
                got.append("eof")
                break
            for ev in self.conn.receive_data(data):
                got.append(ev)
                if ack and isinstance(ev, h2.events.DataReceived) and ev.flow_controlled_length:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            self.flush()
        return got

    def close(self) -> None:
        self.sock.close()


def _of(kind: type, events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_streams_beyond_the_cap_are_refused_the_others_served(tls_srv: ServingHandle) -> None:
    c = H2Client(tls_srv)
    try:
        # All sent before the server's SETTINGS are read: the server's own count must refuse them.
        sids = [c.request("GET", "/large") for _ in range(MAX_STREAMS + 2)]
        c.flush()
        evs = c.events(lambda e: len(_of(h2.events.ResponseReceived, e)) >= MAX_STREAMS
                       and len(_of(h2.events.StreamReset, e)) >= 2)
        served = {e.stream_id for e in _of(h2.events.ResponseReceived, evs)}
        refused = {e.stream_id: e.error_code for e in _of(h2.events.StreamReset, evs)}
        assert served == set(sids[:MAX_STREAMS])
        assert refused == dict.fromkeys(sids[MAX_STREAMS:], h2.errors.ErrorCodes.REFUSED_STREAM)
        settings = _of(h2.events.RemoteSettingsChanged, evs)[0].changed_settings
        assert settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value == MAX_STREAMS
        # The connection goes on: a reset stream frees its slot.
        c.conn.reset_stream(sids[0])
        sid = c.request("GET", "/small")
        c.flush()
        evs = c.events(lambda e: any(isinstance(x, h2.events.StreamEnded) and x.stream_id == sid for x in e))
        assert any(isinstance(x, h2.events.DataReceived) and x.data == b"x" for x in evs)
    finally:
        c.close()


def test_large_frames_once_the_client_applies_its_frame_size(tls_srv: ServingHandle) -> None:
    """An h2 client asking for 1 MiB frames gets them (up to the server's 256 KiB) without ever
    reading one bigger than the size it has applied: h2 would refuse it."""
    c = H2Client(tls_srv, window=64 * 1024 * 1024, max_frame=1 << 20)
    try:
        c.request("GET", "/large")
        c.flush()
        evs = c.events(lambda e: sum(len(x.data) for x in _of(h2.events.DataReceived, e)) > 32 * 1024 * 1024)
        sizes = [len(x.data) for x in _of(h2.events.DataReceived, evs)]
        assert max(sizes) == 256 * 1024 and sizes[0] <= 16384
    finally:
        c.close()


def test_garbage_frames_end_that_connection_only(tls_srv: ServingHandle) -> None:
    good = H2Client(tls_srv)
    bad = H2Client(tls_srv)
    try:
        big = good.request("GET", "/large")
        good.flush()
        good.events(lambda e: sum(len(x.data) for x in _of(h2.events.DataReceived, e)) > 1 << 20)
        # A DATA frame on stream 0 and an unknown-length SETTINGS: a connection error.
        bad.sock.sendall(b"\x00\x00\x05\x00\x00\x00\x00\x00\x00hello" + b"\x00\x00\x03\x04\x00\x00\x00\x00\x00xyz")
        evs = bad.events(lambda e: "eof" in e)
        ended = _of(h2.events.ConnectionTerminated, evs)
        assert ended and ended[0].error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
        # The other connection's download goes on, and it can still ask for more.
        sid = good.request("GET", "/small")
        good.flush()
        evs = good.events(lambda e: any(isinstance(x, h2.events.StreamEnded) and x.stream_id == sid for x in e))
        assert sum(len(x.data) for x in _of(h2.events.DataReceived, evs) if x.stream_id == big) > 0
    finally:
        good.close()
        bad.close()
    support.wait_until(lambda: any(e.get("reason") == "protocol-error" for e in tls_srv.events), timeout=5)
    closes = [e for e in tls_srv.events if e["event"] == "close" and e["reason"] == "protocol-error"]
    assert len(closes) == 1 and closes[0]["protocol"] == "h2"


def test_an_upload_over_the_cap_gets_413_and_a_reset_the_connection_goes_on(tls_srv: ServingHandle) -> None:
    c = H2Client(tls_srv)
    try:
        c.events(lambda e: bool(_of(h2.events.RemoteSettingsChanged, e)))  # windows known
        sid = c.request("POST", "/upload", end=False)
        chunk = b"\0" * 16384
        sent = 0
        answer: list[Any] = []
        while sent <= MAX_UPLOAD + 2 * len(chunk) and not answer:
            room = min(c.conn.local_flow_control_window(sid), len(chunk))
            if room <= 0:
                answer += c.events(lambda e: bool(e), timeout=2)
                continue
            c.conn.send_data(sid, chunk[:room])
            sent += room
            c.flush()
        answer += c.events(lambda e: any(isinstance(x, h2.events.StreamReset) and x.stream_id == sid for x in e)
                           or any(isinstance(x, h2.events.StreamReset) for x in answer))
        status = [dict(x.headers)[b":status"] for x in _of(h2.events.ResponseReceived, answer) if x.stream_id == sid]
        assert status == [b"413"]
        # Same connection, next request: served.
        nxt = c.request("GET", "/small")
        c.flush()
        evs = c.events(lambda e: any(isinstance(x, h2.events.StreamEnded) and x.stream_id == nxt for x in e))
        assert [dict(x.headers)[b":status"] for x in _of(h2.events.ResponseReceived, evs)] == [b"200"]
    finally:
        c.close()


def test_an_http2_header_block_over_the_cap_ends_that_connection(tls_srv: ServingHandle) -> None:
    c = H2Client(tls_srv)
    try:
        c.events(lambda e: bool(_of(h2.events.RemoteSettingsChanged, e)))
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":path", "/small"), (":scheme", "https"),
                                  (":authority", c.authority), ("x-big", "a" * 40_000)], end_stream=True)
        c.flush()
        evs = c.events(lambda e: "eof" in e)
        assert _of(h2.events.ConnectionTerminated, evs)
        assert not _of(h2.events.ResponseReceived, evs)
    finally:
        c.close()


def test_an_http1_header_over_the_cap_is_431_and_closed(clear_srv: ServingHandle) -> None:
    with socket.create_connection((clear_srv.host, clear_srv.port), timeout=5) as s:
        s.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 431 ")


def test_connections_beyond_the_per_address_cap_are_closed_at_accept(tls_srv: ServingHandle) -> None:
    held = []
    try:
        for _ in range(PER_IP + 3):
            held.append(socket.create_connection((tls_srv.host, tls_srv.port), timeout=5))
        # The last ones were closed before any TLS byte: they read EOF at once.
        held[-1].settimeout(5)
        assert held[-1].recv(10) == b""
    finally:
        for s in held:
            s.close()
    assert any(e["event"] == "limit" and e["limit"] == "max_conns_per_ip" for e in tls_srv.events)
