"""Inspector benchmark: the capture writer at 1,000 exchanges/s with 10 KiB bodies for 10 s, then
filtered listings over 100,000 stored exchanges. Run once: `python benchmarks/inspector.py`.

Records are made by the agent's own observer from real HTTP/1.1 bytes, so redaction, body
capping and indexing do the work they do in use. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector import CaptureSettings, CaptureStore, open_writer, parse
from relay.agent.observe import ExchangeObserver
from relay.events import RequestRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import child_pids

WORDS = "order payment user refund error timeout shipped item cart price token queue".split()  # noqa: SIM905


def record(i: int, body_bytes: int, rng: random.Random) -> RequestRecord:
    body = json.dumps(
        {
            "id": i,
            "event": rng.choice(WORDS),
            "note": " ".join(rng.choices(WORDS, k=body_bytes // 7)),
        }
    ).encode()[:body_bytes]
    method = rng.choice(["GET", "POST", "POST", "PUT"])
    path = rng.choice(["/api/orders", f"/api/orders/{i}", "/webhook", "/static/app.js"])
    req = (
        f"{method} {path} HTTP/1.1\r\nHost: app.example\r\nContent-Type: application/json\r\n"
        f"X-GitHub-Event: {rng.choice(['push', 'ping', 'issues'])}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    status = rng.choice([200, 200, 200, 201, 404, 500, 503])
    resp_body = b'{"ok": true}'
    resp = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(resp_body)}\r\n\r\n"
    ).encode() + resp_body
    out: list[RequestRecord] = []
    observer = ExchangeObserver("198.51.100.1", i, out.append, capture_bytes=1 << 20)
    observer.request_bytes(req)
    observer.response_bytes(resp)
    out[0].duration_ms = rng.expovariate(1 / 120)
    return out[0]


def process_cpu(pid: int) -> float:
    """utime + stime of process ``pid`` in seconds (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def writer_processes(spooler: int) -> list[int]:
    """The spooler and the store process it started (the store is where the work is)."""
    return [spooler, *child_pids(spooler)]


def write_rate(path: Path, rate: int, seconds: float, body_bytes: int) -> None:
    rng = random.Random(1)
    pool = [record(i, body_bytes, rng) for i in range(2000)]
    writer = open_writer(CaptureSettings(path=path))
    assert writer is not None
    submit_ns: list[int] = []
    start = time.perf_counter()
    cpu0 = time.process_time()
    family = writer_processes(writer.pid)
    writer_cpu0 = sum(map(process_cpu, family))
    sent = 0
    while (now := time.perf_counter() - start) < seconds:
        due = int(now * rate)
        while sent < due:
            t = time.perf_counter_ns()
            writer.submit("api", pool[sent % len(pool)])
            submit_ns.append(time.perf_counter_ns() - t)
            sent += 1
        time.sleep(0.002)
    flushed_at = time.perf_counter()
    writer.flush(60)
    lag = time.perf_counter() - flushed_at
    cpu = time.process_time() - cpu0
    writer_cpu = sum(map(process_cpu, family)) - writer_cpu0
    writer.wait_indexed(600)
    index_lag = time.perf_counter() - flushed_at
    writer.close()
    print(f"write: {sent} exchanges of {body_bytes} B bodies in {seconds:.0f} s "
          f"({sent / seconds:.0f}/s offered); written {writer.written}, dropped {writer.dropped}, "
          f"{writer.batches} transactions")  # fmt: skip
    print(f"write: backlog after the last submit stored in {lag * 1000:.0f} ms; CPU: this "
          f"process (generator, submit, the writer's sender and reader threads) "
          f"{cpu / seconds * 100:.0f}% of one core, the writer's two processes "
          f"(spooler and store) {writer_cpu / seconds * 100:.0f}%; body index caught up "
          f"{index_lag:.1f} s after the last submit")  # fmt: skip
    print(f"write: submit() median {statistics.median(submit_ns) / 1000:.1f} us, p99 "
          f"{sorted(submit_ns)[int(len(submit_ns) * 0.99)] / 1000:.1f} us")  # fmt: skip


def fill(path: Path, count: int, body_bytes: int) -> float:
    rng = random.Random(2)
    pool = [record(i, body_bytes, rng) for i in range(5000)]
    settings = CaptureSettings(
        path=path, max_bytes=4 << 30, queue_size=count + 10, queue_bytes=4 << 30
    )
    writer = open_writer(settings)
    assert writer is not None
    start = time.perf_counter()
    for i in range(count):
        writer.submit(("api", "web", "hooks")[i % 3], pool[i % len(pool)])
    writer.flush(600)
    elapsed = time.perf_counter() - start
    writer.wait_indexed(1200)
    print(f"fill: body index complete {time.perf_counter() - start:.1f} s after the start")
    writer.close()
    return elapsed


def listings(path: Path) -> None:
    store = CaptureStore(path, create=False, max_bytes=4 << 30)
    total = store.count()
    print(f"list: {total} exchanges stored, file {path.stat().st_size / 2**20:.0f} MiB, "
          f"body search {'FTS5 trigram' if store.fts else 'scan'}")  # fmt: skip
    for text in [
        "",
        "status:5xx method:POST path:/api/*",
        "header:x-github-event=push -status:2xx",
        "dur>500ms tunnel:hooks",
        'body:"refund"',
        'body:"nowhere-to-be-found"',
        "status:418",
    ]:
        flt = parse(text)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            rows = store.select(flt, limit=50)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        matching = store.count(flt)
        count_ms = (time.perf_counter() - t) * 1000
        first_ms = statistics.median(times) * 1000
        print(f"list: {text or '(no filter)':42} first 50: {first_ms:6.1f} ms"
              f" ({len(rows)} rows); count {matching:6}: {count_ms:6.1f} ms")  # fmt: skip
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--stored", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="molehill-bench-") as tmp:
        write_rate(Path(tmp) / "rate.sqlite3", args.rate, args.seconds, 10 * 1024)
        path = Path(tmp) / "list.sqlite3"
        elapsed = fill(path, args.stored, 1024)
        print(f"fill: {args.stored} exchanges of 1 KiB bodies stored in {elapsed:.1f} s "
              f"({args.stored / elapsed:.0f}/s unpaced)")  # fmt: skip
        listings(path)
    print(f"machine: {os.cpu_count()} cores (shared), Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
