"""``measure throughput --latency``: RTT probes through an idle phase and every loaded phase.

One entry point, :func:`measure_loaded_latency`:

1. choose the probe (:func:`choose_probe`) without disturbing the server;
2. start the probe loop in a thread of its own (:class:`ProbeRunner`: one prober of
   :mod:`netkit.io.measure.latency_probers` driven by :func:`netkit.io.measure.latency.measure_target`),
   every probe stamped with its send time on the monotonic clock;
3. an idle phase (probes only) of ``idle_s``, then one throughput test per phase through
   :func:`netkit.io.measure.throughput.measure_throughput`, each phase's window taken from the
   engine's own clock (its progress callback says how long the load has run);
4. stop the probes, and let :mod:`netkit.core.loaded_latency` sort the probes into the windows.

Probe choice (``--latency-probe auto``):

==========================  ===================================================================
netkit serve tcp            ``echo``: a separate request session (the session header's
                            request/response kind, 12-byte requests, 8-byte replies); it works
                            in every server mode and costs the server one connection
iperf3 -s, plain services   ``icmp`` (a datagram ICMP socket where ``net.ipv4.ping_group_range``
                            allows, raw as root), else ``tcp-connect`` to a *closed* port of the
                            same host: the RST times the round trip. Never a second connection to
                            iperf3's port: it would take it as a test stream or refuse the test.
==========================  ===================================================================

Finding out which server answers takes one connection with the request session's header (as the
throughput client's own detection does): a netkit server keeps it as the echo session; an iperf3
server takes the 37-byte header as a test's cookie, so that connection becomes the first loaded
phase's control connection (iperf3 waits for the parameters through the idle phase).

Bounds: the probe thread stops when asked (its last replies get a short grace), every probe
times out (``timeout_s``), the idle phase and every loaded phase are wall-clock bounded, and
``stop`` (Ctrl-C) ends the run with the phases measured so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from netkit.core import request_framing as rf
from netkit.core import session_header as sh
from netkit.core.accounting import ProbeOutcome
from netkit.core.errors import CheckFailed, RuntimeFailure
from netkit.core.iperf3_wire import is_greeting
from netkit.core.latency_models import LatencyConfig, Method, ProbeEvent
from netkit.core.loaded_latency import (
    LoadedLatency,
    LoadedLatencyConfig,
    LoadedLatencyRun,
    Phase,
    PhaseRate,
    PhaseThroughput,
    PhaseWindow,
    ProbeChoice,
    ProbeSample,
    check_added_latency,
    probe_load,
    probe_wire_bytes,
    summarize_phases,
)
from netkit.core.targets import format_host_port
from netkit.core.throughput_models import (
    ServerKind,
    ThroughputConfig,
    ThroughputInterval,
    ThroughputResult,
    check_thresholds,
)
from netkit.io.measure import iperf3
from netkit.io.measure.latency import measure_target
from netkit.io.measure.latency_probers import (
    EventSink,
    IcmpProber,
    LatencyProber,
    TcpConnectProber,
    TcpEchoProber,
    open_icmp_socket,
)
from netkit.io.measure.streams import connect
from netkit.io.measure.throughput import measure_throughput
from netkit.io.measure.throughput_tcp import read_ack
from netkit.io.resolve import failure_reason

NS = 1_000_000_000
#: Ports tried (in order) for an RST-timed probe: rarely served, and never the target's port.
CLOSED_PORT_CANDIDATES = (1, 9, 13, 19, 37)
#: How long the probe thread may take to open its prober and to stop.
THREAD_JOIN_S = 5.0
#: Probes kept for the statistics (28 hours at 100 ms); later ones are sent but not kept.
MAX_SAMPLES = 1_000_000


# ----- probers ---------------------------------------------------------------------------------

class SessionEchoProber(TcpEchoProber):
    """Small request/response frames on a netkit request session (``serve tcp`` in any mode).

    Takes a socket whose session header was already answered (the ack read). Each probe is a
    request frame with no body and an empty reply; the reply's sequence number names the probe.
    """

    def __init__(self, label: str, sock: socket.socket, cfg: LatencyConfig, sink: EventSink | None) -> None:
        peer = sock.getpeername()
        super().__init__(label, peer[0], peer[1], cfg, sink)
        self._adopt: socket.socket | None = sock
        self._replies = rf.HeaderFramer()
        self.size = rf.REQ_HEADER_LEN

    async def open(self) -> None:
        sock, self._adopt = self._adopt, None
        if sock is None:
            raise CheckFailed(f"{self.label}: the echo session is closed")
        self.address = sock.getpeername()[0]
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._add_reader(sock, self._readable)

    def send(self, seq: int) -> None:
        # The frame's seq is 32 bits: at 100 ms probes it wraps after 13 years.
        frame = rf.encode_request(seq, b"", 0)
        t_mono = time.perf_counter_ns()
        t_real = time.time_ns()
        if self.sock is None or self._out:
            self._record_send(seq, t_mono, t_real)
            if self.sock is not None:
                self._out += frame
            return
        try:
            n = self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self._record_send(seq, t_mono, t_real)
            self.error = exc.strerror or str(exc)
            self._drop()
            return
        self._record_send(seq, t_mono, t_real)
        if n < len(frame):
            self._out += frame[n:]
            if not self._writer:
                self.loop.add_writer(self.sock.fileno(), self._writable)
                self._writer = True

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            self._drop()
            return
        if not data:
            self.error = "the server closed the echo session"
            self._drop()
            return
        t = time.perf_counter_ns()
        try:
            replies = self._replies.feed(data)
        except rf.FramingError as exc:
            self.error = str(exc)
            self._drop()
            return
        first = self._replies.next_seq - len(replies)
        for i in range(len(replies)):
            self._deliver(first + i, t, None)

    def describe(self) -> str:
        return "echo on a netkit request session"


class RstProber(TcpConnectProber):
    """A SYN to a closed port: the RST (connection refused) ends the round trip."""

    def _failed(self, seq: int, err: int) -> None:
        if err == errno.ECONNREFUSED:
            self._deliver(seq, time.perf_counter_ns(), None)
            return
        super()._failed(seq, err)

    def describe(self) -> str:
        return f"tcp-connect to closed port {self.port} (RST)"


# ----- choosing the probe ----------------------------------------------------------------------

@dataclass
class ProbePlan:
    """The probe chosen for a run, and what the throughput phases should treat the server as."""

    choice: ProbeChoice
    detail: str
    server: ServerKind  # the throughput phases' server kind (AUTO when not found out)
    port: int = 0
    port_open: bool = True
    sock: socket.socket | None = None  # ECHO: the open request session
    v6: bool = False
    #: An iperf3 server found out: the connection that found it, kept as the first phase's control
    #: connection (closing it would be a failed test in the server's log), and its first state byte.
    iperf3_ctrl: socket.socket | None = None
    iperf3_state: bytes = b""

    def close(self) -> None:
        for s in (self.sock, self.iperf3_ctrl):
            if s is not None:
                s.close()
        self.sock = self.iperf3_ctrl = None


def _open_session(cfg: ThroughputConfig) -> tuple[ServerKind, socket.socket | None, bytes]:
    """One connection with the request session's header: which server answers it.

    NETKIT: the socket, its ack read (the echo session). IPERF3: the socket, now the first test's
    control connection (iperf3 took the 37-byte header as its cookie), and the state byte it sent.
    PLAIN: closed, None.
    """
    sock = connect(cfg.host, cfg.port, cfg.connect_timeout_s)
    where = format_host_port(cfg.host, cfg.port)
    closed_at_once = (f"{where}: the server closed the connection at once (a keyed netkit server needs --key; "
                      "a TLS server, a full one (--max-conns) or one that refuses this address close it too)")
    try:
        sock.settimeout(cfg.connect_timeout_s)
        sock.sendall(rf.session_preamble(cfg.key, now_ms=time.time_ns() // 1_000_000, nonce=os.urandom(8)))
        sock.settimeout(cfg.detect_timeout_s if cfg.server == ServerKind.AUTO else cfg.connect_timeout_s)
        try:
            got = sock.recv(1)
            if not got:  # closed unanswered: never a plain service to measure (as the throughput client says)
                raise CheckFailed(closed_at_once)
        except TimeoutError:
            got = b""  # silent: a discard-like service
        except ConnectionResetError:
            raise CheckFailed(closed_at_once) from None
        if got and cfg.server == ServerKind.AUTO and is_greeting(got) and cfg.key is None:
            sock.settimeout(None)
            return ServerKind.IPERF3, sock, got
        if got == sh.ACK_MAGIC[:1]:
            got = read_ack(sock, got, cfg.connect_timeout_s)
            ack = sh.decode_ack(got)
            if ack is not None and ack.ok:
                sock.settimeout(None)
                return ServerKind.NETKIT, sock, b""
            if ack is not None:  # a netkit server without room (or support) for the session: no echo
                sock.close()
                return ServerKind.NETKIT, None, b""
        sock.close()
        if cfg.server == ServerKind.NETKIT or cfg.key is not None:
            raise CheckFailed(f"{where}: the server did not accept the latency probes' session "
                              "(a keyed server needs the right --key)")
        return ServerKind.PLAIN, None, b""
    except (ConnectionResetError, BrokenPipeError):
        sock.close()
        raise CheckFailed(closed_at_once) from None
    except OSError as exc:
        sock.close()
        raise CheckFailed(f"{where}: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise


def _icmp_usable(host: str) -> str | None:
    """None when an ICMP socket opens for ``host``'s family, else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock, _raw = open_icmp_socket(family)
    except RuntimeFailure as exc:
        return str(exc)
    sock.close()
    return None


def find_closed_port(host: str, avoid: int, timeout_s: float) -> int | None:
    """A port of ``host`` that answers a SYN with a RST (never ``avoid``); None when none does."""
    for port in CLOSED_PORT_CANDIDATES:
        if port == avoid:
            continue
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return None
        family, _, _, _, addr = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            err = s.connect_ex(addr)
        if err == errno.ECONNREFUSED:
            return port
    return None


def choose_probe(cfg: ThroughputConfig, lcfg: LoadedLatencyConfig) -> ProbePlan:
    """The probe for this server (see the module docstring); CheckFailed when the asked one cannot run."""
    want = lcfg.probe
    v6 = ":" in cfg.host
    server = cfg.server
    sock = None
    ctrl, state = None, b""
    # One detection connection only where the choice depends on the server.
    if server in (ServerKind.AUTO, ServerKind.NETKIT) and want in (ProbeChoice.AUTO, ProbeChoice.ECHO,
                                                                 ProbeChoice.TCP_CONNECT):
        server, sock, state = _open_session(cfg)
        if server == ServerKind.IPERF3:
            ctrl, sock = sock, None
    netkit = server == ServerKind.NETKIT
    # netkit serve tcp: echo on its own session; when it refuses one (--max-sessions), the
    # handshake to its port rather than ICMP, which a firewall may treat apart
    refused = want == ProbeChoice.AUTO and netkit and sock is None
    if refused:
        want = ProbeChoice.TCP_CONNECT
    if want in (ProbeChoice.AUTO, ProbeChoice.ECHO) and netkit and sock is not None:
        return ProbePlan(ProbeChoice.ECHO, "echo on a separate netkit request session", server, cfg.port,
                         sock=sock, v6=v6)
    if sock is not None:
        sock.close()
    try:
        plan = _without_echo(cfg, want, server, v6)
    except BaseException:
        if ctrl is not None:
            ctrl.close()
        raise
    plan.iperf3_ctrl, plan.iperf3_state = ctrl, state
    if refused:
        plan.detail += "; it refused an echo session"
    return plan


def _without_echo(cfg: ThroughputConfig, want: ProbeChoice, server: ServerKind, v6: bool) -> ProbePlan:
    netkit = server == ServerKind.NETKIT
    if want == ProbeChoice.ECHO:
        raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: --latency-probe echo needs netkit serve tcp "
                          f"(this is {'an iperf3 server' if server == ServerKind.IPERF3 else 'not a netkit server'}): "
                          "use icmp or tcp-connect")
    who = {ServerKind.IPERF3: "the server is iperf3", ServerKind.PLAIN: "a plain TCP service"}.get(server, "")
    if want == ProbeChoice.ICMP or want == ProbeChoice.AUTO:
        why_not = _icmp_usable(cfg.host)
        if why_not is None:
            detail = "ICMP echo" + (f" ({who}: no extra connections to its port)" if who else "")
            return ProbePlan(ProbeChoice.ICMP, detail, server, v6=v6)
        if want == ProbeChoice.ICMP:
            raise RuntimeFailure(why_not)
    if netkit:  # asked for, or the server refused the echo session (and ICMP is not allowed)
        return ProbePlan(ProbeChoice.TCP_CONNECT, "tcp-connect to the server's port (netkit serve tcp)",
                         server, cfg.port, v6=v6)
    closed = find_closed_port(cfg.host, cfg.port, min(cfg.connect_timeout_s, 2.0))
    if closed is None:
        raise CheckFailed(f"{format_host_port(cfg.host, cfg.port)}: no probe that leaves the server alone: ICMP "
                          "is not allowed here and no closed port of the host answers with a RST "
                          "(run as root, or allow ping sockets: sysctl net.ipv4.ping_group_range)")
    detail = f"tcp-connect to closed port {closed} (RST)" + (f"; {who}: no extra connections to its port"
                                                             if who else "")
    return ProbePlan(ProbeChoice.TCP_CONNECT, detail, server, closed, port_open=False, v6=v6)


# ----- the probe thread ------------------------------------------------------------------------

class ProbeRunner:
    """One prober in a thread with its own event loop; every probe stamped with its send time.

    ``start()`` returns once the prober is open (or failed to open); ``stop()`` ends it and
    returns the samples. Samples are appended by the probe thread only and read after it ended.
    """

    def __init__(self, plan: ProbePlan, host: str, lcfg: LoadedLatencyConfig,
                 on_sample: Callable[[ProbeSample], None] | None = None) -> None:
        self.plan = plan
        self.on_sample = on_sample
        self.host = host
        self.cfg = LatencyConfig(method=Method.ICMP if plan.choice == ProbeChoice.ICMP else Method.TCP_CONNECT,
                                 count=None, duration_s=None, interval_s=lcfg.interval_s,
                                 timeout_s=lcfg.timeout_s, size=56)
        self.samples: list[ProbeSample] = []
        self.full = False  # MAX_SAMPLES reached
        self.how = ""
        self._sent: dict[int, int] = {}
        self.error: str | None = None
        self._opened = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._astop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="latency-probes", daemon=True)

    def _make(self, sink: EventSink) -> LatencyProber:
        p = self.plan
        label = format_host_port(self.host, p.port) if p.port else self.host
        if p.choice == ProbeChoice.ECHO:
            assert p.sock is not None
            sock, p.sock = p.sock, None
            return SessionEchoProber(label, sock, self.cfg, sink)
        if p.choice == ProbeChoice.ICMP:
            return IcmpProber(label, self.host, 0, self.cfg, sink)
        cls = TcpConnectProber if p.port_open else RstProber
        return cls(label, self.host, p.port, self.cfg, sink)

    def _on_event(self, ev: ProbeEvent) -> None:
        sent = self._sent.pop(ev.seq, None) if ev.kind is not ProbeOutcome.DUPLICATE else None
        if sent is None:
            return  # a late or duplicate answer: the probe was counted already
        if len(self.samples) >= MAX_SAMPLES:
            self.full = True
            return
        if ev.kind is ProbeOutcome.OK and ev.rtt_ns is not None:
            sample = ProbeSample(sent, ev.rtt_ns)
        elif ev.kind in (ProbeOutcome.TIMEOUT, ProbeOutcome.ERROR):
            sample = ProbeSample(sent, None)
        else:
            return
        self.samples.append(sample)
        if self.on_sample is not None:
            self.on_sample(sample)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception as exc:  # a failed probe thread is reported, never raised there
            self.error = str(exc) or type(exc).__name__
        finally:
            self._opened.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._astop = asyncio.Event()
        prober = self._make(self._on_event)
        real_open, real_send = prober.open, prober.send

        async def open_() -> None:
            try:
                await real_open()
            except (CheckFailed, RuntimeFailure, OSError) as exc:  # said before start() returns
                self.error = str(exc).split(": ", 1)[-1] if not isinstance(exc, OSError) else failure_reason(exc)
                raise
            finally:
                self._opened.set()

        def send(seq: int) -> None:
            self._sent[seq] = time.perf_counter_ns()
            real_send(seq)

        prober.open = open_  # type: ignore[method-assign]  # the runner stamps, the prober probes
        prober.send = send  # type: ignore[method-assign]
        result = await measure_target(prober, self._astop)
        self.how = prober.describe()  # which clocks timed the replies (said with -v)
        if result.error:
            self.error = result.error

    def start(self) -> None:
        self._thread.start()
        self._opened.wait(THREAD_JOIN_S)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self.error is None

    def stop(self) -> list[ProbeSample]:
        loop, astop = self._loop, self._astop
        if loop is not None and astop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(astop.set)
        self._thread.join(THREAD_JOIN_S)
        self.plan.close()
        return list(self.samples)


# ----- the run ---------------------------------------------------------------------------------

class PhaseSinks(Protocol):
    """What a view gives one loaded phase: the throughput engine's interval and progress sinks."""

    def interval(self, row: ThroughputInterval) -> None: ...

    def progress(self, elapsed: float) -> None: ...


#: ``view(phase)``: the sinks of one phase, the idle one included (it gets ``progress`` only).
PhaseView = Callable[[Phase], contextlib.AbstractContextManager[PhaseSinks]]
#: How often the idle phase tells its view how long it has run.
IDLE_TICK_S = 0.25


def phase_config(cfg: ThroughputConfig, phase: Phase, server: ServerKind) -> ThroughputConfig:
    """The throughput test of one phase: ``cfg`` with its direction (and the server found out)."""
    return dataclasses.replace(cfg, reverse=phase == Phase.DOWNLOAD, bidir=phase == Phase.BIDIR, server=server)


def _rate(result: ThroughputResult) -> PhaseRate:
    s = result.summary
    if result.bidir and s.tx is not None and s.rx is not None:
        def one(received: float | None, sent: float | None) -> float | None:
            return received if received is not None else sent
        return PhaseRate(result.rate_bps, one(s.tx.received_bits_per_second, s.tx.sent_bits_per_second),
                         one(s.rx.received_bits_per_second, s.rx.sent_bits_per_second))
    return PhaseRate(result.rate_bps)


class _Window:
    """A loaded phase's progress sink that finds out when the load began (the engine's own clock)."""

    def __init__(self, sinks: PhaseSinks) -> None:
        self.sinks = sinks
        self.start_ns: int | None = None

    def progress(self, elapsed: float) -> None:
        if self.start_ns is None:
            self.start_ns = time.perf_counter_ns() - int(elapsed * NS)
        self.sinks.progress(elapsed)

    def interval(self, row: ThroughputInterval) -> None:
        if self.start_ns is None:
            self.start_ns = time.perf_counter_ns() - int(row.end_s * NS)
        self.sinks.interval(row)


def _phase(cfg: ThroughputConfig, plan: ProbePlan, w: _Window, stop: threading.Event,
           on_debug: Callable[[str], None] | None) -> ThroughputResult:
    """One loaded phase's throughput test; the first against an iperf3 found out runs on the
    control connection that found it."""
    ctrl, plan.iperf3_ctrl = plan.iperf3_ctrl, None
    if ctrl is None:
        return measure_throughput(cfg, w.interval, on_progress=w.progress, stop=stop, on_info=on_debug)
    result = iperf3.run_iperf3(cfg, w.interval, on_progress=w.progress, stop=stop, ctrl=ctrl,
                               cookie=rf.session_preamble(), first_state=plan.iperf3_state)
    return dataclasses.replace(result, thresholds=check_thresholds(result, cfg.min_rate_bps))


def measure_loaded_latency(
    cfg: ThroughputConfig,
    lcfg: LoadedLatencyConfig,
    view: PhaseView,
    *,
    stop: threading.Event,
    on_info: Callable[[str], None] | None = None,
    on_debug: Callable[[str], None] | None = None,
    on_sample: Callable[[ProbeSample], None] | None = None,
) -> LoadedLatencyRun:
    """Run the idle phase and every loaded phase of ``lcfg`` with probes throughout (module docstring).

    ``view(phase)`` gives each phase its sinks; ``on_info`` gets a line as each phase begins,
    ``on_sample`` every probe as it is answered or lost (from the probe thread: a live view).
    ``stop`` (Ctrl-C) ends the run with what was measured.
    """
    info = on_info or (lambda _s: None)
    plan = choose_probe(cfg, lcfg)
    runner = ProbeRunner(plan, cfg.host, lcfg, on_sample)
    target = format_host_port(cfg.host, cfg.port)
    windows: list[PhaseWindow] = []
    phases: list[PhaseThroughput] = []
    warnings: list[str] = []
    interrupted = False
    runner.start()
    try:
        if runner.error is not None and not runner.running:
            raise CheckFailed(f"{target}: the latency probes could not start: {runner.error}")
        if on_debug is not None:
            on_debug(f"latency probes: {plan.detail}, every {lcfg.interval_s * 1000:g} ms")
        t0 = time.perf_counter_ns()
        info(f"netkit: idle: probes only for {lcfg.idle_s:g} s")
        with view(Phase.IDLE) as sinks:
            end = t0 + int(lcfg.idle_s * NS)
            while not interrupted and (left := end - time.perf_counter_ns()) > 0:
                interrupted = stop.wait(min(left / NS, IDLE_TICK_S))
                sinks.progress((time.perf_counter_ns() - t0) / NS)
        windows.append(PhaseWindow(Phase.IDLE, t0, time.perf_counter_ns()))
        for phase in lcfg.phases:
            if interrupted:
                break
            info(f"netkit: {phase}: {cfg.duration_s + cfg.omit_s:g} s of load with probes")
            pcfg = phase_config(cfg, phase, plan.server)
            with view(phase) as sinks:
                w = _Window(sinks)
                result = _phase(pcfg, plan, w, stop, on_debug)
            ended = time.perf_counter_ns()
            if plan.server == ServerKind.AUTO:
                plan.server = result.server
            phases.append(PhaseThroughput(phase, result))
            if w.start_ns is not None:
                begin = w.start_ns + int(cfg.omit_s * NS)
                end = min(w.start_ns + int((cfg.omit_s + cfg.duration_s) * NS), ended)
                windows.append(PhaseWindow(phase, begin, max(begin, end)))
            interrupted = interrupted or result.interrupted or stop.is_set()
    finally:
        samples = runner.stop()
    if on_debug is not None and runner.how:
        on_debug(f"latency probes: {runner.how}")
    if runner.error is not None:
        warnings.append(f"latency probes: {runner.error}")
    if runner.full:
        warnings.append(f"latency probes: only the first {MAX_SAMPLES:,} probes were kept for the statistics")
    rates = {p.phase: _rate(p.result) for p in phases}
    stats = summarize_phases(windows, samples, windows[0].start_ns if windows else 0, rates)
    load = probe_load(probe_wire_bytes(plan.choice, port_open=plan.port_open, v6=plan.v6), lcfg.interval_s, stats)
    if load.over_limit:
        warnings.append(f"the latency probes used {load.share_percent:.2g} % of the measured rate (over 1 %): "
                        "they may lower it; use a longer --latency-interval")
    latency = LoadedLatency(plan.choice, plan.detail, lcfg.interval_s, stats, load,
                            check_added_latency(stats, lcfg.max_added_latency_ms), interrupted)
    return LoadedLatencyRun(target, tuple(phases), latency, interrupted, tuple(warnings))
