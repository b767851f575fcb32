"""The probes of ``measure throughput --latency`` against real peers on loopback: which one ``auto``
chooses for each server, that each one measures, and that a run leaves no socket behind."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import support

from netkit.core.errors import CheckFailed
from netkit.core.loaded_latency import LoadedLatencyConfig, Phase, ProbeChoice
from netkit.core.throughput_models import ServerKind, ThroughputConfig
from netkit.io.measure.loaded_latency import ProbeRunner, choose_probe, find_closed_port, measure_loaded_latency


class _Sinks:
    def interval(self, row: object) -> None:
        pass

    def progress(self, elapsed: float) -> None:
        pass


@contextlib.contextmanager
def _view(_phase: Phase) -> Iterator[_Sinks]:
    yield _Sinks()


def _cfg(port: int, **kw: object) -> ThroughputConfig:
    return ThroughputConfig("127.0.0.1", port, duration_s=0.5, detect_timeout_s=0.3, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def discard_server() -> Iterator[support.Server]:
    # discard mode: the echo probes must not depend on the server echoing
    with support.netkit_server("serve", "tcp", "--port", "0", "--mode", "discard") as srv:
        yield srv


def _probe_for(runner: ProbeRunner, n: int) -> list:
    runner.start()
    try:
        support.wait_until(lambda: len(runner.samples) >= n, timeout=5)
    finally:
        samples = runner.stop()
    return samples


def test_netkit_server_gets_echo_probes_on_a_session_of_their_own(discard_server: support.Server) -> None:
    port = int(discard_server.addr.rsplit(":", 1)[1])
    lcfg = LoadedLatencyConfig(interval_s=0.02)
    plan = choose_probe(_cfg(port), lcfg)
    assert plan.choice == ProbeChoice.ECHO and plan.server == ServerKind.NETKIT and plan.sock is not None
    samples = _probe_for(ProbeRunner(plan, "127.0.0.1", lcfg), 5)
    assert all(s.rtt_ns is not None and 0 < s.rtt_ns < 1_000_000_000 for s in samples)
    assert plan.sock is None  # the runner took it and closed it


def test_a_closed_port_times_the_round_trip_with_its_rst() -> None:
    lcfg = LoadedLatencyConfig(probe=ProbeChoice.TCP_CONNECT, interval_s=0.02)
    closed = find_closed_port("127.0.0.1", 0, 1.0)
    assert closed is not None
    from netkit.io.measure.loaded_latency import ProbePlan

    plan = ProbePlan(ProbeChoice.TCP_CONNECT, "rst", ServerKind.IPERF3, closed, port_open=False)
    samples = _probe_for(ProbeRunner(plan, "127.0.0.1", lcfg), 5)
    assert all(s.rtt_ns is not None for s in samples)


def test_a_silent_service_is_plain_and_probed_without_its_port() -> None:
    def silent(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass

    with support.tcp_peer(silent) as port:
        plan = choose_probe(_cfg(port), LoadedLatencyConfig())
        try:
            assert plan.server == ServerKind.PLAIN and plan.sock is None
            assert plan.choice in (ProbeChoice.ICMP, ProbeChoice.TCP_CONNECT) and plan.port != port
        finally:
            plan.close()
        with pytest.raises(CheckFailed, match="--latency-probe echo needs netkit serve tcp"):
            choose_probe(_cfg(port), LoadedLatencyConfig(probe=ProbeChoice.ECHO))


def test_a_netkit_server_that_refuses_the_echo_session_gets_handshakes_to_its_port() -> None:
    from netkit.core import session_header as sh

    def full(conn: socket.socket) -> None:  # a netkit server at its --max-sessions limit
        conn.recv(sh.HEADER_LEN)
        conn.sendall(sh.encode_ack(sh.Ack(sh.STATUS_REFUSED)))

    with support.tcp_peer(full) as port:
        plan = choose_probe(_cfg(port), LoadedLatencyConfig())
        assert (plan.choice, plan.server, plan.port, plan.port_open) == (
            ProbeChoice.TCP_CONNECT, ServerKind.NETKIT, port, True)
        assert "refused an echo session" in plan.detail
        samples = _probe_for(ProbeRunner(plan, "127.0.0.1", LoadedLatencyConfig(interval_s=0.02)), 3)
        assert all(s.rtt_ns is not None for s in samples)


def test_a_server_that_closes_at_once_is_said_so() -> None:
    with support.tcp_peer(lambda conn: None) as port, pytest.raises(CheckFailed, match="closed the connection"):
        choose_probe(_cfg(port), LoadedLatencyConfig())


def test_iperf3_keeps_the_finding_connection_as_its_control_connection() -> None:
    with support.iperf3_one_off() as (port, report):
        before = support.open_fds()
        run = measure_loaded_latency(_cfg(port), LoadedLatencyConfig(idle_s=0.5, phases=(Phase.DOWNLOAD,)),
                                     _view, stop=threading.Event())
        end = report()  # raises if iperf3 saw an error (a second connection, a broken test)
    assert run.latency.probe in (ProbeChoice.ICMP, ProbeChoice.TCP_CONNECT)
    assert run.throughput[0].result.server == ServerKind.IPERF3
    assert end["sum_sent"]["bytes"] > 0  # the download iperf3 sent on that test
    idle, down = run.latency.phases
    assert idle.probes >= 3 and down.probes >= 3 and down.lost == 0
    support.wait_until(lambda: support.open_fds() <= before, timeout=3)


def test_a_run_leaves_no_socket_open_and_stops_on_time(discard_server: support.Server) -> None:
    port = int(discard_server.addr.rsplit(":", 1)[1])
    before = support.open_fds()
    stop = threading.Event()
    threading.Timer(0.8, stop.set).start()  # Ctrl-C during the first loaded phase
    t0 = time.monotonic()
    cfg = dataclasses.replace(_cfg(port), duration_s=10.0)
    run = measure_loaded_latency(cfg, LoadedLatencyConfig(idle_s=0.4, phases=(Phase.UPLOAD, Phase.DOWNLOAD)),
                                 _view, stop=stop)
    assert time.monotonic() - t0 < 3.0
    assert run.interrupted and run.latency.interrupted
    assert [t.phase for t in run.throughput] == [Phase.UPLOAD]
    assert [p.phase for p in run.latency.phases] == [Phase.IDLE, Phase.UPLOAD]
    support.wait_until(lambda: support.open_fds() <= before, timeout=3)
