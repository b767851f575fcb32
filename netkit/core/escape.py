"""Make bytes from the network safe to show a person.

A peer controls what it sends: terminal escape sequences (ESC, CSI), other control characters,
invalid UTF-8 and Rich markup. ``safe_text`` turns all of these into visible, inert text. The
result must still be rendered with markup disabled (a ``rich.text.Text`` or ``markup=False``):
escaping control characters does not neutralise ``[bold]``.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode bidi/format controls that can reorder a line.
_UNSAFE_KEEP_NEWLINES = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_UNSAFE_ALL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _escape_char(m: re.Match[str]) -> str:
    ch = m.group(0)
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def safe_text(data: bytes | str, *, limit: int | None = None, keep_newlines: bool = False) -> str:
    """Decode ``data`` (invalid UTF-8 shown as ``\\xNN``) and escape every control character.

    ``limit`` truncates to that many characters of the escaped result and marks the cut with an
    ellipsis. With ``keep_newlines`` the newline and tab survive (for multi-line previews).
    """
    text = data.decode("utf-8", errors="backslashreplace") if isinstance(data, bytes) else data
    pattern = _UNSAFE_KEEP_NEWLINES if keep_newlines else _UNSAFE_ALL
    text = pattern.sub(_escape_char, text)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def is_safe(text: str) -> bool:
    """True when ``text`` has no control character a terminal would act on."""
    return _UNSAFE_ALL.search(text) is None
