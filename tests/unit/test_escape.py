from netkit.core.escape import is_safe, safe_text


def test_escapes_terminal_controls() -> None:
    hostile = b"\x1b[31mred\x1b[0m\x07\r\n[bold]x[/bold] \xff"
    text = safe_text(hostile)
    assert is_safe(text)
    assert "\\x1b[31m" in text and "\\xff" in text and "[bold]x[/bold]" in text


def test_limit() -> None:
    assert safe_text("abcdef", limit=4) == "abc…"
