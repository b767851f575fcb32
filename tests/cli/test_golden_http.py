"""``measure http --format table`` as people see it: golden text at 80 columns on a terminal and
piped, from hand-made results through the real renderer (netkit.render.http).

``NETKIT_UPDATE_GOLDEN=1 pytest tests/cli/test_golden_http.py`` rewrites the golden files.
"""

from __future__ import annotations

import io

import pytest
from golden_support import BOX, FakeTerminal, check_golden

from netkit.core.http_result import HttpResult, HttpSample, HttpUrlResult
from netkit.render.http import render_http
from netkit.render.output import Output

MS = 1_000_000


@pytest.fixture(autouse=True)
def _eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "40")
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def _result(failed: bool) -> HttpResult:
    r = HttpUrlResult("https://www.example.com:8443/api/v1/health?verbose=1", elapsed_ns=2_000_000_000)
    for i in range(20):
        new = i == 0
        ph = (int(12.5 * MS) if new else 0, int(0.8 * MS) if new else 0, int(24.2 * MS) if new else 0,
              int(0.05 * MS), (201 + i % 5) * MS, int(0.4 * MS), 0)
        ph = (*ph[:6], sum(ph[:6]))
        r.add(HttpSample(i + 1, r.url, 0, status=200 if i < 19 else 503, bytes=12_345, http_version="2",
                         tls_version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384", cert_days_left=42.25,
                         new_connection=new, phases_ns=ph))
    r.add(HttpSample(21, r.url, 0, error_kind="timeout", error="no complete response within 10 s"))
    fails = [f"{r.url}: expect-status 2xx: got 503 x1"] if failed else []
    return HttpResult([r], failed=fails, checks_given=failed)


def _render(failed: bool, terminal: bool) -> str:
    stdout = FakeTerminal() if terminal else io.StringIO()
    out = Output(format="table", color=False, stdout=stdout, stderr=io.StringIO())
    render_http(out, _result(failed))
    return stdout.getvalue()


@pytest.mark.parametrize("terminal", [True, False], ids=["tty80", "piped"])
@pytest.mark.parametrize("failed", [False, True], ids=["plain", "checks"])
def test_golden(failed: bool, terminal: bool) -> None:
    text = _render(failed, terminal)
    check_golden(f"http_{'checks' if failed else 'plain'}_{'tty80' if terminal else 'piped'}", text)
    lines = text.splitlines()
    assert "…" not in text
    assert lines and lines[0].strip()
    assert "https://www.example.com:8443/api/v1/health?verbose=1" in text
    for figure in ("203 ms", "24.2 ms", "12.5 ms", "TLSv1.3", "42.2 days", "timeout 1", "status 200 x19, 503 x1"):
        assert figure in text, figure
    if terminal:
        assert max(len(line) for line in lines) <= 80
    else:
        assert not BOX & set(text)
        assert all(line == line.rstrip() for line in lines)
