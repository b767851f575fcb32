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


# ----- the other way: bytes typed as text on a command line ------------------------------------

_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\x00", "\\": b"\\", "e": b"\x1b"}
ESCAPES_HELP = r"\n \r \t \0 \\ \e \xHH"


def unescape(text: str) -> bytes:
    r"""Bytes typed as text (``'PING\r\n'``) to bytes: ``\n \r \t \0 \\ \e \xHH``; the rest as typed.

    Every option that takes bytes reads them by this one rule. Text is UTF-8; bytes that were not
    UTF-8 on the command line (``$'\xff\xfe'``, which Python keeps as lone surrogates) come out as
    they were typed. Any other backslash escape is an error; a trailing backslash is itself.
    """
    from netkit.core.errors import InputError

    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in _ESCAPES:
            out += _ESCAPES[nxt]
            i += 2
        elif nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            shown = safe_text(text, limit=60)
            raise InputError(f"unknown escape \\{safe_text(nxt)} in {shown!r} (use {ESCAPES_HELP})")
    return bytes(out)
