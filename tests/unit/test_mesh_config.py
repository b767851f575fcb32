"""``netkit.core.mesh_config``: the mesh file, and each host's ``netkit monitor`` config from it."""

from __future__ import annotations

import pytest

from netkit.core.errors import InputError
from netkit.core.mesh_config import KeyRef, mesh_monitor_config, monitor_document, parse_mesh
from netkit.core.monitor_config import CliSettings, config_from_text
from netkit.core.monitor_models import MonitorMethod

MESH = """
name = "lab"
interval = "2s"
metrics_port = 9500
reflector_port = 8100
key_file = "mesh.key"

[[hosts]]
name = "fra1"
address = "198.18.0.1"
labels = { site = "fra" }

[[hosts]]
name = "ams1"
address = "198.18.0.2"

[[hosts]]
name = "v6"
address = "2001:db8::3"

[[probes]]
method = "udp"
packets = 5

[[probes]]
method = "icmp"

[[probes]]
method = "trace"
interval = "30s"
timeout = "2s"
"""


def test_parse_reads_hosts_probes_ports_and_key_reference() -> None:
    mesh = parse_mesh(MESH)
    assert mesh.name == "lab"
    assert [(h.name, h.address) for h in mesh.hosts] == [
        ("fra1", "198.18.0.1"), ("ams1", "198.18.0.2"), ("v6", "2001:db8::3")]
    assert mesh.hosts[0].labels == (("site", "fra"),)
    assert [p.method for p in mesh.probes] == [MonitorMethod.UDP, MonitorMethod.ICMP, MonitorMethod.TRACE]
    assert (mesh.metrics_port, mesh.reflector_port) == (9500, 8100)
    assert mesh.key == KeyRef(file="mesh.key")
    assert mesh.metrics_address(mesh.hosts[2]) == "[2001:db8::3]:9500"


def test_defaults_one_udp_probe_to_the_reflector_port() -> None:
    mesh = parse_mesh('[[hosts]]\nname = "a"\naddress = "127.0.0.1"\n[[hosts]]\nname = "b"\naddress = "127.0.0.2"\n')
    assert mesh.name == "mesh" and mesh.key is None
    assert [p.method for p in mesh.probes] == [MonitorMethod.UDP]
    cfg = mesh_monitor_config(mesh, "a")
    assert [(t.name, t.host, t.port, t.method) for t in cfg.targets] == [("b", "127.0.0.2", 8000, MonitorMethod.UDP)]
    assert cfg.listen == ("127.0.0.1", 9464)
    assert cfg.key_ref is None


def test_monitor_config_of_an_ipv4_host_probes_every_other_host_with_every_probe() -> None:
    cfg = mesh_monitor_config(parse_mesh(MESH), "fra1")
    assert [(t.name, t.method.value, t.host, t.port) for t in cfg.targets] == [
        ("ams1", "udp", "198.18.0.2", 8100), ("ams1", "icmp", "198.18.0.2", 0), ("ams1", "trace", "198.18.0.2", 0),
        ("v6", "udp", "2001:db8::3", 8100), ("v6", "icmp", "2001:db8::3", 0), ("v6", "trace", "2001:db8::3", 0),
    ]
    # source and mesh on every target (so on every series), the target label is the peer's name
    assert all(dict(t.labels) == {"source": "fra1", "mesh": "lab"} for t in cfg.targets)
    assert cfg.common_labels == (("mesh", "lab"), ("source", "fra1"))
    assert cfg.label_names() == ("target", "method", "mesh", "source")
    assert cfg.listen == ("198.18.0.1", 9500)
    # settings: the file's top level, a probe's own keys over it
    udp = cfg.targets[0]
    assert (udp.interval_s, udp.packets) == (2.0, 5)
    assert (cfg.targets[2].interval_s, cfg.targets[2].timeout_s) == (30.0, 2.0)
    assert cfg.key_ref == KeyRef(file="mesh.key") and cfg.key is None  # the io layer reads the key


def test_monitor_config_of_an_ipv6_host_listens_on_its_address() -> None:
    mesh = parse_mesh(MESH)
    doc = monitor_document(mesh, "v6")
    assert doc["listen"] == "[2001:db8::3]:9500"
    assert doc["targets"][0] == {"packets": 5, "method": "udp", "name": "fra1", "target": "198.18.0.1:8100"}
    cfg = mesh_monitor_config(mesh, "v6")
    assert cfg.listen == ("2001:db8::3", 9500)
    assert [t.name for t in cfg.targets] == ["fra1", "fra1", "fra1", "ams1", "ams1", "ams1"]
    assert dict(cfg.targets[0].labels)["source"] == "v6"


def test_ipv6_peer_in_a_url_and_a_port() -> None:
    text = ('[[hosts]]\nname = "a"\naddress = "[2001:db8::1]"\n[[hosts]]\nname = "b"\naddress = "2001:db8::2"\n'
            '[[probes]]\nmethod = "http"\nurl = "http://{address}:8080/health?from={name}"\n'
            '[[probes]]\nmethod = "tcp-connect"\nport = 22\n')
    mesh = parse_mesh(text)
    assert mesh.hosts[0].address == "2001:db8::1"  # brackets of the file dropped
    doc = monitor_document(mesh, "b")
    assert doc["targets"][0]["url"] == "http://[2001:db8::1]:8080/health?from=a"
    assert doc["targets"][1]["target"] == "[2001:db8::1]:22"


def test_command_line_overrides_the_file_settings_and_the_listen_address() -> None:
    cli = CliSettings(overrides={"interval": 1.0, "listen": ("127.0.0.1", 0)})
    cfg = mesh_monitor_config(parse_mesh(MESH), "ams1", cli)
    assert cfg.listen == ("127.0.0.1", 0)
    assert cfg.targets[0].interval_s == 1.0  # the file's top-level 2s
    assert cfg.targets[2].interval_s == 30.0  # a probe's own interval stays


def test_key_by_environment_variable() -> None:
    mesh = parse_mesh(MESH.replace('key_file = "mesh.key"', 'key_env = "NETKIT_MESH_KEY"'))
    assert mesh.key == KeyRef(env="NETKIT_MESH_KEY")
    assert mesh_monitor_config(mesh, "fra1").key_ref == KeyRef(env="NETKIT_MESH_KEY")


def test_the_key_is_never_inline() -> None:
    with pytest.raises(InputError, match=r"^key: the key is never written in the mesh file"):
        parse_mesh(MESH.replace('key_file = "mesh.key"', 'key = "hunter2"'))
    with pytest.raises(InputError, match=r"^probes\[0\]\.key: the key is never written"):
        parse_mesh(MESH.replace("packets = 5", 'key = "hunter2"'))
    # nor does a monitor document carry more than the reference
    assert "hunter2" not in repr(monitor_document(parse_mesh(MESH), "fra1"))


def test_a_monitor_config_file_takes_a_key_reference_too() -> None:
    cfg = config_from_text('key_env = "K"\n[[targets]]\ntarget = "127.0.0.1:8000"\nmethod = "udp"\n', CliSettings())
    assert cfg.key_ref == KeyRef(env="K")
    with pytest.raises(InputError, match=r"^key: the key is never written in the file"):
        config_from_text('key = "x"\n[[targets]]\ntarget = "127.0.0.1:8000"\n', CliSettings())
    with pytest.raises(InputError, match=r"^key_env: give key_file or key_env, not both"):
        config_from_text('key_env = "K"\nkey_file = "f"\n[[targets]]\ntarget = "127.0.0.1:8000"\n', CliSettings())


def test_self_not_in_the_mesh_names_the_hosts() -> None:
    with pytest.raises(InputError, match=r"--self 'nosuch' is not a host of mesh 'lab' \(hosts: fra1, ams1, v6\)"):
        monitor_document(parse_mesh(MESH), "nosuch")


HOSTS = '[[hosts]]\nname = "a"\naddress = "127.0.0.1"\n[[hosts]]\nname = "b"\naddress = "127.0.0.2"\n'


@pytest.mark.parametrize(("text", "key"), [
    ("name = 'a b'\n" + HOSTS, "name"),
    ("metrics_port = 0\n" + HOSTS, "metrics_port"),
    ("reflector_port = 70000\n" + HOSTS, "reflector_port"),
    ("key_file = ''\n" + HOSTS, "key_file"),
    ("key_env = '1X'\n" + HOSTS, "key_env"),
    ("key_env = 'K'\nkey_file = 'f'\n" + HOSTS, "key_env"),
    ("colour = 'red'\n" + HOSTS, "colour"),
    ("interval = 'soon'\n" + HOSTS, "interval"),
    ("window = 0\n" + HOSTS, "window"),
    ("buckets = [0.1, 0.01]\n" + HOSTS, "buckets[1]"),
    ("", "hosts"),
    ('[[hosts]]\nname = "a"\naddress = "127.0.0.1"\n', "hosts"),
    (HOSTS + '[[hosts]]\nname = "c"\n', "hosts[2]"),
    (HOSTS + '[[hosts]]\nname = "a"\naddress = "127.0.0.3"\n', "hosts[2].name"),
    (HOSTS + '[[hosts]]\nname = "c"\naddress = "127.0.0.1"\n', "hosts[2].address"),
    (HOSTS + '[[hosts]]\nname = "c"\naddress = "not an address"\n', "hosts[2].address"),
    (HOSTS + '[[hosts]]\nname = "-c"\naddress = "127.0.0.3"\n', "hosts[2].name"),
    (HOSTS + '[[hosts]]\nname = "c"\naddress = "127.0.0.3"\nport = 1\n', "hosts[2].port"),
    (HOSTS + '[[hosts]]\nname = "c"\naddress = "127.0.0.3"\nlabels = { source = "x" }\n', "hosts[2].labels.source"),
    ("probes = []\n" + HOSTS, "probes"),
    (HOSTS + '[[probes]]\nmethod = "smoke"\n', "probes[0].method"),
    (HOSTS + '[[probes]]\nmethod = "udp"\n[[probes]]\nmethod = "udp"\n', "probes[1].method"),
    (HOSTS + '[[probes]]\nmethod = "tcp-connect"\n', "probes[0].port"),
    (HOSTS + '[[probes]]\nmethod = "udp"\nport = 0\n', "probes[0].port"),
    (HOSTS + '[[probes]]\nmethod = "http"\n', "probes[0].url"),
    (HOSTS + '[[probes]]\nmethod = "http"\nurl = "http://{host}/"\n', "probes[0].url"),
    (HOSTS + '[[probes]]\nmethod = "udp"\nhost = "x"\n', "probes[0].host"),
    (HOSTS + '[[probes]]\nmethod = "icmp"\n[[probes]]\nmethod = "udp"\npackets = 0\n', "probes[1].packets"),
    (HOSTS + '[[probes]]\nmethod = "icmp"\n[[probes]]\nmethod = "udp"\ninterval = "1s"\ntimeout = "2s"\n',
     "probes[1].timeout"),
])
def test_every_error_names_its_key(text: str, key: str) -> None:
    with pytest.raises(InputError) as info:
        parse_mesh(text)
    message = str(info.value)
    assert message.startswith(f"{key}: "), message
    assert "\n" not in message


def test_a_toml_syntax_error_is_one_line() -> None:
    with pytest.raises(InputError, match=r"^invalid TOML: ") as info:
        parse_mesh("[[hosts]\n")
    assert "\n" not in str(info.value)


def test_same_address_spelled_twice_is_one_host() -> None:
    with pytest.raises(InputError, match=r"^hosts\[1\]\.address: "):
        parse_mesh('[[hosts]]\nname = "a"\naddress = "2001:DB8::1"\n[[hosts]]\nname = "b"\naddress = "2001:db8:0::1"\n')
