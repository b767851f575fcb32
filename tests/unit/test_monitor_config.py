"""``netkit.core.monitor_config``: TOML + command line -> MonitorConfig, one-line errors naming the key."""

from __future__ import annotations

import pytest

from netkit.core.errors import InputError
from netkit.core.monitor_config import CliSettings, build_config, config_from_text, parse_listen
from netkit.core.monitor_models import DEFAULT_BUCKETS, DEFAULT_LISTEN

FULL = """
interval = "2s"
method = "tcp-connect"
packets = 5
packet_interval = "50ms"
retries = 1
listen = "127.0.0.1:0"
window = 20
buckets = [0.001, 0.01, 0.1]
labels = { site = "fra1", rack = 7 }

[[targets]]
host = "db.internal"
port = 5432
name = "db"
interval = "5s"
timeout = "500ms"
labels = { role = "db", site = "ams1" }

[[targets]]
target = "[::1]:53"
method = "udp"

[[targets]]
host = "gw.internal"
method = "icmp"
"""


def test_full_file_resolves_every_setting() -> None:
    cfg = config_from_text(FULL, CliSettings())
    db, dns, gw = cfg.targets
    assert (db.name, db.host, db.port, db.method) == ("db", "db.internal", 5432, "tcp-connect")
    assert (db.interval_s, db.timeout_s, db.packets, db.packet_interval_s, db.retries) == (5.0, 0.5, 5, 0.05, 1)
    # Per-target labels override the file's common labels; values become strings.
    assert dict(db.labels) == {"role": "db", "site": "ams1", "rack": "7"}
    assert (dns.name, dns.host, dns.port, dns.method, dns.interval_s) == ("[::1]:53", "::1", 53, "udp", 2.0)
    assert dns.timeout_s == 0.5  # default: min(1s, interval / 4)
    assert (gw.name, gw.port, gw.method) == ("gw.internal", 0, "icmp")
    assert cfg.listen == ("127.0.0.1", 0) and cfg.window == 20 and cfg.buckets == (0.001, 0.01, 0.1)
    assert cfg.label_names() == ("target", "method", "rack", "role", "site")
    assert sorted(cfg.groups()) == [2.0, 5.0]


def test_command_line_beats_file_top_level_but_not_a_target_entry() -> None:
    text = ('interval = "2s"\n[[targets]]\ntarget = "127.0.0.1:80"\n'
            '[[targets]]\ntarget = "127.0.0.1:81"\ninterval = "9s"\n')
    cfg = config_from_text(text, CliSettings(("127.0.0.1:22",), {"interval": 4.0}))
    assert [(t.name, t.interval_s) for t in cfg.targets] == [
        ("127.0.0.1:22", 4.0), ("127.0.0.1:80", 4.0), ("127.0.0.1:81", 9.0)]


def test_defaults_without_a_file() -> None:
    cfg = build_config(None, CliSettings(("127.0.0.1:22",)))
    (t,) = cfg.targets
    assert (t.interval_s, t.timeout_s, t.packets, t.packet_interval_s, t.retries) == (10.0, 1.0, 3, 0.1, 0)
    assert cfg.listen == DEFAULT_LISTEN and cfg.textfile is None and cfg.buckets == DEFAULT_BUCKETS


def test_textfile_alone_means_no_http_unless_listen_is_given() -> None:
    cfg = build_config(None, CliSettings(("127.0.0.1:22",), {"textfile": "/tmp/x.prom"}))
    assert cfg.listen is None and cfg.textfile == "/tmp/x.prom"
    cfg = build_config(None, CliSettings(("127.0.0.1:22",), {"textfile": "/tmp/x.prom",
                                                             "listen": ("127.0.0.1", 9100)}))
    assert cfg.listen == ("127.0.0.1", 9100)
    assert config_from_text('listen = false\n[[targets]]\ntarget = "127.0.0.1:1"', CliSettings()).listen is None


@pytest.mark.parametrize(("text", "cli_targets", "message"), [
    ('interval = "soon"', ("127.0.0.1:1",), "interval: invalid duration"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\ninterval = "x"', (), "targets[0].interval: invalid duration"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\nintervall = "1s"', (), "targets[0].intervall: unknown key"),
    ('colour = "red"', ("127.0.0.1:1",), "colour: unknown key"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\nmethod = "smtp"', (), "targets[0].method: unknown method 'smtp'"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\nmethod = "http"', (), "targets[0]: method http needs url"),
    ('[[targets]]\nurl = "ftp://x/"', (), "targets[0].url: URL 'ftp://x/' must start with http"),
    ('[[targets]]\nurl = "http://x/"\nexpect_status = "9"', (), "targets[0].expect_status: --expect-status"),
    ('[[targets]]\nhost = "127.0.0.1"', (), "targets[0]: no port for method tcp-connect"),
    ('[[targets]]\nhost = "bad host"\nport = 1', (), "targets[0].host: invalid host"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\nport = 2', (), "targets[0].port: the target already has a port"),
    ('[[targets]]\nhost = "127.0.0.1"\nport = 70000', (), "targets[0].port: must be 1-65535"),
    ('[[targets]]\nport = 1', (), "targets[0]: needs target"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\npackets = 0', (), "targets[0].packets: must be 1-1000"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\npackets = true', (), "targets[0].packets: expected a whole number"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\ninterval = "1s"\ntimeout = "1s"', (),
     "targets[0].timeout: 1.00s must be shorter than the interval"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\ninterval = "1s"\npackets = 20', (), "packet_interval: 20 packets"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\nlabels = { target = "x" }', (),
     "targets[0].labels.target: 'target' is set by netkit itself"),
    ('labels = { "bad-name" = "x" }', ("127.0.0.1:1",), "labels.bad-name: not a valid Prometheus label name"),
    ('buckets = [0.1, 0.01]', ("127.0.0.1:1",), "buckets[1]: bounds must increase"),
    ('listen = "nowhere"', ("127.0.0.1:1",), "listen: invalid listen address"),
    ('window = 0', ("127.0.0.1:1",), "window: must be 1-10000"),
    ('[[targets]]\ntarget = "127.0.0.1:1"\n[[targets]]\ntarget = "127.0.0.1:1"', (), "appears twice"),
    ('interval = ', ("127.0.0.1:1",), "invalid TOML"),
    ('', (), "no targets"),
])
def test_errors_are_one_line_and_name_the_key(text: str, cli_targets: tuple[str, ...], message: str) -> None:
    with pytest.raises(InputError) as info:
        config_from_text(text, CliSettings(cli_targets))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_command_line_values_are_named_as_options() -> None:
    with pytest.raises(InputError, match=r"^--timeout: 2.00s must be shorter"):
        build_config(None, CliSettings(("127.0.0.1:1",), {"interval": 1.0, "timeout": 2.0}))


def test_same_target_with_two_methods_is_two_series() -> None:
    text = '[[targets]]\ntarget = "127.0.0.1:53"\n[[targets]]\ntarget = "127.0.0.1:53"\nmethod = "udp"'
    cfg = config_from_text(text, CliSettings())
    assert [t.key for t in cfg.targets] == [("127.0.0.1:53", "tcp-connect"), ("127.0.0.1:53", "udp")]


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    with pytest.raises(InputError):
        parse_listen("127.0.0.1")


def test_defaults_shrink_to_fit_a_short_interval() -> None:
    (t,) = build_config(None, CliSettings(("127.0.0.1:22",), {"interval": 0.2})).targets
    assert (t.timeout_s, t.packet_interval_s) == (0.05, 0.02)
    assert (t.packets - 1) * t.packet_interval_s + t.timeout_s <= t.budget_s
