"""``measure throughput --latency`` as people run it: the tables (golden, 80 columns and piped), the
machine formats, usage errors, the --max-added-latency check and Ctrl-C.

Hand-made runs (no sockets, no clock) go through the real renderer; one real run on loopback checks
the JSON end to end. ``NETKIT_UPDATE_GOLDEN=1 pytest tests/cli/test_throughput_latency_cli.py``
rewrites the golden files.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import time

import pytest
import support
from golden_support import golden_pair, piped_output

from netkit.core.loaded_latency import (
    LoadedLatency,
    LoadedLatencyRun,
    Phase,
    PhaseRate,
    PhaseThroughput,
    PhaseWindow,
    ProbeChoice,
    ProbeSample,
    check_added_latency,
    probe_load,
    summarize_phases,
)
from netkit.core.throughput_models import (
    NS,
    RECV,
    SEND,
    CountedBy,
    ServerKind,
    ThroughputResult,
    Transport,
    interval_row,
    stream_result,
    summarize_streams,
)
from netkit.render.loaded_latency import document, emit_run
from netkit.render.output import Output

MS = 1_000_000


def _throughput(directions: list[str], rate_bps: float, seconds: float = 3.0) -> ThroughputResult:
    nbytes = int(rate_bps / 8 * seconds / len(directions))
    streams = [stream_result(i, d, sent_bytes=nbytes, sent_ns=int(seconds * NS), received_bytes=nbytes,
                             received_ns=int(seconds * NS), retransmits=3 * i, rtt_us=41_000,
                             counted_by=CountedBy.RECEIVER) for i, d in enumerate(directions)]
    rows = tuple(interval_row(k * NS, (k + 1) * NS, [(i, d, nbytes // 3) for i, d in enumerate(directions)])
                 for k in range(int(seconds)))
    bidir = SEND in directions and RECV in directions
    r = ThroughputResult(Transport.TCP, len(directions), directions[0] == RECV and not bidir, seconds, rows,
                         summarize_streams(streams, 0.4, int(seconds * NS)), CountedBy.RECEIVER,
                         target="198.18.1.2:5000", server=ServerKind.NETKIT, bidir=bidir, block_size=131072)
    return r


def _run(phases: list[tuple[Phase, list[str], float, list[float | None]]], max_added: float | None = None,
         interrupted: bool = False) -> LoadedLatencyRun:
    """A run: an idle phase with RTTs near 0.4 ms, then each (phase, stream directions, rate, RTTs)."""
    windows = [PhaseWindow(Phase.IDLE, 0, NS)]
    samples = [ProbeSample(i * 100 * MS, int((0.38 + 0.01 * i) * MS)) for i in range(10)]
    results = []
    for k, (phase, dirs, rate, rtts) in enumerate(phases):
        start = (1 + 3 * k) * NS + 200 * MS
        windows.append(PhaseWindow(phase, start, start + 2 * NS))
        samples += [ProbeSample(start + i * 100 * MS, None if r is None else int(r * MS)) for i, r in enumerate(rtts)]
        tr = _throughput(dirs, rate)
        results.append(PhaseThroughput(phase, tr))
    stats = summarize_phases(windows, samples, 0, {
        t.phase: PhaseRate(t.result.rate_bps) if not t.result.bidir else PhaseRate(
            t.result.rate_bps, t.result.summary.tx.received_bits_per_second,  # type: ignore[union-attr]
            t.result.summary.rx.received_bits_per_second)  # type: ignore[union-attr]
        for t in results})
    lat = LoadedLatency(ProbeChoice.ECHO, "echo on a netkit request session", 0.1, stats,
                        probe_load(176, 0.1, stats), check_added_latency(stats, max_added), interrupted)
    return LoadedLatencyRun("198.18.1.2:5000", tuple(results), lat, interrupted)


def _queue(base: float, n: int = 20) -> list[float | None]:
    return [base + (i % 7) * 3.1 for i in range(n)]


DOWNLOAD = _run([(Phase.DOWNLOAD, [RECV] * 4, 19.6e6, _queue(33.0))], max_added=30.0)
THREE = _run([(Phase.DOWNLOAD, [RECV] * 2, 19.4e6, _queue(35.0)),
              (Phase.UPLOAD, [SEND] * 2, 19.1e6, [*_queue(2.0, 19), None]),
              (Phase.BIDIR, [SEND, SEND, RECV, RECV], 38.0e6, _queue(61.0))])


def _draw(run: LoadedLatencyRun):
    return lambda out: emit_run(out, run, streamed=False)


@pytest.mark.parametrize("name", ["download", "three"])
def test_golden_tables(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = {"download": DOWNLOAD, "three": THREE}[name]
    tty, piped = golden_pair(monkeypatch, f"throughput_latency_{name}", _draw(run))
    for text in (tty, piped):
        assert "latency under load 198.18.1.2:5000 (echo every 100 ms)" in text
        for figure in ("0.425 ms", "idle"):
            assert figure in text
    if name == "download":
        assert "+41.9 ms" in tty and "19.6 Mbit/s" in tty and "FAIL" in tty
    else:
        assert "19.0/19.0 Mbit/s" in tty and "5.0 %" in tty and "+43.9 ms" in tty


def test_a_failed_check_is_said_on_stderr_when_piped() -> None:
    out, _stdout = piped_output()
    emit_run(out, DOWNLOAD, streamed=False)
    err = out.stderr.getvalue()  # type: ignore[attr-defined]
    assert err.count("netkit: check failed: download: added latency +41.9 ms is above") == 1


def _machine(fmt: str, run: LoadedLatencyRun) -> str:
    stdout = io.StringIO()
    out = Output(format=fmt, color=False, stdout=stdout, stderr=io.StringIO())
    emit_run(out, run, streamed=False)
    return stdout.getvalue()


def test_json_adds_a_latency_object_and_renames_nothing() -> None:
    d = json.loads(_machine("json", DOWNLOAD))
    plain = json.loads(json.dumps(document(DOWNLOAD)))
    assert list(d)[:7] == ["protocol", "streams", "reverse", "duration_s", "intervals", "summary", "counted_by"]
    assert d == plain and list(d)[-1] == "latency"
    lat = d["latency"]
    assert lat["probe"] == "echo" and lat["interval_s"] == 0.1
    assert [p["phase"] for p in lat["phases"]] == ["idle", "download"]
    assert lat["phases"][1]["added_ms"]["p50"] == pytest.approx(41.875, abs=0.01)
    assert lat["thresholds"] == {"max_added_latency_ms": 30.0, "passed": False,
                                 "failed": [lat["thresholds"]["failed"][0]]}
    several = json.loads(_machine("json", THREE))
    assert [p["phase"] for p in several["phases"]] == ["download", "upload", "bidir"]
    assert several["phases"][0]["summary"]["received_bytes"] > 0
    assert [p["phase"] for p in several["latency"]["phases"]] == ["idle", "download", "upload", "bidir"]


def test_jsonl_a_line_per_phase_then_the_summary() -> None:
    lines = [json.loads(line) for line in _machine("jsonl", THREE).splitlines()]
    assert [(e["event"], e.get("phase")) for e in lines] == [
        ("phase", "idle"), ("phase", "download"), ("phase", "upload"), ("phase", "bidir"), ("summary", None)]
    assert lines[2]["lost"] == 1 and lines[2]["loss_percent"] == 5.0
    assert "intervals" not in lines[-1]["phases"][0]


def test_csv_a_row_per_phase() -> None:
    rows = list(csv.DictReader(io.StringIO(_machine("csv", THREE))))
    assert [r["phase"] for r in rows] == ["idle", "download", "upload", "bidir"]
    assert rows[0]["added_p50_ms"] == "" and float(rows[1]["added_p50_ms"]) > 30
    assert float(rows[1]["bits_per_second"]) == pytest.approx(19.4e6, rel=1e-3)
    assert rows[1]["send_bits_per_second"] == "" and float(rows[3]["recv_bits_per_second"]) == pytest.approx(19e6)


# ----- the command ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "says"), [
    (["--latency", "--udp"], "--latency measures TCP load only"),
    (["--latency", "--latency-interval", "0"], "--latency-interval"),
    (["--latency", "--latency-interval", "soon"], "--latency-interval"),
    (["--directions", "up"], "need --latency"),
    (["--max-added-latency", "10ms"], "need --latency"),
    (["--latency", "--directions", "sideways"], "unknown direction 'sideways'"),
    (["--latency", "-R", "--directions", "up,down"], "either --directions or -R/--bidir"),
    (["--latency", "--latency-probe", "carrier-pigeon"], "--latency-probe"),
])
def test_usage_errors_exit_2(args: list[str], says: str) -> None:
    r = support.invoke(["measure", "throughput", "127.0.0.1:9", *args])
    assert r.exit_code == 2, r.stderr
    assert says in r.stderr
    assert "Traceback" not in r.stderr


def test_max_added_latency_missed_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from netkit.io.measure import loaded_latency

    seen = {}

    def fake(cfg, lcfg, view, **_kw):  # the command's one io call, answered with a made-up run
        seen["lcfg"] = lcfg
        return _run([(Phase.DOWNLOAD, [RECV], 19.6e6, _queue(33.0))], max_added=lcfg.max_added_latency_ms)

    monkeypatch.setattr(loaded_latency, "measure_loaded_latency", fake)
    base = ["--format", "json", "measure", "throughput", "127.0.0.1:9", "--latency", "-R"]
    r = support.invoke([*base, "--max-added-latency", "20ms"])
    assert r.exit_code == 1, r.stderr
    assert seen["lcfg"].max_added_latency_ms == 20.0 and seen["lcfg"].phases == (Phase.DOWNLOAD,)
    assert json.loads(r.stdout)["latency"]["thresholds"]["passed"] is False
    assert "check failed: download: added latency" in r.stderr
    assert support.invoke([*base, "--max-added-latency", "50ms"]).exit_code == 0


@pytest.fixture(scope="module")
def server():
    with support.netkit_server("serve", "tcp", "--port", "0") as srv:
        yield srv


def test_a_real_run_on_loopback(server) -> None:
    r = support.run_netkit(["--format", "jsonl", "measure", "throughput", server.addr, "--latency", "-t", "0.4s",
                            "-i", "0.2s", "--idle", "0.5s", "--latency-interval", "40ms", "--directions", "down,up",
                            "-P", "2"])
    assert r.exit_code == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    # the intervals as they come, each naming its phase (start_s restarts in every phase)
    assert [(e["event"], e.get("phase")) for e in events] == [
        ("interval", "download"), ("interval", "download"), ("interval", "upload"), ("interval", "upload"),
        ("phase", "idle"), ("phase", "download"), ("phase", "upload"), ("summary", None)]
    d = events[-1]
    assert [p["phase"] for p in d["phases"]] == ["download", "upload"]
    assert d["phases"][0]["reverse"] is True and d["phases"][1]["reverse"] is False
    lat = d["latency"]
    assert lat["probe"] == "echo" and lat["probe_share_percent"] < 1.0
    idle, down, up = lat["phases"]
    assert idle["probes"] >= 8 and down["probes"] >= 6 and up["probes"] >= 6
    assert idle["lost"] == down["lost"] == up["lost"] == 0
    assert down["rtt_ms"]["p50"] > 0 and down["bits_per_second"] > 0
    assert "about 1.3 s: 0.5 s idle, then download 0.4 s, upload 0.4 s" in r.stderr


def test_ctrl_c_during_a_phase_prints_what_was_measured(server) -> None:
    p = subprocess.Popen(support.netkit_cmd("measure", "throughput", server.addr, "--latency", "-t", "20s",
                                            "--idle", "0.5s", "--directions", "down,up"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=support.clean_env(),
                         stdin=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stderr is not None
    seen = b""
    deadline = time.monotonic() + 10
    while b"download:" not in seen and time.monotonic() < deadline:  # the load has begun
        seen += p.stderr.readline()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=15)
    assert p.returncode == 130, err
    text = out.decode()
    assert "stopped early" in text and "idle" in text and "download" in text
    assert "upload" not in text.split("latency under load")[1]  # the phase after the stop never ran
    assert b"Traceback" not in err


def test_the_live_view_shows_the_probes_rtt_and_what_the_load_added() -> None:
    from netkit.render.loaded_latency import PhaseViews

    out, _stdout = piped_output()
    views = PhaseViews(out, 3.0, 2.0, True, False)
    with views(Phase.IDLE) as idle:
        assert views.probes.line() == "waiting for the probes"
        for i in range(10):
            views.probes.add(ProbeSample(i, (400 + i) * 1000))
        idle.progress(1.0)
        text = _drawn(idle)
        assert "idle: RTT p50 0.405 ms (last 10 probes)" in text and "1.0/2.0 s" in text
    with views(Phase.DOWNLOAD) as down:
        for i in range(25):
            views.probes.add(ProbeSample(i, None if i % 5 == 0 else 40_000_000 + i * 1000))
        text = _drawn(down)
    assert "download: RTT p50 40.0 ms (last 20 probes, 4 lost), added +39.6 ms" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def _drawn(view) -> str:
    from rich.console import Console

    console = Console(width=80, record=True, color_system=None, file=io.StringIO())
    console.print(view.draw(80, 24))
    return console.export_text()
