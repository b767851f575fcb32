"""``measure dns --format table`` as people see it: golden text at 80 columns on a terminal and piped.
Fixed, hand-made results go through the real renderer (netkit.render.dns).

``NETKIT_UPDATE_GOLDEN=1 pytest tests/cli/test_golden_dns.py`` rewrites the golden files.
"""

from __future__ import annotations

import io

import pytest
from golden_support import BOX, FakeTerminal, check_golden

from netkit.core.dns_result import DnsChecks, DnsResult, DnsRow
from netkit.render.dns import render_dns
from netkit.render.output import Output


@pytest.fixture(autouse=True)
def _eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "40")
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def _row(server: str, name: str, answers: tuple[str, ...], p50: float | None, sent: int = 20, answered: int = 20,
         rcode: str = "NOERROR", truncated: int = 0, last_error: str | None = None) -> DnsRow:
    rtt = {"min": p50 and p50 * 0.8, "p50": p50, "p90": p50 and p50 * 1.7, "p99": p50 and p50 * 3.1,
           "max": p50 and p50 * 3.2}
    return DnsRow(server=server, name=name, sent=sent, answered=answered, rtt_ms=rtt,
                  rcodes={rcode: answered} if answered else {}, answers=answers, ttl_min=300 if answers else None,
                  truncated=truncated, errors={} if answered == sent else {"timeout": sent - answered},
                  last_error=last_error)


BENCH = DnsResult(qtype="A", transport="udp", edns_size=1232, elapsed_ns=4_100_000_000, rows=(
    _row("127.0.0.1:53", "example.com", ("198.18.0.7", "198.18.0.8"), 0.231),
    _row("198.18.0.53:53", "example.com", ("198.18.0.7", "198.18.0.8"), 12.46),
    _row("[2001:db8::53]:5353", "www.a-rather-long-name.example.org", ("198.18.0.9",), 1234.5, answered=17,
         last_error="no answer within the timeout"),
), ignored={"wrong_id": 2, "wrong_source": 1})

HOSTILE = DnsResult(qtype="TXT", transport="udp", edns_size=1232, elapsed_ns=1_000_000_000, rows=(
    _row("127.0.0.1:5353", "big.test", ('"' + "x" * 250 + '" "' + "y" * 250 + '"',), 2.315, sent=2, answered=2,
         truncated=2),
    _row("127.0.0.1:5353", "t.test", ('"[bold red]boom[/] \\027[31m"', '"\u202eevil"'), 0.2, sent=2, answered=2),
    _row("127.0.0.1:5354", "nx.test", (), None, sent=2, answered=0, last_error="connection refused"),
), checks=DnsChecks(expect="hello", expect_rcode="NOERROR", passed=False, failed=(
    "nx.test @127.0.0.1:5354: no answer (connection refused)",
    "t.test @127.0.0.1:5353: 2 of 2 answers do not match --expect hello")))


def _draw(result: DnsResult, terminal: bool) -> str:
    stdout = FakeTerminal() if terminal else io.StringIO()
    out = Output(format="table", color=False, stdout=stdout, stderr=io.StringIO())
    render_dns(out, result)
    return stdout.getvalue()


@pytest.mark.parametrize("terminal", [True, False], ids=["tty80", "piped"])
@pytest.mark.parametrize("case", ["bench", "hostile"])
def test_golden(case: str, terminal: bool) -> None:
    text = _draw(BENCH if case == "bench" else HOSTILE, terminal)
    check_golden(f"dns_{case}_{'tty80' if terminal else 'piped'}", text)
    lines = text.splitlines()
    assert "…" not in text and lines[0].strip()
    assert "\x1b" not in text and "\u202e" not in text
    if terminal:
        assert max(len(line) for line in lines) <= 80
    else:
        assert not BOX & set(text)
        assert all(line == line.rstrip() for line in lines)


def test_identifying_columns_and_headline_figures_whole_at_80() -> None:
    text = _draw(BENCH, True)
    for figure in ("[2001:db8::53]:5353", "www.a-rather-long-name.example.org", "0.231 ms", "1,234 ms", "15.0 %",
                   "NOERROR", "wrong id 2"):
        assert figure in text, figure
    hostile = _draw(HOSTILE, True)
    assert "[bold red]boom[/]" in hostile and "\\u202e" in hostile


def test_live_view_counts_queries_and_fits() -> None:
    from rich.console import Console

    from netkit.core.dns_result import DnsQuery
    from netkit.core.dns_wire import Answer
    from netkit.render.dns import DnsSink

    out = Output(format="table", color=False, stdout=io.StringIO(), stderr=io.StringIO())
    sink = DnsSink(out)
    assert sink.screen is None  # stderr is not a terminal: nothing drawn live
    for i in range(3):
        sink.add(DnsQuery(seq=i, server="[2001:db8::53]:5353", name="www.a-rather-long-name.example.org",
                          qtype="A", transport="udp", outcome="answered", rtt_ns=1_234_567, rcode="NOERROR",
                          answers=(Answer("x.", 1, "A", "198.18.0.1"),), answer_count=1))
    sink.add(DnsQuery(seq=3, server="[2001:db8::53]:5353", name="www.a-rather-long-name.example.org", qtype="A",
                      transport="udp", outcome="timeout", error="no answer within the timeout"))
    console = Console(width=80, record=True, color_system=None, file=io.StringIO())
    console.print(sink.live_table(78))  # a LiveScreen leaves two columns for the echo of ^C
    text = console.export_text()
    check_golden("dns_live_80", text)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "[2001:db8::53]:5353" in text and "timeout" in text
