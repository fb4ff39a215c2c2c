"""Others' text (a visitor's, a relay's) made safe for a terminal: control characters shown."""

from __future__ import annotations

import re

# C0 controls, DEL and the C1 controls (U+0080-U+009F). A terminal acts on them: ESC and CSI
# (U+009B) start escape sequences that can clear the screen, retitle the window or, through
# OSC 52, fill the clipboard with a command; a captured header or body is anyone's text.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
_LINE_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but newline and tab


# Printable ASCII (and, for lines, newline and tab): deleting these leaves nothing of safe text.
_KEEP = {False: bytes(range(0x20, 0x7F)), True: bytes(range(0x20, 0x7F)) + b"\n\t"}


def _escaped(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def visible(text: str, lines: bool = False) -> str:
    """``text`` with each control character written as ``\\xNN``; with ``lines``, newlines
    (CRLF as one) and tabs are kept (a body's text), otherwise they are escaped too (a header, a
    cell)."""
    if text.isascii() and not text.encode("ascii").translate(None, _KEEP[lines]):
        return text  # the usual case, checked in C at ~1 ns a character
    if lines and "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return (_LINE_CONTROLS if lines else _CONTROLS).sub(_escaped, text)


def has_controls(text: str) -> bool:
    """Whether ``text`` holds a control character other than newline, carriage return or tab."""
    return any(c not in "\r\n\t" for c in _CONTROLS.findall(text))
