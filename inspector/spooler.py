"""The capture spooler: reads the agent's pipe into memory at once, feeds the idle-priority store.

Started by :class:`inspector.writer.CaptureWriter` as ``python -I -S inspector/spooler.py
SETTINGS_JSON`` (it imports only the standard library: it starts in milliseconds). It starts the
store process (:mod:`inspector.capture_process`, which runs at ``SCHED_IDLE``: only on CPU nobody
else wants) and passes it the agent's answer pipe (this process's stdout) and stderr as they are,
so answers go straight back to the agent.

Its own work is the least there is: bytes in from the agent, bytes out to the store, in the
order they came, never parsed. It runs at normal priority, so the agent's writes never wait for a
store that is starved of CPU; what the store has not taken yet waits here, in memory only (raw
exchanges never touch the disk before redaction). The buffer is bounded (:func:`spool_limit`):
the agent already bounds what it has submitted and not yet seen stored (``queue_size``,
``queue_bytes``, drops counted), and everything here is part of that, so the limit is a safety
net: at it, the spooler stops reading and the agent's own bounds take over.

It ends when the agent's pipe ends (after handing over everything read), or when the store
process ends, with the store's exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from collections import deque

# Bytes per read. Not more: os.read allocates the whole size first, and a 1 MiB buffer (mapped,
# resized, unmapped) made each read cost 50 us more than the bytes it carried (agents' writes are
# tens of KiB every 10 ms; a large body takes a few more rounds).
READ_SIZE = 64 * 1024
PIPE_SIZE = 1024 * 1024  # the store's pipe: fewer wake-ups when it does run
FRAME_OVERHEAD = 512  # a record's fixed part and names, beyond the heads and bodies counted


def spool_limit(settings_text: str) -> int:
    """Bytes held for the store at most: all the agent may have in flight, framed, plus a read.

    Reads only the two bounds from the settings (the store process reads the rest)."""
    data = json.loads(settings_text)
    queue_bytes, queue_size = data["queue_bytes"], data["queue_size"]
    if not all(type(n) is int and n >= 1 for n in (queue_bytes, queue_size)):
        raise ValueError("queue_bytes and queue_size must be whole numbers, at least 1")
    return int(queue_bytes) + int(queue_size) * FRAME_OVERHEAD + READ_SIZE


def start_store(argv: list[str]) -> subprocess.Popen[bytes]:
    """The store process, with this process's stdout (the agent's answers) and stderr."""
    return subprocess.Popen(
        # -P: not the working directory first on the module path, where a user's own
        # inspector.py would be imported instead of this package.
        [sys.executable, "-P", "-m", "inspector.capture_process", *argv[1:]],
        stdin=subprocess.PIPE,
        close_fds=True,
    )


def pump(source: int, sink: int, limit: int, store: subprocess.Popen[bytes]) -> None:
    """Moves bytes from ``source`` to ``sink`` until ``source`` ends and all is written, or the
    store goes away. Never holds more than ``limit`` bytes (it stops reading instead).

    What is read is offered to the sink at once (the store's pipe usually has room): a round
    is one poll, one read, one write; the sink is polled only while it is full."""
    os.set_blocking(sink, False)
    held: deque[memoryview] = deque()
    size = 0
    ended = False
    poller = select.poll()
    masks = {source: -1, sink: -1}
    while True:
        if held:
            try:
                while held:
                    first = held[0]
                    written = os.write(sink, first)
                    size -= written
                    if written < len(first):
                        held[0] = first[written:]
                        break
                    held.popleft()
            except BlockingIOError:
                pass  # full: wait for POLLOUT
            except OSError:
                return  # the store is gone: its exit code says why
        if ended and not held:
            return
        want_in = not ended and size < limit
        # POLLERR on the sink (the store closed its end) is reported whether asked for or not.
        for fd, mask in (
            (source, select.POLLIN if want_in else 0),
            (sink, select.POLLOUT if held else 0),
        ):
            if masks[fd] != mask:
                poller.register(fd, mask)
                masks[fd] = mask
        events = dict(poller.poll(1000))
        if not events and store.poll() is not None:
            return  # the store ended without closing its stdin first (killed): nothing to feed
        if events.get(sink, 0) & select.POLLERR:
            return
        if want_in and events.get(source, 0) & (select.POLLIN | select.POLLHUP):
            try:
                data = os.read(source, READ_SIZE)
            except OSError:
                data = b""
            if data:
                held.append(memoryview(data))
                size += len(data)
            else:
                ended = True


def main(argv: list[str]) -> int:
    # The agent's terminal's Ctrl-C reaches this process too: it ends when its stdin ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(argv) != 2:
        print("usage: python inspector/spooler.py SETTINGS_JSON", file=sys.stderr)
        return 2
    try:
        limit = spool_limit(argv[1])
    except (ValueError, KeyError, TypeError) as exc:
        print(f"molehill capture spooler: unreadable settings: {exc}", file=sys.stderr)
        return 2
    try:
        store = start_store(argv)
    except OSError as exc:
        print(f"molehill capture spooler: cannot start the store process: {exc}", file=sys.stderr)
        return 1
    # Only the store writes answers: when it ends, the agent sees its pipe end.
    os.dup2(2, 1)
    assert store.stdin is not None
    sink = store.stdin.fileno()
    if sys.platform == "linux":
        import fcntl

        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(sink, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    pump(0, sink, limit, store)
    with contextlib.suppress(OSError):
        store.stdin.close()  # EOF: the store writes what it has and exits
    code = store.wait()
    if code < 0:  # killed: said on stderr, where the agent's error quotes it from
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        print(f"molehill capture spooler: the store process was killed ({name})", file=sys.stderr)
        return 128 - code
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
