"""Prometheus' side of a mesh: the scrape config for every monitor and the alert rules. Pure.

``netkit mesh prometheus mesh.toml`` prints :func:`scrape_config`; with ``--rules``,
:func:`alert_rules`. Both are YAML written here: every scalar is a JSON string (``json.dumps``),
which YAML reads as a double-quoted scalar, so no host name, label value or annotation can turn
into YAML syntax.

The scrape config has one job with a static target per host (its monitor's ``ADDRESS:PORT``) and
that host's own labels from the mesh file. It never adds ``source``, ``target``, ``mesh`` or
``method`` as target labels: the monitors export those on every series, and a target label of the
same name would make Prometheus rename the scraped one to ``exported_source``.

The rules record two series per pair (source, target, method) over the window, the loss ratio
and the mean RTT, and alert on them: loss over a share; mean RTT above a factor of its own
one-day mean *and* above an absolute floor (loopback and LAN round trips of microseconds double
on any scheduling hiccup, which is no news); the path's hop count changing (only when the mesh
has a trace probe); a monitor that Prometheus cannot scrape (its pairs would go silent, not red).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from netkit.core.errors import InputError
from netkit.core.mesh_config import MeshConfig, monitor_document
from netkit.core.monitor_models import MonitorMethod

RULES_FILE = "netkit-mesh-rules.yml"
#: The labels that name a pair's series once the scrape's own (instance, job, host labels) are summed away.
PAIR_LABELS = ("mesh", "source", "target", "method")
#: Scraping faster than this is rarely worth its cost (a 100-host mesh is ~250k series per scrape):
#: counters and histograms lose nothing between scrapes, only gauges lose resolution.
MIN_DEFAULT_SCRAPE_S = 5.0
MAX_SCRAPE_S = 300.0
MIN_RULE_INTERVAL_S = 15.0
#: Prometheus' own default scrape timeout: a monitor answering slower than that is unhealthy.
MAX_SCRAPE_TIMEOUT_S = 10.0
DEFAULT_MAX_LOSS_PCT = 5.0
DEFAULT_WINDOW_S = 300.0
DEFAULT_RTT_FACTOR = 2.0
DEFAULT_RTT_FLOOR_S = 0.005
BASELINE = "1d"
TRACE_WINDOW = "15m"


@dataclass(frozen=True)
class RuleSettings:
    max_loss_pct: float = DEFAULT_MAX_LOSS_PCT
    window_s: float = DEFAULT_WINDOW_S
    rtt_factor: float = DEFAULT_RTT_FACTOR
    rtt_floor_s: float = DEFAULT_RTT_FLOOR_S


def q(value: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is a subset of it)."""
    return json.dumps(value)


def prom_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: ``5m``, ``1h30m``, ``1s``, ``500ms`` (whole milliseconds)."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise InputError(f"a duration must be at least 1ms, got {seconds}s")
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            count, ms = divmod(ms, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)


def job_name(mesh: MeshConfig) -> str:
    return "netkit_mesh_" + re.sub(r"[^A-Za-z0-9_]", "_", mesh.name)


def fastest_probe_interval_s(mesh: MeshConfig) -> float:
    """The shortest round interval among the mesh's probes, as the monitors will run them."""
    from netkit.core.monitor_config import CliSettings, build_config

    config = build_config(monitor_document(mesh, mesh.hosts[0].name), CliSettings())
    return min(t.interval_s for t in config.targets)


def default_scrape_interval_s(mesh: MeshConfig) -> float:
    """The fastest probe's interval, kept between ``MIN_DEFAULT_SCRAPE_S`` and ``MAX_SCRAPE_S``."""
    return min(max(fastest_probe_interval_s(mesh), MIN_DEFAULT_SCRAPE_S), MAX_SCRAPE_S)


def scrape_config(mesh: MeshConfig, *, scrape_interval_s: float | None = None,
                  rules_file: str = RULES_FILE) -> str:
    """prometheus.yml for the mesh: ``rule_files`` and one scrape job, a static target per host."""
    interval = default_scrape_interval_s(mesh) if scrape_interval_s is None else scrape_interval_s
    if not 0.001 <= interval <= MAX_SCRAPE_S:
        raise InputError(f"--scrape-interval: expected 1ms to {prom_duration(MAX_SCRAPE_S)}, got {interval}s")
    timeout = min(interval, MAX_SCRAPE_TIMEOUT_S)
    lines = [
        f"# Prometheus scrape config for netkit mesh {q(mesh.name)}: {len(mesh.hosts)} monitors.",
        "# Written by `netkit mesh prometheus`; merge rule_files and the job into an existing prometheus.yml.",
        "# The monitors export source, target, method and mesh on every series: no target label here sets them.",
        "rule_files:",
        f"  - {q(rules_file)}",
        "scrape_configs:",
        f"  - job_name: {q(job_name(mesh))}",
        f"    scrape_interval: {q(prom_duration(interval))}",
        f"    scrape_timeout: {q(prom_duration(timeout))}",
        "    static_configs:",
    ]
    for host in mesh.hosts:
        lines.append(f"      - targets: [{q(mesh.metrics_address(host))}]  # {q(host.name)}")
        if host.labels:
            lines.append("        labels:")
            lines += [f"          {q(name)}: {q(value)}" for name, value in host.labels]
    return "\n".join(lines) + "\n"


# ----- rules -----------------------------------------------------------------------------------------
def _selector(mesh_name: str) -> str:
    return "{" + f"mesh={json.dumps(mesh_name)}" + "}"


def _by() -> str:
    return f"sum by ({', '.join(PAIR_LABELS)})"


def loss_record_name(window: str) -> str:
    return f"netkit_mesh:loss_ratio:{window}"


def rtt_record_name(window: str) -> str:
    return f"netkit_mesh:rtt_mean_seconds:{window}"


def loss_ratio_expr(mesh_name: str, window: str) -> str:
    """Packets lost / sent per pair over the window (NaN, so never alerting, when none were sent)."""
    sel = _selector(mesh_name)
    return (f"{_by()} (increase(netkit_packets_lost_total{sel}[{window}]))\n"
            f"  / {_by()} (increase(netkit_packets_sent_total{sel}[{window}]))")


def rtt_mean_expr(mesh_name: str, window: str) -> str:
    """Mean RTT per pair over the window, from the histogram's sum and count."""
    sel = _selector(mesh_name)
    return (f"{_by()} (rate(netkit_rtt_seconds_sum{sel}[{window}]))\n"
            f"  / {_by()} (rate(netkit_rtt_seconds_count{sel}[{window}]))")


def _percent(value: float) -> str:
    return f"{value:g} %"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"


def _block(indent: str, text: str) -> list[str]:
    """A YAML literal block scalar (``|-``): a PromQL expression keeps its lines and quotes as written."""
    return [f"{indent}{line}" for line in text.splitlines()]


def _rule(kind: str, name: str, expr: str, *, for_: str | None = None, severity: str | None = None,
          summary: str | None = None, description: str | None = None) -> list[str]:
    lines = [f"      - {kind}: {q(name)}", "        expr: |-", *_block("          ", expr)]
    if for_ is not None:
        lines.append(f"        for: {q(for_)}")
    if severity is not None:
        lines += ["        labels:", f"          severity: {q(severity)}"]
    if summary is not None:
        lines += ["        annotations:", f"          summary: {q(summary)}"]
        if description is not None:
            lines.append(f"          description: {q(description)}")
    return lines


def alert_rules(mesh: MeshConfig, settings: RuleSettings = RuleSettings(), *,
                scrape_interval_s: float | None = None) -> str:
    """The rules file: recording rules per pair and the alerts on them."""
    if not (math.isfinite(settings.max_loss_pct) and 0 <= settings.max_loss_pct < 100):
        raise InputError(f"--max-loss: expected a percentage from 0 to below 100, got {settings.max_loss_pct}")
    if not (math.isfinite(settings.rtt_factor) and settings.rtt_factor > 1):
        raise InputError(f"--rtt-factor: expected a factor above 1, got {settings.rtt_factor}")
    if not (math.isfinite(settings.rtt_floor_s) and settings.rtt_floor_s >= 0):
        raise InputError(f"--rtt-floor: expected a duration, got {settings.rtt_floor_s}")
    scrape_s = default_scrape_interval_s(mesh) if scrape_interval_s is None else scrape_interval_s
    if settings.window_s < 2 * scrape_s:
        raise InputError(f"--window: {prom_duration(settings.window_s)} holds fewer than two scrapes "
                         f"{prom_duration(scrape_s)} apart: rate() needs two; give at least "
                         f"{prom_duration(2 * scrape_s)}")
    window = prom_duration(settings.window_s)
    # An alert holds for half its window: long enough that one bad scrape does not page anyone.
    hold = prom_duration(max(settings.window_s / 2, scrape_s))
    sel = _selector(mesh.name)
    pair = "{{ $labels.source }} to {{ $labels.target }} ({{ $labels.method }}, mesh {{ $labels.mesh }})"
    loss_record = loss_record_name(window)
    rtt_record = rtt_record_name(window)
    lines = [
        f"# Alert rules for netkit mesh {q(mesh.name)}, written by `netkit mesh prometheus --rules`.",
        "groups:",
        f"  - name: {q(job_name(mesh))}",
        f"    interval: {q(prom_duration(max(scrape_s, MIN_RULE_INTERVAL_S)))}",
        "    rules:",
        *_rule("record", loss_record, loss_ratio_expr(mesh.name, window)),
        *_rule("record", rtt_record, rtt_mean_expr(mesh.name, window)),
        *_rule("alert", "NetkitMeshLoss", f"{loss_record}{sel} * 100 > {settings.max_loss_pct:g}",
               for_=hold, severity="warning",
               summary=f"{pair}: {{{{ $value | printf \"%.1f\" }}}} % of packets lost over {window}",
               description=f"More than {_percent(settings.max_loss_pct)} of the probes from source to target "
                           f"went unanswered over the last {window}, for {hold} on end."),
        *_rule("alert", "NetkitMeshRttAboveBaseline",
               f"{rtt_record}{sel}\n"
               f"  > {settings.rtt_factor:g} * avg_over_time({rtt_record}{sel}[{BASELINE}])\n"
               f"and\n{rtt_record}{sel} > {settings.rtt_floor_s:g}",
               for_=hold, severity="warning",
               summary=f"{pair}: mean RTT {{{{ $value | humanizeDuration }}}} over {window}, "
                       f"above {settings.rtt_factor:g}x its {BASELINE} mean",
               description=f"The mean round-trip time over {window} is above {settings.rtt_factor:g} times "
                           f"its mean over the last {BASELINE} and above {_ms(settings.rtt_floor_s)}: "
                           "the floor keeps paths of microseconds (loopback, a LAN), whose RTT doubles on "
                           "any scheduling hiccup, from alerting."),
        *_rule("alert", "NetkitMeshTargetDown",
               f"min by ({', '.join(PAIR_LABELS)}) (netkit_probe_success{sel}) == 0",
               for_=hold, severity="warning",
               summary=f"{pair}: no answer",
               description="The target did not answer the source's last rounds at all. A target that "
                           "refuses (no reflector, a closed port) gets no latency packets, so this, not "
                           "the loss alert, is what fires."),
        *_rule("alert", "NetkitMeshMonitorDown", f"up{{job={json.dumps(job_name(mesh))}}} == 0",
               for_=hold, severity="warning",
               summary="netkit monitor {{ $labels.instance }} of mesh " + mesh.name + " is not scraped",
               description="Prometheus cannot scrape this host's monitor: its pairs (as source) have no "
                           "new data, so their loss and RTT alerts cannot fire."),
    ]
    if any(p.method is MonitorMethod.TRACE for p in mesh.probes):
        lines += _rule("alert", "NetkitMeshPathChanged",
                       f"changes(netkit_trace_hops{sel}[{TRACE_WINDOW}]) > 0", severity="info",
                       summary=f"{pair}: the path's hop count changed "
                               f"{{{{ $value }}}} times in {TRACE_WINDOW}",
                       description="netkit_trace_hops (the TTL at which the target answered) changed: "
                                   "the route moved, or the target stopped answering (0 hops).")
    return "\n".join(lines) + "\n"


def rule_names(text: str) -> Sequence[str]:
    """The alert and record names in a rules file this module wrote (for tests and the summary)."""
    return re.findall(r'^      - (?:alert|record): "([^"]+)"', text, re.M)
