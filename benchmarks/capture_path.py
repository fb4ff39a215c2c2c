"""Instructions of the agent's capture path alone, per exchange: observer, submit, sender, answers.

``python benchmarks/capture_path.py --cachegrind [--count N]`` feeds N keep-alive exchanges (the
benchmark's ``GET /`` and its local app's answer, as bytes) through an :class:`ExchangeObserver`
and ``molehill http``'s event handler (``tui.headless``) into a real ``CaptureWriter``, waits
until all are stored, and does the same with captures off (no writer, no body kept). Under
``--cachegrind`` it runs itself four times (on and off, each with N and with 0 exchanges) and
prints (on(N) - on(0) - off(N) + off(0)) / N: what capturing adds per exchange in this process,
its sender and answer threads included (the spooler and the store are other processes, not
traced). Minutes faster than ``instructions.py``, which measures the whole tunnel; the two agree
on the capture path's part within a few hundred instructions. Standalone, not in ``run.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Not this folder (its inspector.py would shadow the package).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE.parent)]

WARMUP = 300
REQUEST = b"GET / HTTP/1.1\r\nHost: bench.localhost:40000\r\nX-Forwarded-For: 127.0.0.1\r\n"
REQUEST += b"X-Forwarded-Proto: http\r\nX-Forwarded-Host: bench.localhost:40000\r\n\r\n"
BODY = b"molehill benchmark local app. " * 8 + b"ok\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY)
RESPONSE += BODY


class _Agent:
    """What ``_remembering`` reads of an agent: its name and its real settings (an instance, as
    an agent holds them; a class standing in for them was dearer to read than the real ones)."""

    def __init__(self) -> None:
        from relay.agent.settings import AgentSettings

        self.name = "bench"
        self.settings = AgentSettings(local_port=3000, relay="ws://127.0.0.1:1")


def run(count: int, capture: bool) -> None:
    from relay.agent.observe import ExchangeObserver
    from tui.captures import close_capture_writer, open_capture_writer
    from tui.headless import _remembering

    captures = open_capture_writer(capture)
    if capture and captures is None:
        sys.exit("no capture writer")
    handler = _remembering(lambda event: None, None, _Agent(), None, captures)  # type: ignore[arg-type]
    cap = captures.settings.body_cap if captures is not None else 0
    messages = captures.settings.messages_per_connection if captures is not None else 0
    observers = [
        ExchangeObserver("127.0.0.1", i * 2 + 1, handler, cap, "127.0.0.1:3000", messages)
        for i in range(32)
    ]
    for i in range(WARMUP + count):
        observer = observers[i % 32]
        observer.request_bytes(REQUEST)
        observer.response_bytes(RESPONSE)
        if i == WARMUP - 1 and captures is not None:
            captures.flush()
    if captures is not None:
        if not captures.flush(60):
            sys.exit("not stored in time")
        close_capture_writer(captures)


def cachegrind(count: int) -> None:
    counts: dict[tuple[bool, int], int] = {}
    with tempfile.TemporaryDirectory(prefix="molehill-path-") as tmp:
        env = dict(os.environ, MOLEHILL_CAPTURE_FILE=f"{tmp}/c.sqlite3", PYTHONHASHSEED="0")
        for capture in (True, False):
            for n in (count, 0):
                command = ["valgrind", "--tool=cachegrind", f"--cachegrind-out-file={tmp}/cg"]
                command += ["--cache-sim=no", sys.executable, __file__, "--count", str(n)]
                if not capture:
                    command.append("--no-capture")
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
                if done.returncode != 0 or found is None:
                    sys.exit(f"cachegrind run failed:\n{done.stderr[-3000:]}")
                counts[(capture, n)] = int(found[1].replace(",", ""))
    on = counts[(True, count)] - counts[(True, 0)]
    off = counts[(False, count)] - counts[(False, 0)]
    print(
        f"capture path: {(on - off) / count:,.0f} instructions per exchange "
        f"(on {on / count:,.0f}, off {off / count:,.0f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="exchanges (5000)")
    parser.add_argument("--no-capture", action="store_true")
    parser.add_argument("--cachegrind", action="store_true", help="count instructions (4 runs)")
    args = parser.parse_args()
    if args.cachegrind:
        cachegrind(args.count)
    else:
        run(args.count, not args.no_capture)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
