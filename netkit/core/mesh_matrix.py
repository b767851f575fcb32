"""The mesh's loss and RTT matrix, from Prometheus' answers or from monitors' /metrics. Pure.

A pair is (source, target, method) within one mesh: the host that measured, the host measured,
and the probe. Its figures come from four counters the monitors export per pair: packets sent,
packets lost, and the RTT histogram's sum and count. Through Prometheus they are ``increase()``
over a window (which extrapolates, so counts may be fractional); read straight from /metrics
they are totals since each monitor started.

This module writes the PromQL, reads Prometheus' JSON answers and the monitors' samples, and
assembles the pairs; the I/O layer fetches, the renderer draws.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netkit.core.errors import CheckFailed, InputError, NetkitError
from netkit.core.exitcodes import ExitCode
from netkit.core.units import format_percent

#: The figures of one pair and the counter each is read from.
COUNTERS = {
    "sent": "netkit_packets_sent_total",
    "lost": "netkit_packets_lost_total",
    "rtt_sum": "netkit_rtt_seconds_sum",
    "rtt_count": "netkit_rtt_seconds_count",
}
#: The last round's outcome per pair (a gauge: read as it is now, not over the window).
SUCCESS = "netkit_probe_success"
PAIR_LABELS = ("mesh", "source", "target", "method")
DEFAULT_METHOD = "udp"
#: A Prometheus answer with more series than this is not a mesh one person runs (1000 hosts, one method).
MAX_SERIES = 1_000_000
_LABEL_VALUE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


class BadAnswer(NetkitError):
    """Prometheus (or a monitor) answered, but not with what was asked: exit 3."""

    exit_code = ExitCode.RUNTIME


PairKey = tuple[str, str, str, str]  # (mesh, source, target, method)


@dataclass(frozen=True)
class MeshPair:
    """One (source, target, method) pair's figures; ``None`` where nothing was measured."""

    mesh: str
    source: str
    target: str
    method: str
    sent: float
    lost: float
    loss_pct: float | None  # lost / sent, in percent; None when nothing was sent
    rtt_mean_ms: float | None  # mean of the answered packets' round trips; None when none answered
    rtt_samples: float  # answered packets the mean is over
    reachable: bool | None = None  # the last round got an answer; None when no round has ended


@dataclass(frozen=True)
class MeshMatrix:
    """Every pair of one mesh and method, and where the figures came from."""

    mesh: str
    method: str
    origin: str  # "prometheus" (over window_s) or "metrics" (totals since each monitor started)
    window_s: float | None
    hosts: tuple[str, ...]  # every host seen as a source or a target, sorted
    pairs: tuple[MeshPair, ...]  # sorted by source, then target

    def pair(self, source: str, target: str) -> MeshPair | None:
        for p in self.pairs:
            if p.source == source and p.target == target:
                return p
        return None


# ----- PromQL ----------------------------------------------------------------------------------------
def _quote(value: str) -> str:
    return json.dumps(value)  # PromQL's double-quoted strings escape as JSON's do


def selector(mesh: str | None, method: str | None = None) -> str:
    """Series of mesh monitors only (``source`` set), of one mesh and method when given."""
    parts = ['source!=""']
    if mesh is not None:
        parts.append(f"mesh={_quote(mesh)}")
    if method is not None:
        parts.append(f"method={_quote(method)}")
    return "{" + ",".join(parts) + "}"


def methods_query(mesh: str | None) -> str:
    """The (mesh, method) combinations present: one series each."""
    return f"count by (mesh, method) (netkit_packets_sent_total{selector(mesh)})"


def pair_queries(window: str, mesh: str | None, method: str) -> dict[str, str]:
    """Instant queries, one per figure: its increase over ``window`` per pair.

    ``max by`` the pair labels drops the scrape's own (instance, job, the hosts' labels): one
    monitor exports each pair once, so a pair that two jobs scrape is the same counter twice, and
    its count stays what the monitor counted (a sum would double it).
    """
    sel = selector(mesh, method)
    by = f"max by ({', '.join(PAIR_LABELS)})"
    queries = {figure: f"{by} (increase({metric}{sel}[{window}]))" for figure, metric in COUNTERS.items()}
    # A target that refuses (no reflector) gets no latency packets at all: only this tells.
    queries["success"] = f"min by ({', '.join(PAIR_LABELS)}) ({SUCCESS}{sel})"
    return queries


# ----- Prometheus' answers ---------------------------------------------------------------------------
def parse_vector(body: bytes | str) -> list[tuple[dict[str, str], float]]:
    """The samples of an instant query's JSON answer (``resultType`` vector).

    Raises :class:`BadAnswer` for anything else, with Prometheus' own error when it gave one.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadAnswer("the answer is not JSON: is this Prometheus (http://HOST:9090)?") from None
    if not isinstance(doc, dict):
        raise BadAnswer("Prometheus' answer is not a JSON object")
    if doc.get("status") != "success":
        error = str(doc.get("error", "no error given"))[:200]
        raise BadAnswer(f"Prometheus refused the query: {error}")
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise BadAnswer("Prometheus' answer is not an instant vector")
    result = data["result"]
    if len(result) > MAX_SERIES:
        raise BadAnswer(f"Prometheus answered {len(result)} series, more than {MAX_SERIES}")
    samples: list[tuple[dict[str, str], float]] = []
    for item in result:
        try:
            labels = item["metric"]
            value = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            raise BadAnswer("Prometheus' answer has a sample without labels or value") from None
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise BadAnswer("Prometheus' answer has a sample with labels that are not text")
        samples.append((labels, value))
    return samples


def _key(labels: Mapping[str, str]) -> PairKey | None:
    key = tuple(labels.get(n, "") for n in PAIR_LABELS)
    # Names become table headings: a value with control characters is no host of a mesh file.
    if not all(_LABEL_VALUE.match(v) for v in key):
        return None
    return key  # type: ignore[return-value]


def by_pair(samples: Iterable[tuple[Mapping[str, str], float]]) -> dict[PairKey, float]:
    """Samples summed per pair; series missing a pair label are left out."""
    out: dict[PairKey, float] = {}
    for labels, value in samples:
        key = _key(labels)
        if key is not None and math.isfinite(value):
            out[key] = out.get(key, 0.0) + value
    return out


def choose_method(present: Iterable[tuple[str, str]], mesh: str | None, method: str | None) -> tuple[str, str]:
    """(mesh, method) to show from the combinations present: the one asked for; else udp; else the only one.

    Raises :class:`InputError` naming what there is to choose from.
    """
    combos = sorted(set(present))
    if not combos:
        where = f"mesh {mesh!r}" if mesh is not None else "any mesh"
        raise BadAnswer(f"no netkit mesh series for {where} (netkit_packets_sent_total with a source label): "
                        "are the monitors running with --mesh, and scraped?")
    meshes = sorted({m for m, _ in combos})
    if mesh is None and len(meshes) > 1:
        raise InputError(f"several meshes ({', '.join(meshes)}): choose one with --mesh")
    chosen_mesh = mesh if mesh is not None else meshes[0]
    methods = sorted({me for m, me in combos if m == chosen_mesh})
    if method is not None:
        if method not in methods:
            raise InputError(f"--method {method}: mesh {chosen_mesh!r} has no such probe "
                             f"(it has: {', '.join(methods)})")
        return chosen_mesh, method
    if DEFAULT_METHOD in methods:
        return chosen_mesh, DEFAULT_METHOD
    if len(methods) == 1:
        return chosen_mesh, methods[0]
    raise InputError(f"mesh {chosen_mesh!r} has probes {', '.join(methods)}: choose one with --method")


# ----- /metrics samples ------------------------------------------------------------------------------
def present_in_samples(samples: Iterable[tuple[str, Mapping[str, str], float]]) -> set[tuple[str, str]]:
    """(mesh, method) combinations among scraped samples (name, labels, value)."""
    return {(labels.get("mesh", ""), labels.get("method", "")) for name, labels, _ in samples
            if name == COUNTERS["sent"] and labels.get("source")}


def figures_from_samples(samples: Iterable[tuple[str, Mapping[str, str], float]], mesh: str,
                         method: str) -> dict[str, dict[PairKey, float]]:
    """Per figure, the pairs' totals among scraped samples of one mesh and method."""
    wanted = {metric: figure for figure, metric in COUNTERS.items()}
    wanted[SUCCESS] = "success"
    found: dict[str, list[tuple[Mapping[str, str], float]]] = {figure: [] for figure in wanted.values()}
    for name, labels, value in samples:
        figure = wanted.get(name)
        if figure is not None and labels.get("source") and labels.get("mesh") == mesh \
                and labels.get("method") == method:
            found[figure].append((labels, value))
    return {figure: by_pair(items) for figure, items in found.items()}


# ----- assembly --------------------------------------------------------------------------------------
def assemble(figures: Mapping[str, Mapping[PairKey, float]], *, mesh: str, method: str, origin: str,
             window_s: float | None) -> MeshMatrix:
    """The matrix from each figure's per-pair values (keys of :data:`COUNTERS`)."""
    keys = sorted({k for values in figures.values() for k in values if k[0] == mesh and k[3] == method},
                  key=lambda k: (k[1], k[2]))
    pairs: list[MeshPair] = []
    for key in keys:
        sent = max(figures.get("sent", {}).get(key, 0.0), 0.0)
        lost = min(max(figures.get("lost", {}).get(key, 0.0), 0.0), sent)
        rtt_sum = figures.get("rtt_sum", {}).get(key, 0.0)
        rtt_count = max(figures.get("rtt_count", {}).get(key, 0.0), 0.0)
        success = figures.get("success", {}).get(key)
        pairs.append(MeshPair(
            mesh=key[0], source=key[1], target=key[2], method=key[3],
            sent=_tidy(sent), lost=_tidy(lost),
            loss_pct=round(lost / sent * 100, 6) if sent > 0 else None,
            rtt_mean_ms=round(rtt_sum / rtt_count * 1000, 6) if rtt_count > 0 else None,
            rtt_samples=_tidy(rtt_count),
            reachable=None if success is None else success > 0,
        ))
    hosts = sorted({p.source for p in pairs} | {p.target for p in pairs})
    return MeshMatrix(mesh=mesh, method=method, origin=origin, window_s=window_s, hosts=tuple(hosts),
                      pairs=tuple(pairs))


def _tidy(count: float) -> float:
    """A count as a whole number when it is one (totals), else to a thousandth (increase() extrapolates)."""
    rounded = round(count, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def worst_first(pairs: Sequence[MeshPair]) -> list[MeshPair]:
    """Unreachable first, then most loss, then slowest; pairs without figures last, then by name."""
    def rank(p: MeshPair) -> tuple[bool, bool, float, float, str, str]:
        return (p.reachable is not False, p.loss_pct is None, -(p.loss_pct or 0.0), -(p.rtt_mean_ms or 0.0),
                p.source, p.target)
    return sorted(pairs, key=rank)


def over_max_loss(matrix: MeshMatrix, max_loss_pct: float) -> list[MeshPair]:
    """Pairs whose loss is above ``max_loss_pct``, and those whose target does not answer at all."""
    return [p for p in worst_first(matrix.pairs)
            if p.reachable is False or (p.loss_pct is not None and p.loss_pct > max_loss_pct)]


def check_max_loss(matrix: MeshMatrix, max_loss_pct: float | None) -> None:
    """Raise :class:`CheckFailed` naming the worst pairs when any is over ``max_loss_pct``."""
    if max_loss_pct is None:
        return
    bad = over_max_loss(matrix, max_loss_pct)
    if bad:
        named = ", ".join(f"{p.source}->{p.target} {pair_state(p)}" for p in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise CheckFailed(f"{len(bad)} of {len(matrix.pairs)} pairs lose more than {max_loss_pct:g} % "
                          f"or are unreachable: {named}{more}")


def pair_state(pair: MeshPair) -> str:
    """``12.5 %`` loss, or ``unreachable`` when the last round got no answer and nothing was counted."""
    if pair.reachable is False and not pair.sent:
        return "unreachable"
    return format_percent(pair.loss_pct)


def pair_records(matrix: MeshMatrix) -> list[dict[str, Any]]:
    """The pairs as JSON/CSV records: field names are the published interface."""
    return [{
        "mesh": p.mesh, "source": p.source, "target": p.target, "method": p.method,
        "window_s": matrix.window_s, "sent": p.sent, "lost": p.lost, "loss_pct": p.loss_pct,
        "rtt_mean_ms": p.rtt_mean_ms, "rtt_samples": p.rtt_samples, "reachable": p.reachable,
    } for p in matrix.pairs]


RECORD_FIELDS = ("mesh", "source", "target", "method", "window_s", "sent", "lost", "loss_pct", "rtt_mean_ms",
                 "rtt_samples", "reachable")
