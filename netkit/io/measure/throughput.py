"""``netkit measure throughput``'s one I/O entry point: which server answers, and which client runs.

The one place that chooses between netkit's own clients and iperf3's, so neither knows the other:

==================  =====================================================================
TCP, ``auto``       the first stream's session header finds out (:mod:`.throughput_tcp`):
                    a netkit server or a plain service is measured there; an iperf3 server
                    took the header as its cookie and its control connection goes to
                    :mod:`.iperf3`
TCP, ``--iperf3``   :mod:`.iperf3` opens its own control connection
TCP, ``--plain``    :mod:`.throughput_tcp` without a header
UDP                 an iperf3 server on the TCP port (found out unless ``--key``):
                    :mod:`.iperf3_udp`; else the echo reflector (:mod:`.throughput_udp`)
==================  =====================================================================

All of them run their streams on the engine in :mod:`.streams` (TCP) and :mod:`.udp_streams` (UDP).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from netkit.core.throughput_models import ServerKind, ThroughputConfig, ThroughputResult, check_thresholds
from netkit.io.measure import iperf3, iperf3_udp, throughput_tcp, throughput_udp
from netkit.io.measure.streams import IntervalSink, ProgressSink

InfoSink = Callable[[str], None]


def measure_throughput(
    cfg: ThroughputConfig,
    on_interval: IntervalSink | None = None,
    *,
    on_progress: ProgressSink | None = None,
    stop: threading.Event | None = None,
    on_info: InfoSink | None = None,
) -> ThroughputResult:
    """Run one measurement (TCP or UDP, ``cfg.udp``) against whatever server ``cfg`` names or answers.

    ``on_interval`` gets each interval as it ends, ``on_progress`` the elapsed seconds a few times
    a second, ``on_info`` a line on what was detected; ``stop`` ends the test early (its result
    then says ``interrupted``). The result carries the ``--min-rate`` verdict.
    """
    result = _measure(cfg, on_interval, on_progress, stop, on_info)
    return dataclasses.replace(result, thresholds=check_thresholds(result, cfg.min_rate_bps))


def _measure(cfg: ThroughputConfig, on_interval: IntervalSink | None, on_progress: ProgressSink | None,
             stop: threading.Event | None, on_info: InfoSink | None) -> ThroughputResult:
    if cfg.udp:
        return _udp(cfg, on_interval, on_progress, stop, on_info)
    if cfg.server == ServerKind.IPERF3:
        return iperf3.run_iperf3(cfg, on_interval, on_progress=on_progress, stop=stop)
    opened = throughput_tcp.open_streams(cfg)
    if opened.iperf3 is not None:
        if on_info is not None:
            on_info("the server is an iperf3 server: speaking iperf3's protocol")
        answer = opened.iperf3
        return iperf3.run_iperf3(cfg, on_interval, on_progress=on_progress, stop=stop,
                                 ctrl=answer.sock, cookie=answer.header, first_state=answer.extra)
    return throughput_tcp.run_streams(cfg, opened, on_interval, on_progress=on_progress, stop=stop)


def _udp(cfg: ThroughputConfig, on_interval: IntervalSink | None, on_progress: ProgressSink | None,
         stop: threading.Event | None, on_info: InfoSink | None) -> ThroughputResult:
    # A keyed test is for a keyed netkit reflector: never an iperf3 server.
    if cfg.server in (ServerKind.AUTO, ServerKind.IPERF3) and cfg.key is None:
        ctrl = iperf3_udp.detect(cfg) if cfg.server == ServerKind.AUTO else None
        if cfg.server == ServerKind.IPERF3 or ctrl is not None:
            if ctrl is not None and on_info is not None:
                on_info("the server is an iperf3 server: running iperf3's UDP test")
            return iperf3_udp.run_iperf3_udp(cfg, on_interval, on_progress=on_progress, stop=stop, ctrl=ctrl)
    return throughput_udp.measure_reflector(cfg, on_interval, on_progress=on_progress, stop=stop)
