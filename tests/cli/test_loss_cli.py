"""``netkit measure loss`` as a user runs it."""

from __future__ import annotations

import pytest
import support

from netkit.io.servers.reflector_server import reflector_in_thread


def test_loss_json_has_rate_fields_and_exact_counts() -> None:
    with reflector_in_thread() as srv:
        host, port = srv.address
        res = support.run_netkit(["measure", "loss", f"{host}:{port}", "--rate", "1000", "-d", "500ms",
                                  "--format", "json", "--max-loss", "1"])
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert list(doc) == ["method", "targets", "thresholds", "rate_pps", "achieved_pps", "interrupted"]
    t = doc["targets"][0]
    assert (t["sent"], t["received"], t["lost"], t["lost_forward"], t["lost_return"]) == (500, 500, 0, 0, 0)
    assert doc["rate_pps"] == 1000 and 500 < doc["achieved_pps"] < 1100
    assert t["jitter_ms"] is not None


def test_loss_no_reflector_exits_1() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        res = support.run_netkit(["measure", "loss", f"127.0.0.1:{port}", "--rate", "200", "-d", "100ms",
                                  "-W", "100ms", "--format", "json"])
    assert res.exit_code == 1
    t = res.json()["targets"][0]
    assert t["sent"] == 20 and t["lost"] == 20 and t["loss_pct"] == 100.0
    assert t["rtt_ms"]["p50"] is None


@pytest.mark.parametrize("args", [["127.0.0.1:9", "--rate", "0"], ["127.0.0.1:9", "--size", "20"], ["127.0.0.1"]])
def test_loss_usage_errors(args: list[str]) -> None:
    assert support.invoke(["measure", "loss", *args]).exit_code == 2


def test_loss_against_plain_echo_says_so_and_jsonl_ends_with_summary() -> None:
    import socket
    import subprocess

    support.require_tool("socat")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["socat", f"UDP-RECVFROM:{port},bind=127.0.0.1,fork", "EXEC:cat"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def echoes() -> bool:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(0.2)
                try:
                    c.sendto(b"x", ("127.0.0.1", port))
                    return c.recv(8) == b"x"
                except OSError:
                    return False
        support.wait_until(echoes, timeout=5)
        res = support.run_netkit(["measure", "loss", f"127.0.0.1:{port}", "--rate", "200", "-d", "1200ms",
                                  "--format", "jsonl"])
    finally:
        proc.kill()
        proc.wait()
    events = res.jsonl()
    assert events[-1]["event"] == "summary" and events[0]["event"] == "progress"
    t = events[-1]["targets"][0]
    assert t["sent"] == 240 and t["received"] >= 230
    assert t["lost_forward"] is None and t["lost_return"] is None
    assert "plain" in res.stderr
