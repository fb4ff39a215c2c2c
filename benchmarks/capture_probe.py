"""GC work and websocket messages per request, captures on vs off, in one process.

Runs ``instructions.py``'s in-process setup (local app, relay, agent as ``molehill http`` runs
it, raw keep-alive client; the capture store in its own processes) with ``gc.callbacks`` timing
every collection and ``FrameLink._send_message`` counting the websocket messages each side
sends. Prints, per request: collections by generation, the time spent in them, the objects the
collector tracks at the end, and messages relay -> agent and agent -> relay. Wall times here
are the shared machine's; the counts are what to compare.

    .venv/bin/python benchmarks/capture_probe.py --count 20000 [--no-capture]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-capture", action="store_true")
    args = parser.parse_args()

    import instructions
    import uvloop

    from relay.transport.link import FrameLink

    sent = {"relay": 0, "agent": 0}
    original = FrameLink._send_message

    def counting(self: FrameLink, pieces: list[bytes]) -> None:
        sent["relay" if self._masks is None else "agent"] += 1
        original(self, pieces)

    FrameLink._send_message = counting  # type: ignore[method-assign]

    collections = [0, 0, 0]
    spent = [0.0, 0.0, 0.0]
    started = [0.0]

    def timing(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            generation = info["generation"]
            collections[generation] += 1
            spent[generation] += time.perf_counter() - started[0]

    run_args = argparse.Namespace(
        scenario="keepalive",
        count=args.count,
        connections=args.connections,
        no_capture=args.no_capture,
        direct=False,
        log="/dev/null",
    )
    gc.callbacks.append(timing)
    wall = time.perf_counter()
    uvloop.run(instructions.run(run_args))
    wall = time.perf_counter() - wall
    gc.callbacks.remove(timing)
    n = args.count + instructions.WARMUP["keepalive"]
    label = "off" if args.no_capture else "on"
    print(
        f"captures {label}: {n} requests in {wall:.2f}s; collections gen0/1/2 "
        f"{collections[0]}/{collections[1]}/{collections[2]} "
        f"({sum(collections) / n:.3f} per request), GC time {sum(spent) / n * 1e6:.2f} µs per "
        f"request (gen0/1/2 {spent[0] * 1e3:.0f}/{spent[1] * 1e3:.0f}/{spent[2] * 1e3:.0f} ms "
        f"in all), tracked at the end "
        f"{len(gc.get_objects()):,}; websocket messages per request relay->agent "
        f"{sent['relay'] / n:.3f}, agent->relay {sent['agent'] / n:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
