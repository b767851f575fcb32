"""``netkit measure dns`` against a real server: Debian's dnsmasq on a loopback port with local records.

Answers are checked exactly and against ``dig +short`` on the same server; a TXT record larger than
the advertised EDNS size comes back truncated over UDP and is asked again over TCP (both times kept);
NXDOMAIN, --expect, --max-rtt and several servers side by side give the exit codes the contract says.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import dns_peers
import pytest
import support


@pytest.fixture(scope="module")
def server() -> Iterator[dns_peers.Dnsmasq]:
    try:
        with dns_peers.dnsmasq() as d:
            yield d
    except dns_peers.DnsmasqUnavailable as e:
        pytest.skip(str(e))


def dig_short(server: dns_peers.Dnsmasq, qtype: str, name: str, *extra: str) -> list[str]:
    dig = shutil.which("dig")
    if dig is None:
        pytest.skip("dig is not installed (Debian: bind9-dnsutils)")
    args = [dig, "@127.0.0.1", "-p", str(server.port), "+short", "+time=2", "+tries=1", *extra]
    args += ["-x", name] if qtype == "PTR" else ["-t", qtype, name]
    out = subprocess.run(args, capture_output=True, text=True, timeout=10).stdout
    return [line for line in out.splitlines() if line]


def measure(server: dns_peers.Dnsmasq, *args: str) -> support.CliResult:
    return support.invoke(["--format", "json", "measure", "dns", "-s", server.server, "-i", "0", *args])


@pytest.mark.parametrize(("qtype", "name"), sorted(dns_peers.RECORDS))
def test_answers_exactly_and_as_dig(server: dns_peers.Dnsmasq, qtype: str, name: str) -> None:
    res = measure(server, "-t", qtype, name, "-c", "3")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    row = doc["rows"][0]
    assert list(row["answers"]) == dns_peers.RECORDS[(qtype, name)] == dig_short(server, qtype, name)
    assert (row["sent"], row["answered"], row["lost"], row["rcode"]) == (3, 3, 0, "NOERROR")
    assert all(q["transport"] == "udp" and not q["truncated"] for q in doc["queries"])
    assert 0 < row["rtt_ms"]["p50"] <= row["rtt_ms"]["p99"] <= row["rtt_ms"]["max"] < 2000


def test_truncated_udp_answer_is_asked_again_over_tcp(server: dns_peers.Dnsmasq) -> None:
    res = measure(server, "-t", "TXT", "big.test", "-c", "2")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    want = " ".join(f'"{dns_peers.BIG_TXT_PART}"' for _ in range(dns_peers.BIG_TXT_PARTS))
    assert doc["rows"][0]["answers"] == [want]
    assert dig_short(server, "TXT", "big.test") == [want]  # dig retries over TCP too
    for q in doc["queries"]:
        assert q["truncated"] and q["transport"] == "tcp" and q["outcome"] == "answered"
        assert q["udp_ms"] > 0 and q["tcp_ms"] > 0
        assert q["rtt_ms"] == pytest.approx(q["udp_ms"] + q["tcp_ms"], abs=1e-5)
        assert q["size_bytes"] > 1232
    assert doc["rows"][0]["truncated"] == 2
    # Advertising a size that holds it: no truncation, one UDP exchange.
    doc = measure(server, "-t", "TXT", "big.test", "--edns-size", "4096").json()
    assert not doc["queries"][0]["truncated"] and doc["queries"][0]["transport"] == "udp"


def test_tcp_transport_gives_the_same_answer(server: dns_peers.Dnsmasq) -> None:
    doc = measure(server, "--tcp", "-t", "MX", "m.test", "-c", "2").json()
    assert doc["transport"] == "tcp" and doc["rows"][0]["answers"] == ["10 mail.m.test."]
    assert doc["rows"][0]["answered"] == 2


def test_nxdomain_fails_unless_expected(server: dns_peers.Dnsmasq) -> None:
    res = measure(server, "nx.test")
    assert res.exit_code == 1
    assert "nx.test @" in res.stderr and "rcode NXDOMAIN (expected NOERROR)" in res.stderr
    assert measure(server, "nx.test", "--expect-rcode", "nxdomain").exit_code == 0


def test_expect_and_max_rtt(server: dns_peers.Dnsmasq) -> None:
    assert measure(server, "a.test", "--expect", r"A 198\.18\.0\.7$").exit_code == 0
    res = measure(server, "a.test", "--expect", "192.0.2.1")
    assert res.exit_code == 1 and "do not match --expect 192.0.2.1" in res.stderr
    res = measure(server, "a.test", "--max-rtt", "1us")
    assert res.exit_code == 1 and "max-rtt 0.001 ms" in res.stderr


def test_servers_side_by_side_one_silent(server: dns_peers.Dnsmasq) -> None:
    with support.udp_peer(lambda _q: None) as silent:
        res = support.invoke(["--format", "json", "measure", "dns", "a.test", "t.test", "-s", server.server,
                              "-s", f"127.0.0.1:{silent}", "-W", "300ms", "-c", "2", "-i", "0"])
    assert res.exit_code == 1
    rows = {(r["server"], r["name"]): r for r in res.json()["rows"]}
    assert len(rows) == 4
    assert rows[(server.server, "a.test")]["loss_pct"] == 0.0
    assert rows[(f"127.0.0.1:{silent}", "t.test")]["loss_pct"] == 100.0
    assert f"a.test @127.0.0.1:{silent}: no answer (no answer within the timeout)" in res.stderr


def test_table_and_jsonl(server: dns_peers.Dnsmasq) -> None:
    res = support.invoke(["measure", "dns", "-s", server.server, "-t", "TXT", "big.test", "t.test", "-i", "0"])
    assert res.exit_code == 0
    assert "truncated UDP answers, asked again over TCP" in res.stdout and '"hello world"' in res.stdout
    res = support.invoke(["--format", "jsonl", "measure", "dns", "-s", server.server, "a.test", "-c", "3", "-i", "0"])
    events = res.jsonl()
    assert [e["event"] for e in events] == ["query"] * 3 + ["summary"]
    assert events[0]["answers"] == [{"name": "a.test.", "ttl": 0, "type": "A", "data": "198.18.0.7"}]
    res = support.invoke(["--format", "csv", "measure", "dns", "-s", server.server, "a.test", "m.test", "-t", "MX"])
    assert res.stdout.splitlines()[0].startswith("server,name,sent,answered")
    assert len(res.stdout.splitlines()) == 3
