"""Text a submission controls, made safe to show: on a terminal, in a page, in a JSON or LMS file.

A submission chooses what it prints and what its exceptions say, and both reach the student's screen (the
human table), a page (--html), the report and the LMS's files. Raw, an escape sequence moves the cursor
and redraws the table ("Score: 15/15"), a bidirectional override reorders what is read, and a lone
surrogate ('\\ud800') cannot be encoded at all and crashes whatever writes it. Here every control
character but newline and tab goes (ESC and the C1 controls included; a lone CR becomes a newline), the
bidirectional controls go, and lone surrogates and other non-characters become U+FFFD.

A name (a file or folder name, a student id) is shown on one line: `name()` writes what `text()` would
drop, and a newline, as an escape (`\\n`, `\\x1b`, `\\u202e`), and a byte that is not UTF-8 (what unzip
makes of a Windows zip's `jos\\xe9`, which Python reads as a lone surrogate) as `\\xe9`.

CSV cells (spreadsheet formulas) are another concern, kept apart from these.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
# C0 controls but \t and \n, DEL, the C1 controls; then the bidirectional embeddings, overrides and isolates.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_INVALID = re.compile("[\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")


def text(value: Any) -> str:
    """`value` as a str that is safe on a terminal and in a page: see the module's docstring."""
    if not isinstance(value, str):
        value = str(value)
    if value.isascii() and value.isprintable():
        return value  # the common case, untouched
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _CONTROLS.sub("", value)
    return _INVALID.sub(REPLACEMENT, value)


def name(value: str | bytes) -> str:
    """A file name or an id as one printable line: see the module's docstring. For showing a name; two names
    may show alike (grader/classroom/layouts.py's `safe_key` tells them apart)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    elif not isinstance(value, str):
        value = str(value)
    if value.isprintable():
        return value  # every control, bidi control, surrogate and non-character is unprintable
    return "".join(c if c.isprintable() else _escape(c) for c in value)


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by the surrogateescape decoding
        return f"\\x{code - 0xDC00:02x}"
    escaped = char.encode("unicode_escape", "backslashreplace").decode("ascii")
    return escaped if escaped != char else f"\\u{code:04x}"


def deep(value: Any) -> Any:
    """Every str inside `value` (dicts, lists, tuples; keys too) through text(); other values as they are."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {text(k) if isinstance(k, str) else k: deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [deep(v) for v in value]
    return value
