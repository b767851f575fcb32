"""The pure parts of ``measure connections``: errno kinds, the TIME_WAIT count from /proc/net/tcp
text, the thresholds and the published schema."""

from __future__ import annotations

import errno
import socket

import pytest

from netkit.core.connections_config import ERROR_KINDS, ConnectionsConfig, error_kind
from netkit.core.connections_result import ConnectionsResult, check_connections_thresholds
from netkit.core.latency_histogram import LatencyMs
from netkit.core.procnet import tcp_state_count

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9C40 0100007F:1F40 06 00000000:00000000 03:00000F9E 00000000     0        0 0 3
   1: 0100007F:9C41 0100007F:1F40 06 00000000:00000000 03:00000F9E 00000000     0        0 0 3
   2: 0100007F:9C42 0100007F:1F41 06 00000000:00000000 03:00000F9E 00000000     0        0 0 3
   3: 0100007F:9C43 0100007F:1F40 01 00000000:00000000 00:00000000 00000000     0        0 7 1
   4: 0100007F:1F40 0100007F:9C44 06 00000000:00000000 03:00000F9E 00000000     0        0 0 3
"""
TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:9C40 00000000000000000000000001000000:1F40 06 0 0 0 0 0 0 0 0 3
   1: 0000000000000000FFFF00000100007F:9C41 0000000000000000FFFF00000100007F:1F40 06 0 0 0 0 0 0 0 0 3
"""


def test_time_wait_rows_toward_the_target_only() -> None:
    v4 = (socket.inet_pton(socket.AF_INET, "127.0.0.1"), 8000)
    assert tcp_state_count(TCP, v4) == 2  # not port 8001, not ESTABLISHED, not the server side
    assert tcp_state_count(TCP6, v4) == 1  # the IPv4-mapped row
    assert tcp_state_count(TCP6, (socket.inet_pton(socket.AF_INET6, "::1"), 8000)) == 1
    assert tcp_state_count("garbage\n  0: zz:zz yy 06\n", v4) == 0


@pytest.mark.parametrize(("err", "kind"), [
    (errno.ECONNREFUSED, "refused"), (errno.ETIMEDOUT, "timeout"), (errno.ECONNRESET, "reset"),
    (errno.EADDRNOTAVAIL, "eaddrnotavail"), (errno.EMFILE, "emfile"), (errno.ENFILE, "emfile"),
    (errno.EHOSTUNREACH, "unreachable"), (errno.EACCES, "other"),
])
def test_error_kinds(err: int, kind: str) -> None:
    assert error_kind(err) == kind and kind in ERROR_KINDS


def test_config_checks() -> None:
    assert ConnectionsConfig("h", 1, close="rst").close.value == "rst"
    for bad in ({"close": "x"}, {"concurrency": 0}, {"duration_s": None}, {"timeout_s": 0}):
        with pytest.raises(ValueError):
            ConnectionsConfig("h", 1, **bad)  # type: ignore[arg-type]


def _result(connections: int, errors: int) -> ConnectionsResult:
    return ConnectionsResult(target="h:1", address="h:1", concurrency=1, close="fin", send=0, expect=0,
                             elapsed_ns=2_000_000_000, attempts=connections + errors, connections=connections,
                             connect=LatencyMs(), transaction=None, errors={"refused": errors})


def test_thresholds() -> None:
    assert check_connections_thresholds(_result(100, 0), 50, 0).passed
    th = check_connections_thresholds(_result(100, 3), 51, 2)
    assert not th.passed and th.failed == ("50.0 connections/s < min-rate 51.0", "3 errors > max-errors 2")
    assert check_connections_thresholds(_result(0, 5), None, None).failed[0].startswith("no connection")


def test_schema_lists_every_error_kind() -> None:
    doc = _result(10, 1).to_json(intervals=True)
    assert list(doc["errors"]) == ["total", *ERROR_KINDS] and doc["errors"]["total"] == 1
    assert doc["connections_per_s"] == 5.0 and doc["transaction_ms"] is None and doc["intervals"] == []
