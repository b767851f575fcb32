#!/usr/bin/env python3
"""Side-by-side benchmarks: netkit and the reference tool in one run, with the ratio.

Usage: ``python bench/run.py [--list] [NAME ...]`` where NAME matches a case name or a module
(``echo``, ``startup``, ...). Each ``bench/bench_<name>.py`` defines ``CASES``: a list of
callables that take no argument and return a list of ``Row``. A case whose reference tool is
missing returns a row with ``reference=None`` and a note saying so.

All traffic goes to loopback or to namespaces the case creates itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import Row, print_rows  # noqa: E402


def load_modules() -> list:
    mods = []
    for path in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="case or module names (default: all)")
    ap.add_argument("--list", action="store_true", help="list cases and exit")
    args = ap.parse_args()
    rows: list[Row] = []
    for mod in load_modules():
        short = mod.__name__.removeprefix("bench_")
        for case in mod.CASES:
            if args.list:
                print(f"{short}: {case.__name__}")
                continue
            if args.names and short not in args.names and case.__name__ not in args.names:
                continue
            print(f"# running {short}.{case.__name__}", file=sys.stderr, flush=True)
            try:
                rows.extend(case())
            except Exception as exc:  # one broken case must not hide the others
                traceback.print_exc()
                rows.append(Row(case.__name__, None, None, "", note=f"error: {exc}"))
    if not args.list:
        print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
