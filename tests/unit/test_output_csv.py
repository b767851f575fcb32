"""CSV spells values as JSON does: a script that reads either format compares against the same words."""

from __future__ import annotations

import csv
import enum
import io
import json
from dataclasses import dataclass

from netkit.render.output import Output


class State(str, enum.Enum):
    OPEN = "open"


@dataclass
class Row:
    target: str
    up: bool
    tls: bool
    rtt_ms: float | None
    state: State
    flags: list[bool]


ROWS = [Row("127.0.0.1:22", True, False, 0.25, State.OPEN, [True, False]),
        Row("127.0.0.1:23", False, True, None, State.OPEN, [])]


def _run(fmt: str) -> str:
    buf = io.StringIO()
    out = Output(format=fmt, stdout=buf, stderr=io.StringIO())
    if fmt == "csv":
        out.csv_rows(ROWS)
    else:
        for row in ROWS:
            out.jsonl(row)
    return buf.getvalue()


def test_csv_booleans_are_true_and_false_as_in_json() -> None:
    text = _run("csv")
    assert "True" not in text and "False" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["up"], r["tls"]) for r in rows] == [("true", "false"), ("false", "true")]
    assert rows[0]["flags"] == "true;false" and rows[1]["flags"] == ""


def test_csv_and_jsonl_carry_the_same_words() -> None:
    csv_rows = list(csv.DictReader(io.StringIO(_run("csv"))))
    json_rows = [json.loads(line) for line in _run("jsonl").splitlines()]
    for c, j in zip(csv_rows, json_rows, strict=True):
        assert c["up"] == json.dumps(j["up"]) and c["tls"] == json.dumps(j["tls"])
        assert c["state"] == j["state"] == "open"  # an enum's value, not State.OPEN
        assert c["rtt_ms"] == ("" if j["rtt_ms"] is None else str(j["rtt_ms"]))  # null is an empty cell
