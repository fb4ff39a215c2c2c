"""What the collector walks while exchanges wait for the capture store, and what that costs.

Opens a real :class:`CaptureWriter`, stops its store process (``SIGSTOP``: as at ``SCHED_IDLE``
on a saturated core, nothing is answered, the spooler still reads), submits ``--held``
keep-alive-sized exchanges made one by one (only the writer keeps them), then reports the
objects the collector tracks and the time of a young (``gc.collect(1)``) and a full collection
(best of 5), against the same before the records. The store is let go and everything stored.

    PYTHONPATH=/another/checkout .venv/bin/python benchmarks/capture_gc.py --held 20000
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# As capture_cpu.py: PYTHONPATH=/another/checkout measures that one.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE.parent)]
sys.path.insert(0, str(HERE))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def _best(generation: int) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        gc.collect(generation)
        times.append(time.perf_counter() - started)
    return min(times)


def _figures(label: str) -> None:
    gc.collect()
    print(
        f"{label}: tracked {len(gc.get_objects()):,}, gc.collect(1) {_best(1) * 1e3:.2f} ms, "
        f"gc.collect(2) {_best(2) * 1e3:.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=20_000, help="exchanges waiting (20,000)")
    args = parser.parse_args()
    import capture_cpu

    from inspector import CaptureSettings, open_writer

    with tempfile.TemporaryDirectory(prefix="molehill-capgc-") as tmp:
        settings = CaptureSettings(
            path=Path(tmp) / "c.sqlite3",
            queue_size=args.held + 10,
            queue_bytes=1 << 30,
            busy_timeout=30,
        )
        writer = open_writer(settings)
        assert writer is not None
        stores = _children(writer.pid)
        if not stores:
            sys.exit("no store process found under the spooler")
        _figures("before")
        for pid in stores:
            os.kill(pid, signal.SIGSTOP)
        try:
            left = args.held
            while left:
                chunk = min(left, 1000)
                for record in capture_cpu.records(chunk):
                    writer.submit("bench", record, "http://127.0.0.1:1")
                left -= chunk
            time.sleep(0.5)  # the sender's rounds: the records leave the outbox
            _figures(f"{args.held:,} waiting")
        finally:
            for pid in stores:
                os.kill(pid, signal.SIGCONT)
        stored = writer.flush(600)
        writer.close(600)
        print(f"then stored: {stored}, written {writer.written:,}, dropped {writer.dropped:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
