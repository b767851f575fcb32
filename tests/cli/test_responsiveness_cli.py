"""``netkit measure responsiveness`` from the command line: exit codes and the summary's look."""

from __future__ import annotations

import subprocess

import pytest
import support
from golden_support import golden_pair

from netkit.core.responsiveness_algo import Confidence, ProbeKind, ProbeSample, probe_stats
from netkit.core.responsiveness_result import DirectionResult, ResponsivenessResult, RpmThresholds
from netkit.render.output import Output
from netkit.render.responsiveness import render_responsiveness


def netkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(support.netkit_cmd("measure", "responsiveness", *args), capture_output=True, text=True,
                          timeout=30, env=support.clean_env())


def test_no_url_says_how_to_get_a_server() -> None:
    p = netkit()
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "netkit: measure responsiveness needs a server's URL: start one with `netkit serve responsiveness` "
        "and pass the URL it prints"]
    assert p.stdout == ""


@pytest.mark.parametrize("url", ["ftp://example.test", "https://", "not a url"])
def test_bad_url_is_usage(url: str) -> None:
    p = netkit(url)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("netkit: ") and "Traceback" not in p.stderr


def test_unreachable_is_exit_1() -> None:
    port = support.free_tcp_port()
    p = netkit(f"https://127.0.0.1:{port}", "--connect-timeout", "2s")
    assert p.returncode == 1
    assert p.stderr.strip() == f"netkit: cannot reach https://127.0.0.1:{port}/.well-known/nq: connection refused"


def _result(thresholds: RpmThresholds | None = None) -> ResponsivenessResult:
    def foreign(ms: float) -> ProbeSample:
        return ProbeSample(ProbeKind.FOREIGN, 0, ms, ms * 0.9, ms * 1.1)

    idle = probe_stats([foreign(2.0 + i / 10) for i in range(5)])
    dirs = []
    for name, base, bps in (("download", 48.0, 94.3e6), ("upload", 12.0, 19.7e6)):
        probes = [foreign(base + i) for i in range(20)] + \
            [ProbeSample(ProbeKind.SELF, 0, base * 1.5 + i) for i in range(20)]
        stats = probe_stats(probes)
        loaded = stats.foreign_latency_ms
        assert loaded is not None and idle.foreign_latency_ms is not None
        dirs.append(DirectionResult(name, bps, 6, stats.rpm, Confidence.HIGH, Confidence.MEDIUM, loaded,
                                    loaded - idle.foreign_latency_ms, stats, 12, (8.0, 12.0), 12.0))
    return ResponsivenessResult("https://198.18.1.2:4443", "https://198.18.1.2:4443/.well-known/nq", "h2",
                                "TLSv1.3", "http", False, idle, tuple(dirs), 25.0,
                                thresholds=thresholds or RpmThresholds())


def test_summary_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    tty, piped = golden_pair(monkeypatch, "responsiveness", lambda out: render_responsiveness(out, _result()))
    assert "RPM" in tty and "excellent" not in piped.splitlines()[0]


def test_threshold_failure_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    th = RpmThresholds(2000, 20, False, ("download RPM 1,003 < min-rpm 2,000",))
    golden_pair(monkeypatch, "responsiveness_thresholds", lambda out: render_responsiveness(out, _result(th)))


def _intervals() -> list:
    from netkit.core.responsiveness_algo import IntervalRecord, Stage
    from netkit.core.responsiveness_result import ResponsivenessInterval

    rows = []
    for i, (mbit, rpm, stage) in enumerate([(41.0, 2100.0, Stage.GOODPUT), (88.5, 950.0, Stage.GOODPUT),
                                            (94.1, 610.0, Stage.RESPONSIVENESS), (94.3, 597.0, Stage.RESPONSIVENESS)]):
        rec = IntervalRecord("download", i, i * 10**9, (i + 1) * 10**9, int(mbit * 1e6 / 8), i + 1, stage,
                             mbit * 1e6, rpm, 20, 19)
        rows.append(ResponsivenessInterval(rec, 1.2 + i))
    return rows


def test_interval_lines_and_live_table_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    from netkit.render.responsiveness import responsiveness_interval_line, responsiveness_live_table

    rows = _intervals()

    def draw(out: Output) -> None:
        if out.stdout_is_tty:
            out.print(responsiveness_live_table(rows, width=out.width))
        else:
            for r in rows:
                out.line(responsiveness_interval_line(r, width=out.width))

    golden_pair(monkeypatch, "responsiveness_intervals", draw)
    assert all(len(responsiveness_interval_line(r, width=40)) <= 60 for r in rows)


def test_machine_formats() -> None:
    import csv
    import io
    import json

    from netkit.render.output import make_test_output

    result = _result()
    out, stdout, _ = make_test_output("json")
    render_responsiveness(out, result)
    doc = json.loads(stdout.getvalue())
    assert doc["directions"][0]["band"] == "fair" and doc["self_probe"] == "http"
    assert set(doc["directions"][0]["percentiles_ms"]) == {"tcp_f", "tls_f", "http_f", "http_l"}
    out, stdout, _ = make_test_output("jsonl")
    for row in _intervals():
        out.jsonl(row.to_json())
    render_responsiveness(out, result)
    events = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["interval"] * 4 + ["summary"]
    assert events[0]["rpm"] == 2100.0 and events[-1]["directions"][1]["direction"] == "upload"
    out, stdout, _ = make_test_output("csv")
    render_responsiveness(out, result)
    rows = list(csv.DictReader(io.StringIO(stdout.getvalue())))
    assert [r["direction"] for r in rows] == ["download", "upload"]
    assert rows[0]["percentiles_ms.http_l.p99"] and "e+" not in stdout.getvalue()


def test_thresholds_check() -> None:
    from netkit.core.responsiveness_result import check_rpm_thresholds

    result = _result()
    assert check_rpm_thresholds(result, None, None).passed
    th = check_rpm_thresholds(result, 1000, 30)
    assert not th.passed
    assert th.failed == ("download RPM 897 < min-rpm 1,000",
                         "download added latency 54.9 ms > max-added-latency 30.0 ms")
    empty = ResponsivenessResult("u", "u", "h2", None, "http", False, result.idle, (), 1.0, error="refused")
    assert check_rpm_thresholds(empty, None, None).failed == ("no responsiveness measured (refused)",)
