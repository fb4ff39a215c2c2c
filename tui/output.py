"""stdout that never blocks the event loop: a bounded line buffer that drops and counts lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import stat
import sys
import time
from collections.abc import Callable

# What a reader that stops reading may hold back before lines are dropped: a few thousand request
# lines, seconds of heavy traffic, so a pager or a grep that pauses loses nothing; a reader gone
# for good costs the agent no more memory than this.
BUFFER_LIMIT = 1024 * 1024
RETRY_EVERY = 0.05  # seconds between attempts on an fd the event loop cannot watch
CLOSE_WAIT = 1.0  # seconds a slow reader gets at exit for what is still buffered


class LineWriter:
    """Writes lines to ``fd`` without ever blocking.

    Lines wait in a buffer of at most ``limit`` bytes while the reader is behind; when it is full,
    new lines are dropped and counted until the reader has taken everything, and then one line
    says how many were lost, where they were lost. If the fd cannot be written any more (EPIPE:
    the reader has gone), the writer turns itself off and calls ``on_closed`` once.
    """

    def __init__(
        self,
        fd: int,
        as_json: bool,
        on_closed: Callable[[OSError], None] | None = None,
        limit: int = BUFFER_LIMIT,
        owns_fd: bool = False,
    ) -> None:
        self.fd = fd
        self.as_json = as_json
        self.on_closed = on_closed
        self.limit = limit
        self.owns_fd = owns_fd
        self.dropped = 0  # lines lost since the last notice
        self.closed = False
        self._buf = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None  # set while waiting for the fd
        self._watching = False  # add_writer is waiting
        self._timer: asyncio.TimerHandle | None = None  # or a timer, where add_writer cannot
        self._was_blocking = os.get_blocking(fd)
        os.set_blocking(fd, False)

    @property
    def pending(self) -> int:
        """Bytes accepted but not yet taken by the reader."""
        return len(self._buf)

    def write(self, text: str) -> None:
        """Queue ``text`` (whole lines) and write what the fd takes now."""
        if self.closed:
            return
        data = text.encode("utf-8", "backslashreplace")
        if not self.dropped and len(self._buf) + len(data) <= self.limit:
            self._buf += data
        else:
            for line in text.splitlines(keepends=True):
                raw = line.encode("utf-8", "backslashreplace")
                # Once a line is lost, all are until the reader has caught up, so the gap is one
                # place in the output with one notice, not a notice between every other line.
                if not self.dropped and len(self._buf) + len(raw) <= self.limit:
                    self._buf += raw
                else:
                    self.dropped += 1
        self.flush()

    def flush(self) -> None:
        """Write what the fd takes without blocking; if it takes less, wait for it in the loop."""
        if self.closed or self._loop is not None:
            return  # the fd is being waited for: _writable will write
        if not self._write_some():
            self._wait()

    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Write what is left, giving a slow reader at most ``timeout``, then let go of the fd."""
        if self.closed:
            return
        self._stop_waiting()
        deadline = time.monotonic() + timeout
        while not self._write_some():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                select.select([], [self.fd], [], left)
            except (OSError, ValueError):
                break
        self._release()  # no-op if the reader went away meanwhile (_gone released the fd)

    def _notice(self) -> bytes:
        if self.as_json:
            text = json.dumps(
                {"event": "output_dropped", "lines": self.dropped}, separators=(",", ":")
            )
        else:
            text = f"molehill: {self.dropped} output lines dropped: stdout was not being read"
        return (text + "\n").encode()

    def _write_some(self) -> bool:
        """Write until nothing is left (True) or the fd would block (False)."""
        while not self.closed:
            if not self._buf:
                if not self.dropped:
                    return True
                self._buf += self._notice()
                self.dropped = 0
            try:
                written = os.write(self.fd, self._buf)
            except BlockingIOError:
                return False
            except OSError as exc:  # EPIPE mostly; EIO on a hung-up terminal, ENOSPC
                self._gone(exc)
                return True
            del self._buf[:written]
        return True

    def _wait(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to wait in: the next write, flush or close tries again
        self._loop = loop
        try:
            loop.add_writer(self.fd, self._writable)
            self._watching = True
        except (OSError, ValueError, NotImplementedError):
            # epoll refuses some fds (regular files never get here: they do not block)
            self._timer = loop.call_later(RETRY_EVERY, self._writable)

    def _writable(self) -> None:
        self._stop_waiting()
        self.flush()

    def _stop_waiting(self) -> None:
        if self._watching and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_writer(self.fd)
        if self._timer is not None:
            self._timer.cancel()
        self._watching = False
        self._timer = None
        self._loop = None

    def _gone(self, exc: OSError) -> None:
        self._buf.clear()
        self.dropped = 0
        self._stop_waiting()
        self._release()
        if self.on_closed is not None:
            self.on_closed(exc)

    def _release(self) -> None:
        # Once only: closing the fd number twice could close whatever has reused it.
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            if self.owns_fd:
                os.close(self.fd)
            elif self._was_blocking:
                os.set_blocking(self.fd, True)


def stdout_writer(as_json: bool, on_closed: Callable[[OSError], None] | None = None) -> LineWriter:
    """A LineWriter on this process's stdout, whether a terminal, a pipe or a file.

    O_NONBLOCK belongs to the open file, which the fd shares with the shell and often with stderr
    (a terminal, 2>&1): set on it, their writes could fail with EAGAIN. Opening /proc/self/fd/1
    makes a new open file on the same pipe or terminal (Linux); elsewhere, or for a socket, the
    shared one is made non-blocking for the agent's lifetime and restored on close. A regular
    file is written through fd 1 itself, so its offset and O_APPEND stay as the shell set them.
    """
    if sys.stdout is None:  # started with stdout closed (>&-): Python gave it no stream
        return LineWriter(os.open(os.devnull, os.O_WRONLY), as_json, on_closed, owns_fd=True)
    sys.stdout.flush()  # what print() wrote earlier comes first
    fd = sys.stdout.fileno()
    private = None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        with contextlib.suppress(OSError):
            flags = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            private = os.open(f"/proc/self/fd/{fd}", flags)

    def closed(exc: OSError) -> None:
        # stdout is gone for good: a later print() or the interpreter's last flush must not
        # fail with EPIPE ("Exception ignored ... BrokenPipeError").
        quiet_stdout()
        if on_closed is not None:
            on_closed(exc)

    if private is not None:
        return LineWriter(private, as_json, closed, owns_fd=True)
    return LineWriter(fd, as_json, closed)


def quiet_stdout() -> None:
    """Point fd 1 at /dev/null: its reader has gone, and nothing written there matters now."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
