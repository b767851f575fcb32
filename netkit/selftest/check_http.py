"""Selftest row for ``measure http``: netkit's client against netkit's responsiveness server (its
1-byte ``/small``) over TLS on loopback, each phase timed, connections reused.

The server runs in its own thread and loop (as a separate host would), the client in this loop. The
row passes when every request got a 200 with exactly one byte over TLS (the ephemeral certificate
verified by its file), the first request paid the TCP and TLS handshakes and the rest reused its
connection; the p50 total is shown.
"""

from __future__ import annotations

from netkit.core.http_config import HttpConfig, parse_status_spec
from netkit.core.http_result import check_result
from netkit.core.nq_config import SMALL_PATH, parse_url
from netkit.core.nq_server import NqServerConfig
from netkit.core.units import format_ms
from netkit.io.measure.http import measure_http_async
from netkit.io.servers.responsiveness_server import serving_responsiveness
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 77
ROW = "http"


async def run(env: SelftestEnv) -> list[CheckResult]:
    from netkit.core.http_config import HttpChecks

    count = 20 if env.quick else 100
    with serving_responsiveness(NqServerConfig(host=env.host, port=0)) as srv:
        url = parse_url(srv.base_url + SMALL_PATH)
        cfg = HttpConfig(urls=(url,), count=count, cafile=srv.cafile, timeout_s=5.0,
                         checks=HttpChecks(expect_status=parse_status_spec("200")))
        result = await measure_http_async(cfg)
    r = result.urls[0]
    failed = check_result(r, cfg.checks)
    ok = (not failed and r.ok_count == count and r.bytes_min == r.bytes_max == 1 and r.new_connections == 1
          and r.tls_version is not None)
    total = r.stats_ms("total")
    figure = f"p50 {format_ms(total['p50'])}, {r.ok_count}/{count} ok" if r.ok_count else ""
    detail = (f"HTTP/{r.http_version} {r.tls_version or ''}".strip() + f", {r.new_connections} connection, "
              f"ttfb p50 {format_ms(r.stats_ms('ttfb')['p50'])}")
    if failed:
        detail += "; " + failed[0]
    return [CheckResult(ROW, ok, figure, detail)]
