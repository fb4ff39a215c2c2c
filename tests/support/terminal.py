"""A pseudo-terminal of a given size for a `molehill` process, and a tiny screen that applies
the few escape sequences the status block uses, to check what a user would see."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import re
import struct
import termios

_SEQUENCE = re.compile(r"\x1b\[(\??)(\d*)([A-Za-z])")


class Terminal:
    """The master end of a pty sized ``width`` x ``height``; ``slave`` is the process's stdout."""

    def __init__(self, width: int, height: int) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        os.set_blocking(self.master, False)
        self.width, self.height = width, height
        self.raw = ""
        self.screen = Screen()

    def read(self) -> None:
        """Take what the process wrote so far (without waiting)."""
        while True:
            try:
                data = os.read(self.master, 65536)
            except (BlockingIOError, OSError):  # EIO: the process closed its end
                return
            if not data:
                return
            text = data.decode("utf-8", "replace")
            self.raw += text
            self.screen.feed(text)

    async def wait_for(self, predicate, timeout: float = 10.0) -> list[str]:
        """Read until the screen's lines satisfy ``predicate``; return them."""
        async with asyncio.timeout(timeout):
            while True:
                self.read()
                if predicate(self.screen.lines):
                    return self.screen.lines
                await asyncio.sleep(0.05)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class Screen:
    """Lines and a cursor; a pty turns "\\n" into "\\r\\n" on output."""

    def __init__(self) -> None:
        self.lines: list[str] = [""]
        self.row = 0
        self.col = 0
        self.cursor_visible = True

    def feed(self, text: str) -> None:
        pos = 0
        while pos < len(text):
            found = _SEQUENCE.match(text, pos)
            if found:
                self._escape(found.group(1), found.group(2), found.group(3))
                pos = found.end()
                continue
            char = text[pos]
            pos += 1
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self.row += 1
                while len(self.lines) <= self.row:
                    self.lines.append("")
            else:
                line = self.lines[self.row].ljust(self.col)
                self.lines[self.row] = line[: self.col] + char + line[self.col + 1 :]
                self.col += 1

    def _escape(self, private: str, number: str, command: str) -> None:
        n = int(number or 0)
        if private:
            if n == 25:
                self.cursor_visible = command == "h"
        elif command == "K":  # 2K: the whole line
            self.lines[self.row] = ""
        elif command == "F":
            self.row = max(0, self.row - (n or 1))
            self.col = 0
        elif command == "J" and n == 0:  # below the cursor
            self.lines[self.row] = self.lines[self.row][: self.col]
            del self.lines[self.row + 1 :]
        elif command == "J" and n == 2:
            self.lines = [""]
            self.row = self.col = 0
        elif command == "H":
            self.row = self.col = 0
