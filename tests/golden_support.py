"""Golden-text helpers for every command's ``--format table`` screens.

A renderer's table goes through a real :class:`netkit.render.output.Output` twice: once to a fake
terminal 80 (or 70) columns wide with colour off, once to a plain StringIO (a pipe). The text is
compared with ``tests/golden/NAME.txt``; ``NETKIT_UPDATE_GOLDEN=1`` rewrites the files.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from netkit.render.output import Output

GOLDEN = Path(__file__).parent / "golden"
# Read at import: the autouse fixture in conftest.py clears NETKIT_* variables before each test.
UPDATE = os.environ.get("NETKIT_UPDATE_GOLDEN") == "1"
BOX = set("─━│┃┌┐└┘├┤┬┴┼╭╮╯╰═║╔╗╚╝╠╣╦╩╬╇╈╉╊╋")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def terminal_output(monkeypatch: pytest.MonkeyPatch, columns: int) -> tuple[Output, io.StringIO, io.StringIO]:
    """An Output whose stdout and stderr are terminals ``columns`` wide, without colour."""
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("LINES", "40")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    stdout, stderr = FakeTerminal(), FakeTerminal()
    out = Output(format="table", color=False, stdout=stdout, stderr=stderr)
    assert out.width == columns
    return out, stdout, stderr


def piped_output() -> tuple[Output, io.StringIO]:
    stdout = io.StringIO()
    return Output(format="table", stdout=stdout, stderr=io.StringIO()), stdout


def check_golden(name: str, text: str) -> None:
    """``text`` equals ``tests/golden/NAME`` (``.txt`` added when NAME has none); a missing file
    fails unless ``NETKIT_UPDATE_GOLDEN=1`` writes it."""
    path = GOLDEN / (name if name.endswith(".txt") else f"{name}.txt")
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with NETKIT_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{path} differs (NETKIT_UPDATE_GOLDEN=1 rewrites it)"


def assert_terminal_text(text: str, columns: int) -> None:
    assert text.strip(), "nothing was printed"
    for line in text.splitlines():
        assert len(line) <= columns, f"line longer than {columns}: {line!r}"
    assert "…" not in text


def assert_piped_text(text: str) -> None:
    assert text.strip(), "nothing was printed"
    assert not text.startswith("\n"), "blank first line"
    assert "…" not in text
    assert not BOX & set(text), "box characters off a terminal"
    for line in text.splitlines():
        assert line == line.rstrip(), f"trailing spaces: {line!r}"


def golden_terminal(monkeypatch: pytest.MonkeyPatch, name: str, draw: Callable[[Output], None],
                    columns: int = 80) -> str:
    """Draw through ``draw(out)`` on a terminal ``columns`` wide; check it against ``NAME_COLUMNS.txt``."""
    out, stdout, _ = terminal_output(monkeypatch, columns)
    draw(out)
    tty = stdout.getvalue()
    assert_terminal_text(tty, columns)
    check_golden(f"{name}_{columns}", tty)
    return tty


def golden_pair(monkeypatch: pytest.MonkeyPatch, name: str, draw: Callable[[Output], None],
                columns: int = 80) -> tuple[str, str]:
    """Draw through ``draw(out)`` on a terminal and piped; check both against their golden files."""
    tty = golden_terminal(monkeypatch, name, draw, columns)
    out, piped = piped_output()
    draw(out)
    text = piped.getvalue()
    assert_piped_text(text)
    check_golden(f"{name}_piped", text)
    return tty, text
