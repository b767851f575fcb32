"""Selftest row for ``measure responsiveness`` and ``serve responsiveness``: the draft's test, short,
download only, netkit's client against netkit's server over HTTP/2 and TLS on loopback.

The server runs in its own thread and loop (as a separate host would), the client in this loop. The
row passes when the client read the configuration document, kept its load connections, finished
foreign and self probes and computed an RPM, and its goodput is above a floor no working loopback
misses. The RPM itself is not judged: a loopback's queue says nothing about a user's network.
"""

from __future__ import annotations

from netkit.core.nq_server import NqServerConfig
from netkit.core.responsiveness_config import AlgorithmParams, Direction, ResponsivenessConfig
from netkit.core.responsiveness_result import DirectionResult
from netkit.core.units import format_bitrate, format_count
from netkit.io.measure.responsiveness import measure_responsiveness_async
from netkit.io.servers.responsiveness_server import serving_responsiveness
from netkit.selftest.base import CheckResult, SelftestEnv

ORDER = 74
FLOOR_BPS = 100e6


async def run(env: SelftestEnv) -> list[CheckResult]:
    seconds = 2.0 if env.quick else 4.0
    # Quarter-second intervals: both stages get their MAD intervals inside a few seconds.
    params = AlgorithmParams(interval_s=0.25, stage_max_s=seconds / 2)
    with serving_responsiveness(NqServerConfig(host=env.host, port=0)) as srv:
        cfg = ResponsivenessConfig(url=srv.config_url, cafile=srv.cafile, direction=Direction.DOWNLOAD,
                                   params=params, max_duration_s=seconds + 2.0, idle_probes=3)
        result = await measure_responsiveness_async(cfg)
    down = result.directions[0] if result.directions else None
    probes = (down.stats.foreign + down.stats.self_) if down is not None else 0
    ok = (result.error is None and down is not None and down.rpm is not None and down.rpm > 0
          and down.goodput_bps >= FLOOR_BPS and down.stats.foreign > 0 and down.stats.self_ > 0)
    if down is None or down.rpm is None:
        figure = ""
    else:
        figure = f"{format_count(round(down.rpm))} RPM, {format_bitrate(down.goodput_bps)}"
    detail = (f"{result.protocol} {result.tls_version or ''}".strip()
              + f", download, {down.connections if down else 0} load connections, {format_count(probes)} probes")
    if result.error:
        detail += f"; {result.error}"
    elif not ok:
        detail += "; " + _why_failed(down)
    return [CheckResult("responsiveness", ok, figure, detail)]


def _why_failed(down: DirectionResult | None) -> str:
    """The first condition a failed row missed, so that the row explains itself."""
    if down is None:
        return "no direction was measured"
    if down.rpm is None or down.rpm <= 0:
        return "no RPM was computed"
    if down.goodput_bps < FLOOR_BPS:
        return f"goodput under the {format_bitrate(FLOOR_BPS)} floor"
    missing = [kind for kind, n in (("foreign", down.stats.foreign), ("self", down.stats.self_)) if n == 0]
    return f"no {' and no '.join(missing)} probe completed ({down.probe_errors} probe errors)"
