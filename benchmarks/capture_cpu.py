"""CPU per captured exchange, all of it: the capturing process's share and the writer processes'.

``python benchmarks/capture_cpu.py [--count N] [--rate R]`` submits N keep-alive-sized exchanges
(a GET with a few headers, a 13-byte answer) to a real ``CaptureWriter`` (``--rate``: that many
a second, 0: as fast as it goes), waits until all are stored, closes it, and prints the CPU
microseconds per exchange spent by this process (``submit()`` and the writer's threads; the
records are made before the clock starts) and by its children (the writer processes, every
second of them, including what they do after the load: ``capture_ab.py`` only sees what they
spend during a run). Standalone, not in ``run.py``'s suite. Run it with ``PYTHONPATH`` pointing
at another checkout to measure that code with the same records.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICK = 0.005
# Not this folder (its inspector.py would shadow the package); the checkout after PYTHONPATH's,
# so that PYTHONPATH=/another/checkout measures that one.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE.parent)]


def records(count: int) -> list:  # type: ignore[type-arg]
    from relay.events import Capture, RequestRecord

    out = []
    for i in range(count):
        head = (
            b"GET /item/%d HTTP/1.1\r\nHost: bench.example.test\r\nUser-Agent: loadgen\r\n"
            b"Accept: */*\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n" % i
        )
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
        capture = Capture(request_head=head, response_head=answer, response_body=b"Hello, world!")
        out.append(
            RequestRecord(
                time=time.time(),
                method="GET",
                path=f"/item/{i}",
                status=200,
                duration_ms=0.4,
                bytes_in=len(head),
                bytes_out=len(answer) + 13,
                client="127.0.0.1",
                stream=i,
                http_version="HTTP/1.1",
                ttfb_ms=0.3,
                capture=capture,
            )
        )
    return out


def _proc_seconds(pid: int) -> float | None:
    """CPU seconds of a live child so far, from /proc (None elsewhere): clock-tick resolution."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def paced(submit: Callable[..., None], made: list, rate: float) -> float:  # type: ignore[type-arg]
    """Submits every record at ``rate`` a second (0: at once); the seconds it took. Paced in
    ticks of TICK seconds (a burst, then a sleep): the pacing costs a sleep a tick."""
    began = time.monotonic()
    step = max(1, round(rate * TICK)) if rate > 0 else len(made)
    pause = threading.Event()
    for start in range(0, len(made), step):
        for record in made[start : start + step]:
            submit("bench", record, "http://127.0.0.1:3000")
        ahead = began + (start + step) / rate - time.monotonic() if rate else 0
        if ahead > 0:
            pause.wait(ahead)
    return time.monotonic() - began


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=0.0, help="exchanges a second (0: unpaced)")
    args = parser.parse_args()
    from inspector import CaptureSettings, open_writer

    made = records(args.count)
    with tempfile.TemporaryDirectory(prefix="molehill-capcpu-") as tmp:
        settings = CaptureSettings(
            path=Path(tmp) / "c.sqlite3",
            queue_size=args.count + 10,
            queue_bytes=1 << 30,
            busy_timeout=30,
        )
        writer = open_writer(settings)
        assert writer is not None
        # What the loop and its pacing cost alone, to take away from this process's figure.
        start_self = cpu(resource.RUSAGE_SELF)
        paced(lambda *_: None, made, args.rate)
        baseline = cpu(resource.RUSAGE_SELF) - start_self
        start_self, start_kids = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
        began = time.monotonic()
        submitted = paced(writer.submit, made, args.rate)
        stored_ok = writer.flush(600)
        stored_at = time.monotonic() - began
        spooler = _proc_seconds(writer.pid)  # before close: it exits then
        writer.close(600)
        own = cpu(resource.RUSAGE_SELF) - start_self - baseline
        kids = cpu(resource.RUSAGE_CHILDREN) - start_kids
    n = args.count
    print(
        f"{n:,} exchanges: written {writer.written:,}, dropped {writer.dropped:,}, "
        f"flushed {stored_ok}; submitted in {submitted:.2f} s, stored after {stored_at:.2f} s"
    )
    print(
        f"CPU µs per exchange: capturing process {own / n * 1e6:.1f} (its pacing loop taken "
        f"away: {baseline / n * 1e6:.1f}), "
        f"writer processes {kids / n * 1e6:.1f}, total {(own + kids) / n * 1e6:.1f}"
        + (f" (of which the writer's first process {spooler / n * 1e6:.1f})" if spooler else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
