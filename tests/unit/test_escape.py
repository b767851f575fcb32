import csv
import io
import json

import pytest

from netkit.core.escape import is_safe, safe_text
from netkit.render.output import dumps, make_test_output


def test_escapes_terminal_controls() -> None:
    hostile = b"\x1b[31mred\x1b[0m\x07\r\n[bold]x[/bold] \xff"
    text = safe_text(hostile)
    assert is_safe(text)
    assert "\\x1b[31m" in text and "\\xff" in text and "[bold]x[/bold]" in text


def test_limit() -> None:
    assert safe_text("abcdef", limit=4) == "abc…"


# One rule for every format: line/paragraph separators and bidi controls never pass raw.
MOVERS = ["\u2028", "\u2029", "\u0085", "\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d",
          "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200b", "\ufeff", "\x9b", "\x1b", "\x7f"]


@pytest.mark.parametrize("ch", MOVERS, ids=[f"U+{ord(c):04X}" for c in MOVERS])
def test_every_format_escapes_separators_and_bidi_controls(ch: str) -> None:
    hostile = f"ok{ch}evil"
    shown = safe_text(hostile)
    assert ch not in shown and is_safe(shown) and f"{ord(ch):04x}"[-2:] in shown
    assert ch not in safe_text(hostile, keep_newlines=True)
    doc = dumps({"banner": hostile})
    assert ch not in doc and json.loads(doc)["banner"] == hostile  # escaped, same meaning
    out, stdout, _ = make_test_output("csv")
    out.csv_rows([{"banner": hostile}])
    text = stdout.getvalue()
    assert ch not in text
    assert len(text.splitlines()) == 2  # header and one row: no cell starts a new line
    assert next(csv.DictReader(io.StringIO(text)))["banner"] == shown


def test_ordinary_text_stays_readable() -> None:
    text = "café 中文 עברית 🙂"
    assert safe_text(text) == text
    assert json.loads(dumps({"t": text}))["t"] == text and text in dumps({"t": text})


def test_unknown_escape_is_quoted_as_typed() -> None:
    from netkit.core.errors import InputError
    from netkit.core.escape import unescape

    with pytest.raises(InputError) as info:
        unescape("\\xZZ")
    assert "in '\\xZZ'" in str(info.value)  # one backslash, as the user typed it
