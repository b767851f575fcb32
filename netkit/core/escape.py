"""Make bytes from the network safe to show a person.

A peer controls what it sends: terminal escape sequences (ESC, CSI), other control characters,
invalid UTF-8 and Rich markup. ``safe_text`` turns all of these into visible, inert text. The
result must still be rendered with markup disabled (a ``rich.text.Text`` or ``markup=False``):
escaping control characters does not neutralise ``[bold]``.
"""

from __future__ import annotations

import re

# One rule for every format (tables, plain lines, CSV, JSON, jsonl): beyond the C0 and C1 controls
# and DEL, the Unicode characters that move or hide text when shown. A peer's bytes containing one
# can otherwise start a new line inside a CSV cell or a log line (U+2028, U+2029), or reorder what
# follows on the line (the bidi controls). As a regular-expression class body:
#   U+061C          arabic letter mark (a bidi mark)
#   U+200B-U+200F   zero-width space/non-joiner/joiner, left-to-right and right-to-left marks
#   U+2028, U+2029  line and paragraph separators
#   U+202A-U+202E   bidi embeddings and overrides (U+202E: right-to-left override)
#   U+2066-U+2069   bidi isolates
#   U+FEFF          zero-width no-break space (byte order mark)
UNICODE_FORMAT_CONTROLS = "\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
#: DEL, the C1 controls (U+0085 is a line break, U+009B a one-character CSI) and the above: what a
#: JSON string may hold raw yet must not reach a terminal raw (render.output escapes them as \uXXXX).
UNSAFE_NON_C0 = "\x7f-\x9f" + UNICODE_FORMAT_CONTROLS

_UNSAFE_KEEP_NEWLINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f{UNSAFE_NON_C0}]")
_UNSAFE_ALL = re.compile(f"[\\x00-\\x1f{UNSAFE_NON_C0}]")


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
            # Quoted as typed: repr() would double every backslash and show \\xZZ for \xZZ.
            raise InputError(f"unknown escape \\{safe_text(nxt)} in '{shown}' (use {ESCAPES_HELP})")
    return bytes(out)
