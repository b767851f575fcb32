"""measure throughput --udp as a user runs it: on time whatever the rate, one line when nobody answers."""

from __future__ import annotations

import socket
import threading
import time

import support

# Python start-up, imports and the end-of-run exchange on a shared 2-core machine: generous.
MARGIN_S = 3.0


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed(args: list[str]) -> tuple[support.CliResult, float]:
    t0 = time.monotonic()
    res = support.run_netkit(args, timeout=60)
    return res, time.monotonic() - t0


def _one_failure_line(res: support.CliResult, words: str) -> None:
    assert res.exit_code == 1, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("netkit:") and words in lines[0], res.stderr
    assert words not in res.stdout  # said once, on stderr
    assert "Traceback" not in res.stderr


def test_closed_udp_port_fails_at_once() -> None:
    res, took = _timed(["measure", "throughput", f"127.0.0.1:{_closed_udp_port()}", "--udp", "-t", "10s"])
    _one_failure_line(res, "port unreachable (nothing listening)")
    assert took < 1 + MARGIN_S


def test_silent_peer_fails_within_the_duration() -> None:
    with support.udp_peer(lambda data: None) as port:
        res, took = _timed(["measure", "throughput", f"127.0.0.1:{port}", "--udp", "-t", "1s"])
    _one_failure_line(res, "nothing answered")
    assert took < 1 + MARGIN_S


def test_silent_peer_is_a_stall_before_a_long_duration_ends() -> None:
    with support.udp_peer(lambda data: None) as port:
        res, took = _timed(["measure", "throughput", f"127.0.0.1:{port}", "--udp", "-t", "30s"])
    _one_failure_line(res, "nothing answered")
    assert took < 3 + MARGIN_S  # the stall limit, not -t


def test_path_that_stops_answering_fails_named_as_such() -> None:
    answered = []
    lock = threading.Lock()

    def first_few(data: bytes) -> bytes | None:
        with lock:
            answered.append(1)
            return data if len(answered) <= 200 else None  # an echo that goes silent

    with support.udp_peer(first_few) as port:
        res, took = _timed(["measure", "throughput", f"127.0.0.1:{port}", "--udp", "-t", "30s"])
    _one_failure_line(res, "stopped answering")
    assert took < 2 + 3 + MARGIN_S  # 200 datagrams at 1 Mbit/s, then the stall limit


def test_unreachable_rate_ends_on_time_and_says_so_once() -> None:
    with support.netkit_server("serve", "udp", "--mode", "echo", "--port", "0") as srv:
        res, took = _timed(["measure", "throughput", srv.addr, "--udp", "-b", "10G", "-t", "1s", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    assert took < 1 + MARGIN_S
    d = res.json()
    assert d["udp"]["rate_reached"] is False
    sent_bps = d["summary"]["sent_bits_per_second"]
    assert 0 < sent_bps < 10e9  # bytes over the measured sending time, never over a stop time not taken
    assert res.stderr.count("could not keep up") == 1 and len(d["warnings"]) == 1
    assert "loss" in d["warnings"][0]  # "... not loss"


def test_reachable_rate_raises_no_warning() -> None:
    with support.netkit_server("serve", "udp", "--mode", "echo", "--port", "0") as srv:
        res = support.run_netkit(["measure", "throughput", srv.addr, "--udp", "-b", "2M", "-t", "1s",
                                  "--format", "json"])
    assert res.exit_code == 0, res.stderr
    d = res.json()
    assert d["udp"]["rate_reached"] is True and d["warnings"] == []
    assert "could not keep up" not in res.stderr
    assert d["udp"]["local_drops"] == 0  # read from the socket's own counter: known on Linux


def test_omit_through_the_reflector_says_the_totals_cover_the_whole_run() -> None:
    import json

    with support.netkit_server("serve", "udp", "--port", "0", "--mode", "echo") as srv:
        res = support.run_netkit(["--format", "json", "measure", "throughput", srv.addr, "--udp", "-b", "1M",
                                  "-t", "1s", "-O", "1s"], timeout=60)
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [row["omitted"] for row in doc["intervals"]][:1] == [True]
    # two seconds of 1 Mbit/s went out and the totals hold them all: the note must say so
    assert doc["summary"]["sent_bytes"] > 1.5 * 1_000_000 / 8
    assert "--omit marks the first intervals only" in doc["note"] and "--omit" in res.stderr


def test_a_failed_run_prints_no_interval_before_its_error() -> None:
    """Piped, intervals go to stdout as they come: the cut-short one of a run found failed is no
    measurement ("0 B 0 bit/s" above "port unreachable")."""
    res, _ = _timed(["measure", "throughput", f"127.0.0.1:{_closed_udp_port()}", "--udp", "-t", "10s"])
    _one_failure_line(res, "port unreachable")
    assert res.stdout == ""
