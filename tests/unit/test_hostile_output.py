"""The machine formats are terminal-safe too: JSON and CSV carry no raw control character.

``json.dumps(..., ensure_ascii=False)`` escapes C0 controls but passes C1 controls (U+009B is a
one-character CSI), bidi overrides and line separators raw; CSV writes cells as they are. People
do print JSON and CSV to terminals, so ``netkit.render.output`` escapes those characters.
"""

from __future__ import annotations

import csv
import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from netkit.core.escape import is_safe
from netkit.render.output import Output, dumps

NASTY = "a\x1b[2J\u009b31m\u202eevil\u2028line\x07\x00 é [bold]x[/bold]"


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if not is_safe(c) and c not in "\n"]


def test_json_escapes_c1_bidi_and_separators_but_keeps_the_value() -> None:
    doc = {"reply": NASTY, "nested": [{"name": NASTY}]}
    for indent in (None, 2):
        text = dumps(doc, indent=indent)
        assert _raw_controls(text) == [], text
        assert json.loads(text) == doc  # the same data, only spelled with \\u escapes
        assert "é" in text  # ordinary non-ASCII stays readable


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.text(max_size=20) | st.integers() | st.none(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=10))
def test_json_of_anything_is_terminal_safe_and_round_trips(value: object) -> None:
    text = dumps(value)
    assert _raw_controls(text) == []
    assert json.loads(text) == value


def test_csv_cells_are_escaped() -> None:
    out, err = io.StringIO(), io.StringIO()
    o = Output(format="csv", stdout=out, stderr=err)
    o.csv_rows([{"target": "x:1", "error": NASTY, "n": 3, "missing": None}])
    text = out.getvalue()
    assert _raw_controls(text) == [], text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["n"] == "3" and rows[0]["missing"] == "" and "\\x1b[2J" in rows[0]["error"]
