"""A mesh file: hosts that each run ``netkit monitor`` probing all the others. Pure.

Every host runs two commands: a keyed reflector that answers the others' udp probes, and
``netkit monitor --mesh mesh.toml --self NAME``, which probes every other host with every probe of
the file. Each series carries ``source`` (the host that measured) and ``target`` (the host measured),
so one PromQL query over all the monitors gives the mesh's matrix. ``netkit mesh prometheus`` turns
the same file into Prometheus' scrape config and alert rules.

The file::

    name = "lab"                    # the mesh label on every series (default "mesh")
    interval = "1s"                 # monitor settings every probe inherits (see monitor_config)
    timeout = "500ms"
    metrics_port = 9464             # each monitor serves /metrics on its own address
    reflector_port = 8000           # where each host's keyed reflector listens (udp probes)
    key_file = "/etc/netkit/mesh.key"   # or key_env = "NETKIT_MESH_KEY"; the key itself never here
                                    # (a relative key_file is read from the mesh file's directory)

    [[hosts]]
    name = "fra1"
    address = "198.18.0.1"
    labels = { site = "fra" }       # the scrape config's per-host labels

    [[probes]]
    method = "udp"                  # udp | icmp | tcp-connect | trace | http | dns
    packets = 10

    [[probes]]
    method = "trace"
    interval = "30s"

    [[probes]]
    method = "http"
    url = "http://{address}:8080/health"   # {address} and {name} are the target host's

A probe's ``port`` (tcp-connect, dns, a udp probe to another port) defaults to the reflector port
for udp and must be given for tcp-connect. Probes have one method each, and a method appears once:
the ``method`` label, with ``source`` and ``target``, names a series.

``monitor_document(mesh, self_name)`` is the ``netkit monitor --config`` document of one host:
a target per (other host, probe), named after the other host. Errors name the mesh file's keys.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netkit.core.errors import InputError
from netkit.core.monitor_config import (
    SETTINGS,
    TARGET_KEYS,
    CliSettings,
    build_config,
    parse_key_ref,
    parse_labels,
    parse_toml,
)
from netkit.core.monitor_models import METHODS, KeyRef, MonitorConfig, MonitorMethod
from netkit.core.targets import format_host_port, validate_host

# KeyRef lives with the monitor's config (a --config file may carry a key reference too).
__all__ = ["DEFAULT_MESH_NAME", "DEFAULT_METRICS_PORT", "DEFAULT_REFLECTOR_PORT", "MAX_HOSTS", "MESH_LABELS", "KeyRef",
           "MeshConfig", "MeshHost", "MeshProbe", "check_document", "mesh_monitor_config", "monitor_document",
           "parse_mesh", "target_entry"]

#: The default reflector port: ``netkit serve udp``'s own default.
DEFAULT_REFLECTOR_PORT = 8000
DEFAULT_METRICS_PORT = 9464
DEFAULT_MESH_NAME = "mesh"
#: A monitor probes ``hosts - 1`` peers per probe; 1000 hosts is far past a mesh one person runs.
MAX_HOSTS = 1000
#: Labels the mesh sets on every series itself.
MESH_LABELS = ("source", "mesh")

#: Monitor settings a mesh may set for all probes (top level) or one probe.
MESH_SETTINGS = SETTINGS
TOP_KEYS = ("name", *MESH_SETTINGS, "metrics_port", "reflector_port", "key_file", "key_env", "window", "buckets",
            "hosts", "probes")
HOST_KEYS = ("name", "address", "labels")
#: A probe's keys: the monitor target's, less those the mesh fills in (the target is each other host).
PROBE_KEYS = tuple(k for k in TARGET_KEYS if k not in ("target", "host", "name", "labels"))
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class MeshHost:
    name: str  # the ``source``/``target`` label value
    address: str  # an IP literal or a host name, as written
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MeshProbe:
    method: MonitorMethod
    settings: tuple[tuple[str, Any], ...]  # the probe's own keys as written (minus method)

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.settings).get(key, default)


@dataclass(frozen=True)
class MeshConfig:
    name: str
    hosts: tuple[MeshHost, ...]
    probes: tuple[MeshProbe, ...]
    metrics_port: int = DEFAULT_METRICS_PORT
    reflector_port: int = DEFAULT_REFLECTOR_PORT
    key: KeyRef | None = None
    settings: tuple[tuple[str, Any], ...] = ()  # top-level monitor settings, window and buckets, as written

    def host(self, name: str) -> MeshHost:
        for h in self.hosts:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in self.hosts[:10]) + (", ..." if len(self.hosts) > 10 else "")
        raise InputError(f"--self {name!r} is not a host of mesh {self.name!r} (hosts: {known})")

    def metrics_address(self, host: MeshHost) -> str:
        """``ADDRESS:PORT`` of a host's monitor (its /metrics), IPv6 bracketed."""
        return format_host_port(host.address, self.metrics_port)

    def probe_port(self, probe: MeshProbe) -> int:
        """The port a probe goes to (0: none, icmp and trace)."""
        port = probe.get("port")
        if port is not None:
            return int(port)
        if probe.method is MonitorMethod.UDP:
            return self.reflector_port
        return 0


def _err(key: str, message: str) -> InputError:
    return InputError(f"{key}: {message}")


def _check_keys(where: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for k in table:
        if k == "key":
            raise _err(f"{where}{k}", "the key is never written in the mesh file: give key_file or key_env")
        if k not in allowed:
            raise _err(f"{where}{k}", f"unknown key (known: {', '.join(allowed)})")


def _port(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _err(key, f"expected a port 1-65535, got {value!r}")
    return value


def _text(key: str, value: Any, pattern: re.Pattern[str] | None = None, what: str = "a non-empty string") -> str:
    if not isinstance(value, str) or not value.strip() or (pattern is not None and not pattern.match(value)):
        raise _err(key, f"expected {what}, got {value!r}")
    return value


def parse_mesh(text: str) -> MeshConfig:
    """The mesh file's TOML text to a ``MeshConfig``; every error names its key."""
    doc = parse_toml(text)
    _check_keys("", doc, TOP_KEYS)
    name = _text("name", doc.get("name", DEFAULT_MESH_NAME), _NAME, "a name of letters, digits, . _ -")
    metrics_port = _port("metrics_port", doc.get("metrics_port", DEFAULT_METRICS_PORT))
    reflector_port = _port("reflector_port", doc.get("reflector_port", DEFAULT_REFLECTOR_PORT))
    key = parse_key_ref(doc)

    entries = doc.get("hosts")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, Mapping) for e in entries):
        raise _err("hosts", "expected [[hosts]] tables (name, address), at least two")
    if len(entries) < 2:
        raise _err("hosts", "a mesh needs at least two hosts")
    if len(entries) > MAX_HOSTS:
        raise _err("hosts", f"at most {MAX_HOSTS} hosts, got {len(entries)}")
    hosts: list[MeshHost] = []
    names: set[str] = set()
    addresses: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"hosts[{i}]"
        _check_keys(f"{where}.", entry, HOST_KEYS)
        if "name" not in entry or "address" not in entry:
            raise _err(where, "needs name and address")
        host_name = _text(f"{where}.name", entry["name"], _NAME, "a name of letters, digits, . _ -")
        try:
            address = validate_host(_text(f"{where}.address", entry["address"]))
        except InputError as exc:
            raise _err(f"{where}.address", str(exc)) from None
        if address.startswith("["):
            address = address[1:-1]
        if host_name in names:
            raise _err(f"{where}.name", f"{host_name!r} is already a host")
        same = _address_identity(address)
        if same in addresses:
            raise _err(f"{where}.address", f"{address} is already another host's")
        names.add(host_name)
        addresses.add(same)
        labels = parse_labels(f"{where}.labels", entry["labels"]) if "labels" in entry else {}
        for label in labels:
            if label in MESH_LABELS or label == "instance" or label == "job":
                raise _err(f"{where}.labels.{label}", f"{label!r} is set by netkit or Prometheus itself")
        hosts.append(MeshHost(host_name, address, tuple(sorted(labels.items()))))

    probe_entries = doc.get("probes", [{"method": "udp"}])
    if not isinstance(probe_entries, list) or not probe_entries or not all(
            isinstance(e, Mapping) for e in probe_entries):
        raise _err("probes", "expected [[probes]] tables, each with a method")
    probes: list[MeshProbe] = []
    methods: set[MonitorMethod] = set()
    for i, entry in enumerate(probe_entries):
        where = f"probes[{i}]"
        _check_keys(f"{where}.", entry, ("method", *PROBE_KEYS))
        if entry.get("method") not in METHODS:
            raise _err(f"{where}.method", f"expected one of {', '.join(METHODS)}, got {entry.get('method')!r}")
        method = MonitorMethod(entry["method"])
        if method in methods:
            raise _err(f"{where}.method", f"{method} is already probed: one probe per method "
                                          "(the method label names the series)")
        methods.add(method)
        if "port" in entry:
            _port(f"{where}.port", entry["port"])
        if method is MonitorMethod.TCP_CONNECT and "port" not in entry:
            raise _err(f"{where}.port", "tcp-connect needs the port every host listens on")
        if method is MonitorMethod.HTTP and "url" not in entry:
            raise _err(f"{where}.url", "http needs url, e.g. \"http://{address}:8080/\"")
        if "url" in entry:
            url = _text(f"{where}.url", entry["url"])
            try:
                url.format(address="a", name="n")
            except (KeyError, IndexError, ValueError):
                raise _err(f"{where}.url", "only {address} and {name} may be filled in") from None
        probes.append(MeshProbe(method, tuple((k, v) for k, v in entry.items() if k != "method")))
    settings = tuple((k, doc[k]) for k in (*MESH_SETTINGS, "window", "buckets") if k in doc)
    mesh = MeshConfig(name=name, hosts=tuple(hosts), probes=tuple(probes), metrics_port=metrics_port,
                      reflector_port=reflector_port, key=key, settings=settings)
    # Every value the monitor reads is checked now, once, with the mesh file's key names.
    check_document(mesh)
    return mesh


def _address_identity(address: str) -> str:
    """One spelling per address (``2001:DB8::1`` is ``2001:db8::0:1``), so a host is not listed twice."""
    try:
        return ipaddress.ip_address(address).compressed
    except ValueError:
        return address.lower().rstrip(".")


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def target_entry(mesh: MeshConfig, peer: MeshHost, probe: MeshProbe) -> dict[str, Any]:
    """The monitor ``[[targets]]`` entry that probes ``peer`` with ``probe``."""
    entry: dict[str, Any] = {k: v for k, v in probe.settings if k not in ("port", "url")}
    entry["method"] = probe.method.value
    entry["name"] = peer.name
    if probe.method is MonitorMethod.HTTP:
        entry["url"] = str(probe.get("url")).format(address=_url_host(peer.address), name=peer.name)
        return entry
    port = mesh.probe_port(probe)
    if port:
        entry["target"] = format_host_port(peer.address, port)
    else:
        entry["host"] = peer.address
    return entry


def monitor_document(mesh: MeshConfig, self_name: str) -> dict[str, Any]:
    """The ``netkit monitor --config`` document of host ``self_name``: every probe to every other host.

    The caller applies it with ``monitor_config.build_config``. The key stays a reference
    (``key_file``/``key_env``, as in a ``--config`` file) for the I/O layer to read; the metrics
    endpoint is the host's own address at ``metrics_port``; ``source`` and ``mesh`` are common
    labels, so every series the monitor exports carries them.
    """
    me = mesh.host(self_name)
    doc: dict[str, Any] = dict(mesh.settings)
    doc["labels"] = {"source": me.name, "mesh": mesh.name}
    doc["listen"] = mesh.metrics_address(me)
    if mesh.key is not None and mesh.key.file is not None:
        doc["key_file"] = mesh.key.file
    elif mesh.key is not None and mesh.key.env is not None:
        doc["key_env"] = mesh.key.env
    doc["targets"] = [target_entry(mesh, peer, probe) for peer in mesh.hosts if peer is not me
                      for probe in mesh.probes]
    return doc


def mesh_monitor_config(mesh: MeshConfig, self_name: str, cli: CliSettings | None = None) -> MonitorConfig:
    """Host ``self_name``'s monitor config, command-line overrides applied; errors name the mesh's keys.

    The key stays a reference (``key_ref``): the I/O layer reads it.
    """
    try:
        return build_config(monitor_document(mesh, self_name), cli or CliSettings())
    except InputError as exc:
        raise InputError(_mesh_key(str(exc), mesh)) from None


def check_document(mesh: MeshConfig) -> None:
    """Build the first host's monitor config, so a bad setting fails with the mesh file's key names."""
    mesh_monitor_config(mesh, mesh.hosts[0].name)


def _mesh_key(message: str, mesh: MeshConfig) -> str:
    """``targets[7].packets: ...`` (a generated target) to ``probes[1].packets: ...`` (the file's key)."""
    return re.sub(r"targets\[(\d+)\]", lambda m: f"probes[{int(m.group(1)) % len(mesh.probes)}]", message)
