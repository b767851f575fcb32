#!/usr/bin/env python3
"""Regenerate ``docs/reliability.md``: every reliability test at full size, and what it found.

Usage: ``python bench/reliability.py [--out docs/reliability.md] [--ci-scale]``

1. Runs the reliability, fault, hostile-input and property tests (``tests/**/test_reliability_*``,
   ``test_faults_*``, ``test_hostile_*``, ``test_properties_*``) with ``RELIABILITY_SCALE=full``:
   10,000 concurrent connections instead of 1,000, 1 GiB through the echo server instead of
   64 MiB, 200 probes through 30% SYN loss instead of 30, a 10 s UDP flood instead of 1.5 s,
   1,000 header-only connections instead of 250 and 500 silent TLS connections instead of 200
   (``test_reliability_serve_budget``: each hostile-client test asserts its bound on the server's
   RSS, threads, descriptors and bytes out).
   Each test records what it held, what it injected and its result (pytest ``record_property``);
   they are read back from the JUnit XML report.
2. Runs the side-by-side cases of ``bench/bench_reliability.py`` (1 GiB SHA-256 echo and RSS with
   10,000 held connections, netkit against the C epoll echo server).
3. Writes the table. A test marked xfail is a known bug, listed with its reason.

Namespace tests need root (they are skipped otherwise, and the table says so).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from benchlib import Row  # noqa: E402

PATTERNS = ["test_reliability_*.py", "test_faults_*.py", "test_hostile_*.py", "test_properties_*.py"]


@dataclass
class Outcome:
    test: str
    file: str
    status: str  # pass, FAIL, known bug (xfail), skip
    held: str
    injected: str
    result: str
    seconds: float


def test_files() -> list[str]:
    files: list[str] = []
    for pattern in PATTERNS:
        files += sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob(pattern))
    return files


def run_tests(full: bool) -> tuple[list[Outcome], float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "report.xml"
        env = dict(os.environ)
        if full:
            env["RELIABILITY_SCALE"] = "full"
        env.pop("FORCE_COLOR", None)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
               "-o", "timeout=900", f"--junitxml={xml}", *test_files()]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - t0
        tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-300:]
        print(proc.stdout[-4000:], file=sys.stderr)
        if not xml.exists():
            raise RuntimeError(f"pytest wrote no report: {proc.stderr[-2000:]}")
        return parse_junit(xml), elapsed, tail


def parse_junit(path: Path) -> list[Outcome]:
    out = []
    for tc in ET.parse(path).iter("testcase"):
        props = {p.get("name"): p.get("value") or "" for p in tc.iter("property")}
        status, reason = "pass", ""
        for child in tc:
            if child.tag in ("failure", "error"):
                status, reason = "FAIL", (child.get("message") or "")[:200]
            elif child.tag == "skipped":
                kind = child.get("type") or ""
                msg = child.get("message") or ""
                if "xfail" in kind or "xfail" in msg:
                    status, reason = "known bug (xfail)", msg.removeprefix("expected failure: ")
                else:
                    status, reason = "skip", msg
        result = props.get("result", "")
        if reason:
            result = f"{result}; {reason}" if result else reason
        name = tc.get("name") or "?"
        module = (tc.get("classname") or "").split(".")[-1]
        held, injected = props.get("held", ""), props.get("injected", "")
        if module.startswith("test_properties_") or module == "test_hostile_output":
            # Hypothesis tests cannot take record_property (a function-scoped fixture): describe them here.
            held = held or name.removeprefix("test_").split("[")[0].replace("_", " ")
            injected = injected or "hypothesis: hundreds of random and near-valid inputs"
            if status == "pass" and not result:
                result = "every input gave a value or its documented rejection"
        out.append(Outcome(name, module, status, held, injected, result, float(tc.get("time") or 0)))
    return out


def run_bench() -> list[Row]:
    import bench_reliability

    rows: list[Row] = []
    for case in bench_reliability.CASES:
        print(f"# running {case.__name__}", file=sys.stderr, flush=True)
        try:
            rows += case()
        except Exception as exc:  # one broken case must not hide the others
            rows.append(Row(case.__name__, None, None, "", note=f"error: {exc}"))
    return rows


def md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip() or "-"


def render(outcomes: list[Outcome], rows: list[Row], elapsed: float, tail: str, full: bool) -> str:
    from benchlib import fmt

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpus = os.cpu_count()
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    lines = [
        "# netkit reliability and security figures",
        "",
        "Generated by `python bench/reliability.py` (do not edit by hand). "
        f"Run {now} on {platform.system()} {platform.release()}, {cpus} CPUs, Python "
        f"{platform.python_version()}, as {'root' if os.geteuid() == 0 else 'a normal user'}, at "
        f"{'full size (RELIABILITY_SCALE=full)' if full else 'CI size'}.",
        "",
        "The same tests run in CI at reduced sizes (1,000 connections, 64 MiB, 30 probes, a 1.5 s flood, "
        "250 header-only and 200 silent TLS connections) "
        "and must stay well under two minutes there. Everything runs on loopback or inside network "
        "namespaces the tests create; servers are real `netkit` subprocesses.",
        "",
        f"Suite: {len(outcomes)} tests in {elapsed:.0f} s: "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f" (pytest: `{tail}`).",
        "",
        "## Side by side (bench/bench_reliability.py)",
        "",
        "| case | netkit | C epoll echo | ratio | unit | note |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(f"| {md(r.case)} | {fmt(r.netkit)} | {fmt(r.reference)} | {ratio} | {r.unit} | {md(r.note)} |")
    sections = [
        ("Servers against hostile session clients (bounded budgets)", "test_reliability_serve_budget"),
        ("Servers under load and abuse", "test_reliability_serve"),
        ("UDP reflector", "test_reliability_udp"),
        ("Clients and meters under faults (network namespaces)", "test_faults_netns"),
        ("Hostile peers", "test_faults_peers"),
        ("Hostile input to the terminal and safe defaults", "test_hostile_"),
        ("Property tests (hypothesis)", "test_properties_"),
    ]
    done: set[int] = set()
    for title, prefix in sections:
        chosen = [(i, o) for i, o in enumerate(outcomes) if o.file.startswith(prefix) and i not in done]
        if not chosen:
            continue
        lines += ["", f"## {title}", "", "| test | held | injected | result | outcome |", "|---|---|---|---|---|"]
        for i, o in chosen:
            done.add(i)
            lines.append(f"| `{o.test}` | {md(o.held)} | {md(o.injected)} | {md(o.result)} | {o.status} |")
    rest = [o for i, o in enumerate(outcomes) if i not in done]
    if rest:
        lines += ["", "## Other", "", "| test | held | injected | result | outcome |", "|---|---|---|---|---|"]
        lines += [f"| `{o.test}` | {md(o.held)} | {md(o.injected)} | {md(o.result)} | {o.status} |" for o in rest]
    bugs = [o for o in outcomes if o.status.startswith("known bug") or o.status == "FAIL"]
    lines += ["", "## Open findings", ""]
    if bugs:
        lines += [f"- `{o.test}` ({o.status}): {md(o.result)}" for o in bugs]
    else:
        lines.append("None: every test passed.")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "docs" / "reliability.md"))
    ap.add_argument("--ci-scale", action="store_true", help="run the tests at CI size (quick check of the script)")
    ap.add_argument("--no-bench", action="store_true", help="skip the side-by-side cases")
    args = ap.parse_args()
    full = not args.ci_scale
    outcomes, elapsed, tail = run_tests(full)
    rows = [] if args.no_bench else run_bench()
    text = render(outcomes, rows, elapsed, tail, full)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0 if all(o.status != "FAIL" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
