"""``netkit monitor --config FILE``: TOML text and command-line settings to a ``MonitorConfig``.

Pure: the caller reads the file (``netkit.io.measure.monitor.load_config``) and passes the text in.
Every error is one line that names the key it is about (``targets[2].interval: ...``), because
a reload on SIGHUP must tell the operator exactly what to fix while the old config keeps running.

A round must hold its latency packets: ``(packets - 1) * packet_interval + timeout`` must fit
the round's bound, 90% of the interval, or the config is refused with the numbers (exit 2). The
defaults (timeout and spacing shrink with the interval) always fit. The reachability attempts
come first and usually take one round trip; when they run long (retries, a slow name lookup),
the round sends only the packets that can still be answered within its bound, and the monitor
says so once per target (``netkit.io.measure.monitor``).

A ``trace`` target (``HOST``, or ``HOST:PORT`` for one fixed udp port) traces its path once per
round: every TTL up to ``max_hops`` probed once, each answer awaited up to ``timeout``; a round
still unfinished at its bound ends there with what it found. ``packets`` and ``packet_interval``
do not apply to it.

Precedence, most specific first: a ``[[targets]]`` entry's own key, then an option given on the
command line, then the file's top-level key, then the built-in default.

The file::

    interval = "10s"          # every key here is optional
    method = "tcp-connect"    # tcp-connect | udp | icmp | trace
    timeout = "1s"            # per attempt and per packet (default: 1s or interval/4, the shorter)
    packets = 3               # latency packets per round
    packet_interval = "100ms" # (default: 100ms or interval/10, the shorter)
    retries = 0               # reachability retries per round
    max_hops = 30             # trace: the highest TTL probed
    listen = "127.0.0.1:9464" # false: no HTTP endpoint
    textfile = "/var/lib/node_exporter/textfile/netkit.prom"
    window = 10               # rounds the dashboard's loss column covers
    buckets = [0.001, 0.01, 0.1, 1.0]   # RTT histogram bounds, seconds
    labels = { site = "fra1" }          # added to every target
    key_file = "mesh.key"     # udp probes signed for a keyed reflector (netkit serve udp --key-file);
                              # or key_env = "NETKIT_MESH_KEY"; never the key itself. A relative
                              # key_file is read from the config file's directory.

    [[targets]]
    host = "db.internal"      # or: target = "db.internal:5432"
    port = 5432
    name = "db"               # the target label (default HOST:PORT)
    method = "tcp-connect"
    interval = "5s"
    labels = { role = "db" }

    [[targets]]
    host = "198.18.0.1"       # trace: the path hop by hop (no port: traceroute's ports)
    method = "trace"

    [[targets]]
    target = "127.0.0.1:53"   # dns: the server; what it is asked: see netkit.core.monitor_dns
    method = "dns"
    query_name = "example.com"
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netkit.core.errors import InputError
from netkit.core.monitor_dns import DNS_KEYS, DNS_LABELS, DNS_PORTS, parse_dns_probe
from netkit.core.monitor_http import HTTP_KEYS, HttpProbeSpec, parse_http_spec
from netkit.core.monitor_models import (
    DEFAULT_BUCKETS,
    DEFAULT_LISTEN,
    METHODS,
    RESERVED_LABELS,
    TRACE_LABELS,
    KeyRef,
    MonitorConfig,
    MonitorMethod,
    MonitorTarget,
)
from netkit.core.monitor_trace import DEFAULT_MAX_HOPS
from netkit.core.targets import format_host_port, parse_port, split_host_port, validate_host
from netkit.core.units import format_duration, parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_INTERVAL_S = 10.0
DEFAULT_METHOD = "tcp-connect"
DEFAULT_PACKETS = 3
DEFAULT_PACKET_INTERVAL_S = 0.1
DEFAULT_RETRIES = 0
DEFAULT_WINDOW = 10
MAX_TIMEOUT_S = 1.0
MAX_PACKETS = 1000
MAX_TARGETS = 10_000
#: A round may take this share of its interval (``MonitorTarget.budget_s``), so rounds never overlap.
ROUND_SHARE = 0.9
#: Float rounding in the packet train (e.g. 4 * 0.1 + 0.5 against 0.9) is not a misfit.
_SLACK_S = 1e-9

TOP_KEYS = ("interval", "method", "timeout", "packets", "packet_interval", "retries", "max_hops", "listen",
            "textfile", "window", "buckets", "labels", "key_file", "key_env", "targets")
TARGET_KEYS = ("target", "host", "port", "name", "method", "interval", "timeout", "packets", "packet_interval",
               "retries", "max_hops", "labels", *HTTP_KEYS,
               *(k for k in DNS_KEYS if k not in HTTP_KEYS))
#: Settings a target inherits (from its entry, the command line, the file's top level).
SETTINGS = ("interval", "method", "timeout", "packets", "packet_interval", "retries", "max_hops")
CLI_NAMES = {"packet_interval": "--packet-interval", "max_hops": "--max-hops"}
MAX_HOPS_LIMIT = 255
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class CliSettings:
    """What the command line says: target texts and only the options the user gave explicitly.

    ``overrides`` holds parsed values (seconds as float, counts as int) keyed like the TOML
    (``interval``, ``packet_interval``, ``listen`` as (host, port), ``textfile``, ...).
    """

    targets: tuple[str, ...] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)


def parse_toml(text: str) -> dict[str, Any]:
    """TOML text to a dict; a syntax error becomes one line with TOML's own position."""
    try:
        document: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}") from None
    return document


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (port 0: any free port) for the metrics endpoint."""
    host, port_s = split_host_port(text)
    if port_s is None:
        raise InputError(f"invalid listen address {text!r}: write HOST:PORT")
    if port_s.strip() == "0":
        return host, 0
    return host, parse_port(port_s)


# ----- typed value readers: each names the key it reads in its error ------------------------
def _err(key: str, message: str) -> InputError:
    return InputError(f"{key}: {message}")


def _duration(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise _err(key, f"expected a duration like \"10s\", got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except InputError as exc:
            raise _err(key, str(exc)) from None
    else:
        raise _err(key, f"expected a duration like \"10s\", got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise _err(key, "must be more than 0")
    return seconds


def _int(key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err(key, f"expected a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise _err(key, f"must be {lo}-{hi}, got {value}")
    return value


def _method(key: str, value: Any) -> MonitorMethod:
    if value not in METHODS:
        raise _err(key, f"unknown method {value!r} (one of {', '.join(METHODS)})")
    return MonitorMethod(value)


def parse_labels(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _err(key, "expected a table of name = \"value\"")
    out: dict[str, str] = {}
    for name, v in value.items():
        if not _LABEL_NAME.match(name) or name.startswith("__") or name == "le":
            raise _err(f"{key}.{name}", "not a valid Prometheus label name")
        if name in RESERVED_LABELS or name in TRACE_LABELS or name in DNS_LABELS:
            raise _err(f"{key}.{name}", f"{name!r} is set by netkit itself")
        if isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, (str, int, float)):
            raise _err(f"{key}.{name}", "expected a string")
        out[name] = str(v)
    return out


def _buckets(key: str, value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise _err(key, "expected a non-empty list of seconds")
    out: list[float] = []
    for i, b in enumerate(value):
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b <= 0:
            raise _err(f"{key}[{i}]", f"expected a positive number of seconds, got {b!r}")
        if out and b <= out[-1]:
            raise _err(f"{key}[{i}]", "bounds must increase")
        out.append(float(b))
    return tuple(out)


def _check_keys(where: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for k in table:
        if k == "key" and not where:
            raise InputError("key: the key is never written in the file: give key_file or key_env")
        if k not in allowed:
            prefix = f"{where}." if where else ""
            raise InputError(f"{prefix}{k}: unknown key (known: {', '.join(allowed)})")


def parse_key_ref(doc: Mapping[str, Any]) -> KeyRef | None:
    """The top-level ``key_file`` or ``key_env`` (not both) as a reference; None when neither."""
    if "key_file" in doc and "key_env" in doc:
        raise _err("key_env", "give key_file or key_env, not both")
    if "key_file" in doc:
        path = doc["key_file"]
        if not isinstance(path, str) or not path.strip():
            raise _err("key_file", f"expected a file path, got {path!r}")
        return KeyRef(file=path)
    if "key_env" in doc:
        name = doc["key_env"]
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise _err("key_env", f"expected an environment variable's name, got {name!r}")
        return KeyRef(env=name)
    return None


def _read_setting(name: str, key: str, value: Any) -> Any:
    if name in ("interval", "timeout", "packet_interval"):
        return _duration(key, value)
    if name == "method":
        return _method(key, value)
    if name == "packets":
        return _int(key, value, 1, MAX_PACKETS)
    if name == "retries":
        return _int(key, value, 0, 100)
    if name == "max_hops":
        return _int(key, value, 1, MAX_HOPS_LIMIT)
    raise AssertionError(name)


# ----- assembling -----------------------------------------------------------------------------
@dataclass
class _Layer:
    """Setting values with the key each came from (for error messages)."""

    values: dict[str, tuple[Any, str]] = field(default_factory=dict)

    def get(self, name: str) -> tuple[Any, str] | None:
        return self.values.get(name)


def _resolve(name: str, layers: list[_Layer]) -> tuple[Any, str] | None:
    for layer in layers:
        got = layer.get(name)
        if got is not None:
            return got
    return None


def _make_target(where: str, name: str | None, host: str, port: int, labels: dict[str, str],
                 layers: list[_Layer], http: HttpProbeSpec | None = None,
                 entry: Mapping[str, Any] | None = None) -> MonitorTarget:
    interval, interval_key = _resolve("interval", layers) or (DEFAULT_INTERVAL_S, "interval")
    found, _ = _resolve("method", layers) or (DEFAULT_METHOD, "method")
    method = MonitorMethod(found)
    packets, _ = _resolve("packets", layers) or (DEFAULT_PACKETS, "packets")
    # Unset spacing and timeout shrink with a short interval, so the defaults always fit a round.
    spacing, spacing_key = (_resolve("packet_interval", layers)
                            or (min(DEFAULT_PACKET_INTERVAL_S, interval / 10), "packet_interval"))
    retries, _ = _resolve("retries", layers) or (DEFAULT_RETRIES, "retries")
    max_hops, _ = _resolve("max_hops", layers) or (DEFAULT_MAX_HOPS, "max_hops")
    timeout_got = _resolve("timeout", layers)
    if timeout_got is None:
        timeout, timeout_key = min(MAX_TIMEOUT_S, interval / 4), "timeout"
    else:
        timeout, timeout_key = timeout_got
        if timeout >= interval:
            raise _err(timeout_key, f"{format_duration(timeout)} must be shorter than the interval "
                                    f"{format_duration(interval)} ({where})")
    budget = interval * ROUND_SHARE
    # Trace, http and dns rounds send no latency packets: each is one exchange (a trace round, a
    # request, a query) bounded by the round itself.
    single = method in (MonitorMethod.TRACE, MonitorMethod.HTTP, MonitorMethod.DNS)
    train = timeout if single else (packets - 1) * spacing + timeout
    if single and train > budget + _SLACK_S:
        raise _err(timeout_key, f"{format_duration(timeout)} is more than the round's {format_duration(budget)} "
                                f"(90% of the interval {format_duration(interval)}; {where}; see {interval_key})")
    if train > budget + _SLACK_S:
        raise _err(spacing_key, f"{packets} packets {format_duration(spacing)} apart plus the "
                                f"{format_duration(timeout)} timeout take {format_duration(train)}: more than the "
                                f"round's {format_duration(budget)} (90% of the interval {format_duration(interval)}; "
                                f"{where}; see {interval_key})")
    dns_probe = None
    # cafile and insecure belong to http targets too: only the other dns keys name the method.
    given = [k for k in DNS_KEYS if entry is not None and k in entry
             and not (method is MonitorMethod.HTTP and k in HTTP_KEYS)]
    if method is MonitorMethod.DNS and entry is None:
        raise _err(where, "method dns asks a question: give the target in --config ([[targets]] with query_name)")
    if method is MonitorMethod.DNS:
        max_rtt = _duration(f"{where}.max_rtt", entry["max_rtt"]) if entry and "max_rtt" in entry else None
        try:
            dns_probe = parse_dns_probe(where, entry or {}, max_rtt)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        port = port or DNS_PORTS[dns_probe.transport]
    elif given:
        raise _err(f"{where}.{given[0]}", f"applies to method dns only (this target's is {method})")
    if method not in (MonitorMethod.ICMP, MonitorMethod.TRACE) and port == 0:
        raise _err(where, f"no port for method {method} (write HOST:PORT or set port)")
    if method is MonitorMethod.ICMP:
        port = 0
    if (method is MonitorMethod.HTTP) != (http is not None):
        raise _err(where, "method http needs url = \"http(s)://...\"" if http is None
                   else f"url is for method http, not {method}")
    label = name or (str(http.url) if http is not None else host if port == 0 else format_host_port(host, port))
    return MonitorTarget(
        name=label, host=host, port=port, method=method, interval_s=float(interval), timeout_s=float(timeout),
        packets=packets, packet_interval_s=float(spacing), retries=retries,
        labels=tuple(sorted(labels.items())), max_hops=max_hops, http=http, dns=dns_probe,
    )


def _host_port(where: str, text: str) -> tuple[str, int]:
    try:
        host, port_s = split_host_port(text)
        return host, (0 if port_s is None else parse_port(port_s))
    except InputError as exc:
        raise _err(where, str(exc)) from None


def build_config(doc: Mapping[str, Any] | None, cli: CliSettings) -> MonitorConfig:
    """The resolved config from the parsed TOML (or None) and the command line."""
    doc = doc or {}
    _check_keys("", doc, TOP_KEYS)
    top = _Layer()
    for name in SETTINGS:
        if name in doc:
            top.values[name] = (_read_setting(name, name, doc[name]), name)
    cli_layer = _Layer()
    for name in SETTINGS:
        if name in cli.overrides and cli.overrides[name] is not None:
            cli_layer.values[name] = (cli.overrides[name], CLI_NAMES.get(name, f"--{name}"))
    common_labels = parse_labels("labels", doc["labels"]) if "labels" in doc else {}

    targets: list[MonitorTarget] = []
    for text in cli.targets:
        where = f"target {text!r}"
        host, port = _host_port(where, text)
        targets.append(_make_target(where, None, host, port, dict(common_labels), [cli_layer, top]))

    entries = doc.get("targets", [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise _err("targets", "expected [[targets]] tables")
    for i, entry in enumerate(entries):
        where = f"targets[{i}]"
        _check_keys(where, entry, TARGET_KEYS)
        own = _Layer()
        for name in SETTINGS:
            if name in entry:
                own.values[name] = (_read_setting(name, f"{where}.{name}", entry[name]), f"{where}.{name}")
        http = None
        if "url" in entry:
            if "target" in entry or "host" in entry or "port" in entry:
                raise _err(f"{where}.url", "give url alone (its host and port are the target)")
            http = parse_http_spec(where, entry)
            host, port = http.url.host, http.url.port
            own.values.setdefault("method", (MonitorMethod.HTTP, f"{where}.url"))
        elif any(k in entry for k in HTTP_KEYS if k not in DNS_KEYS):
            key = next(k for k in HTTP_KEYS if k in entry and k not in DNS_KEYS)
            raise _err(where, f"{key} needs url (method http)")
        elif "target" in entry:
            if "host" in entry:
                raise _err(f"{where}.host", "give either target or host, not both")
            if not isinstance(entry["target"], str):
                raise _err(f"{where}.target", "expected \"HOST:PORT\"")
            host, port = _host_port(f"{where}.target", entry["target"])
            if "port" in entry and port:
                raise _err(f"{where}.port", "the target already has a port")
        elif "host" in entry:
            if not isinstance(entry["host"], str):
                raise _err(f"{where}.host", "expected a string")
            try:
                host = validate_host(entry["host"])
            except InputError as exc:
                raise _err(f"{where}.host", str(exc)) from None
            port = 0
        else:
            raise _err(where, "needs target = \"HOST:PORT\" or host = \"HOST\"")
        if "port" in entry:
            port = _int(f"{where}.port", entry["port"], 1, 65535)
        name = entry.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise _err(f"{where}.name", "expected a non-empty string")
        labels = dict(common_labels)
        if "labels" in entry:
            labels.update(parse_labels(f"{where}.labels", entry["labels"]))
        targets.append(_make_target(where, name, host, port, labels, [own, cli_layer, top], http, entry))

    if not targets:
        raise InputError("no targets: give HOST:PORT arguments or [[targets]] in --config")
    if len(targets) > MAX_TARGETS:
        raise _err("targets", f"at most {MAX_TARGETS} targets, got {len(targets)}")
    seen: set[tuple[str, str]] = set()
    for t in targets:
        if t.key in seen:
            raise _err("targets", f"{t.name!r} ({t.method}) appears twice; give one a distinct name")
        seen.add(t.key)

    # Where metrics go.
    textfile = cli.overrides.get("textfile")
    if textfile is None and "textfile" in doc:
        if not isinstance(doc["textfile"], str) or not doc["textfile"]:
            raise _err("textfile", "expected a file path")
        textfile = doc["textfile"]
    listen: tuple[str, int] | None
    if cli.overrides.get("listen") is not None:
        listen = cli.overrides["listen"]
    elif "listen" in doc:
        value = doc["listen"]
        if value is False:
            listen = None
        elif isinstance(value, str):
            try:
                listen = parse_listen(value)
            except InputError as exc:
                raise _err("listen", str(exc)) from None
        else:
            raise _err("listen", "expected \"HOST:PORT\" or false")
    else:
        # A textfile alone is the node_exporter set-up: no HTTP endpoint unless asked for.
        listen = None if textfile else DEFAULT_LISTEN
    window = cli.overrides.get("window")
    if window is None:
        window = _int("window", doc["window"], 1, 10_000) if "window" in doc else DEFAULT_WINDOW
    buckets = _buckets("buckets", doc["buckets"]) if "buckets" in doc else DEFAULT_BUCKETS
    return MonitorConfig(targets=tuple(targets), listen=listen, textfile=textfile, window=window, buckets=buckets,
                         key_ref=parse_key_ref(doc), common_labels=tuple(sorted(common_labels.items())))


def config_from_text(text: str | None, cli: CliSettings) -> MonitorConfig:
    """Convenience: TOML text (or None for no file) and the command line to a config."""
    return build_config(parse_toml(text) if text is not None else None, cli)
