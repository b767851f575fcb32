"""Reading a mesh's figures over HTTP: Prometheus' query API, or monitors' /metrics.

A bounded client: every request has a timeout and every answer a size cap, so a wrong URL (a
large page, a server that never ends its answer) costs at most that much time and memory.
Failures are :class:`RuntimeFailure` (exit 3) with one line naming the URL.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from netkit.core import mesh_matrix
from netkit.core.errors import InputError, RuntimeFailure
from netkit.core.escape import safe_text

DEFAULT_TIMEOUT_S = 10.0
#: Prometheus' answer for 1000 hosts x 999 peers is about 250 bytes a pair: 250 MB would be absurd, 64 MiB plenty.
MAX_ANSWER_BYTES = 64 << 20
#: A monitor's /metrics for 1000 peers with trace hops runs to a few MiB.
MAX_METRICS_BYTES = 32 << 20
READ_CHUNK = 1 << 16

Sample = tuple[str, dict[str, str], float]


def check_url(url: str, option: str) -> str:
    """``url`` if it is an http(s) URL with a host; else an :class:`InputError` naming the option."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{option} {safe_text(url)!r}: expected an http:// or https:// URL with a host")
    return url


def http_get(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, max_bytes: int = MAX_ANSWER_BYTES,
             accept_error_body: bool = False, shown: str | None = None) -> bytes:
    """The body of a GET, at most ``max_bytes`` (more is an error, not a cut answer).

    ``accept_error_body``: an HTTP error status still returns its body (Prometheus explains a bad
    query in a 400's JSON). ``shown``: the URL as errors name it (a query's base, not its PromQL).
    """
    request = urllib.request.Request(url, headers={"Accept": "application/json, text/plain;q=0.9",
                                                   "User-Agent": "netkit-mesh"})
    shown = safe_text(url if shown is None else shown)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return _read_capped(response, max_bytes, shown, timeout_s)
    except urllib.error.HTTPError as exc:
        if accept_error_body and exc.code in (400, 422, 503):
            with exc:
                return _read_capped(exc, max_bytes, shown, timeout_s)
        raise RuntimeFailure(f"{shown}: HTTP {exc.code} {safe_text(str(exc.reason))}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        raise RuntimeFailure(f"cannot reach {shown}: {safe_text(text)}") from None
    except TimeoutError:
        raise RuntimeFailure(f"{shown}: no answer within {timeout_s:g}s") from None
    except OSError as exc:
        raise RuntimeFailure(f"{shown}: {safe_text(exc.strerror or str(exc))}") from None


def _read_capped(response: Any, max_bytes: int, shown: str, timeout_s: float) -> bytes:
    """The body in chunks, within ``max_bytes`` and ``timeout_s`` in all (the socket's timeout bounds
    each read only: a server dripping a byte at a time would otherwise hold on for ever)."""
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = response.read1(READ_CHUNK) if hasattr(response, "read1") else response.read(READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise RuntimeFailure(f"{shown}: answer larger than {max_bytes >> 20} MiB")
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"{shown}: answer not complete within {timeout_s:g}s")
        chunks.append(chunk)


def instant_query(base_url: str, expr: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
                  ) -> list[tuple[dict[str, str], float]]:
    """One instant query through Prometheus' HTTP API (``/api/v1/query``): its samples."""
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = http_get(url, timeout_s=timeout_s, accept_error_body=True, shown=base_url)
    try:
        return mesh_matrix.parse_vector(body)
    except mesh_matrix.BadAnswer as exc:
        raise mesh_matrix.BadAnswer(f"{safe_text(base_url)}: {exc}") from None


def query_matrix(base_url: str, *, window: str, window_s: float, mesh: str | None, method: str | None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> mesh_matrix.MeshMatrix:
    """The matrix of one mesh and method over ``window``, from Prometheus."""
    present = {(labels.get("mesh", ""), labels.get("method", ""))
               for labels, _ in instant_query(base_url, mesh_matrix.methods_query(mesh), timeout_s=timeout_s)}
    chosen_mesh, chosen_method = mesh_matrix.choose_method(present, mesh, method)
    figures = {figure: mesh_matrix.by_pair(instant_query(base_url, expr, timeout_s=timeout_s))
               for figure, expr in mesh_matrix.pair_queries(window, chosen_mesh, chosen_method).items()}
    return mesh_matrix.assemble(figures, mesh=chosen_mesh, method=chosen_method, origin="prometheus",
                                window_s=window_s)


def scrape_metrics(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Sample]:
    """A monitor's /metrics as (sample name, labels, value); a URL without a path gets ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    parts = urllib.parse.urlsplit(url)
    if parts.path in ("", "/"):
        url = urllib.parse.urlunsplit(parts._replace(path="/metrics"))
    body = http_get(url, timeout_s=timeout_s, max_bytes=MAX_METRICS_BYTES)
    try:
        text = body.decode("utf-8")
        return [(s.name, dict(s.labels), float(s.value))
                for family in text_string_to_metric_families(text) for s in family.samples]
    except (UnicodeDecodeError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise mesh_matrix.BadAnswer(f"{safe_text(url)}: not Prometheus' text format ({safe_text(str(exc))[:100]})"
                                    ) from None


def metrics_matrix(urls: Sequence[str], *, mesh: str | None, method: str | None,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> mesh_matrix.MeshMatrix:
    """The matrix from monitors' /metrics: totals since each monitor started."""
    samples: list[Sample] = []
    for url in dict.fromkeys(urls):  # a monitor named twice would count its pairs twice
        samples.extend(scrape_metrics(url, timeout_s=timeout_s))
    present = {(m, me) for m, me in mesh_matrix.present_in_samples(samples) if mesh is None or m == mesh}
    chosen_mesh, chosen_method = mesh_matrix.choose_method(present, mesh, method)
    figures = mesh_matrix.figures_from_samples(samples, chosen_mesh, chosen_method)
    return mesh_matrix.assemble(figures, mesh=chosen_mesh, method=chosen_method, origin="metrics", window_s=None)
