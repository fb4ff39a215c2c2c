"""Event loop choice and running a coroutine until Ctrl+C or SIGTERM, without a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def keep_heap_slack(pad: int = 16 * 1024 * 1024) -> None:
    """Ask glibc to keep some freed heap instead of returning it at once.

    Every websocket message of up to a MiB is allocated and freed; by default glibc gives the
    top of the heap back to the kernel each time and asks for it again (brk), which the
    64 KiB benchmark measured at a tenth of the agent's time. No-op off glibc.
    """
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-2, pad)  # M_TOP_PAD
        libc.mallopt(-1, pad * 2)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where the platform has it (faster sockets), asyncio's loop otherwise."""
    keep_heap_slack()
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop_event)``; SIGINT/SIGTERM set the event so main can shut down cleanly."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    with asyncio.Runner(loop_factory=new_event_loop) as runner_:
        return runner_.run(runner())
