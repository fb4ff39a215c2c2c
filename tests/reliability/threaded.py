"""A relay, a well-behaved agent and the local app on an event loop in a thread of their own.

Hypothesis drives plain (synchronous) test functions, so the fuzz tests talk to this stack with
blocking sockets while it runs undisturbed in its thread. Everything that goes wrong inside the
loop is recorded: exceptions that reach the loop's exception handler (an exception escaping a
protocol callback, a task that died) and ERROR log records of the relay's and agent's loggers.
A crash-free run leaves ``errors`` empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from relay.server import Relay
from tests.support.apps import local_app
from tests.support.stack import Tunnel, agent_for, relay_settings

T = TypeVar("T")
GOOD = "good"
# The relay's and agent's own loggers, asyncio's, and the relay's side of websockets (the rogue
# agents' client side logs its own troubles under websockets.client: not the relay's).
LOGGERS = ("molehill", "relay", "asyncio", "websockets.server")


class _Recorder(logging.Handler):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(f"log {record.name}: {record.getMessage()}")


class ThreadedStack:
    """Start with ``with ThreadedStack(**relay_overrides) as stack:``."""

    def __init__(self, **relay_overrides: object) -> None:
        self.relay_overrides = relay_overrides
        self.loop = asyncio.new_event_loop()
        self.errors: list[str] = []
        self.relay: Relay | None = None
        self.tunnel: Tunnel | None = None
        self.http_port = 0
        self.agents_url = ""
        self._thread = threading.Thread(target=self._run, name="molehill-stack", daemon=True)
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._recorder = _Recorder(self.errors)
        self.background = False  # background_traffic() is sending requests to the good tunnel

    # -- running ------------------------------------------------------------------

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        where = context.get("protocol") or context.get("transport") or context.get("handle")
        self.errors.append(f"loop: {context.get('message')}: {exc!r} in {where!r}")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.set_exception_handler(self._handle)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:
            self._failed = exc
            self._ready.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with (
            local_app() as app_port,
            Relay(relay_settings(**self.relay_overrides)) as relay,
            agent_for(relay, app_port, GOOD) as tunnel,
        ):
            self.relay, self.tunnel = relay, tunnel
            self.http_port = relay.http_port
            self.agents_url = relay.agents_url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ThreadedStack:
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self._recorder)
        self._thread.start()
        self._ready.wait(20)
        if self._failed is not None or self.relay is None:
            raise RuntimeError(f"the threaded stack did not start: {self._failed!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(self._recorder)

    # -- looking inside ------------------------------------------------------------

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn()`` on the stack's loop (where its state may be read safely)."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def wait_until(self, fn: Callable[[], Any], timeout: float = 3.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not self.call(fn):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or fn}")
            time.sleep(0.01)

    def settled(self) -> bool:
        """No visitor connection, stream or agent session left but the good tunnel's own (and,
        while background traffic runs, the good tunnel's visitors are not counted)."""
        relay, tunnel = self.relay, self.tunnel
        assert relay is not None and tunnel is not None
        good = relay.tunnels.get(GOOD)
        link = tunnel.agent.link
        if good is None or link is None or relay.sessions != {good}:
            return False
        if self.background:  # a background request may be just accepted: not routed yet
            return all(c.tunnel in ("", GOOD) for c in relay.public_connections)
        return not relay.public_connections and not good.streams and not link.streams

    def settle(self, timeout: float = 5.0) -> None:
        self.wait_until(self.settled, timeout, "the relay to let go of every test connection")

    def start_example(self) -> None:
        """Start from a clean relay: wait for the last example's aftermath (if that example
        failed, whatever it left is cut off here, so it cannot fail the next one), then forget
        its errors (a passing example asserted it had none)."""
        try:
            self.settle(timeout=1.0)
        except AssertionError:
            self.call(self._cut_leftovers)
            self.settle()
        del self.errors[:]

    def _cut_leftovers(self) -> None:
        relay = self.relay
        assert relay is not None
        good = relay.tunnels.get(GOOD)
        spare = ("", GOOD) if self.background else (GOOD,)
        for conn in list(relay.public_connections):
            if conn.tunnel not in spare and conn.transport is not None:
                conn.transport.abort()
        for session in list(relay.sessions):
            if session is not good and session.transport is not None:
                session.transport.abort()

    def end_example(self) -> None:
        """Everything an example opened is gone, nothing went wrong, and the relay still serves."""
        self.settle()
        assert not self.errors, self.errors[:5]
        self.good_request()

    # -- visitors ------------------------------------------------------------------

    def host(self, name: str = GOOD) -> str:
        return f"{name}.localhost:{self.http_port}"

    def connect(self, timeout: float = 2.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.http_port), timeout=timeout)

    def good_request(self, timeout: float = 3.0) -> None:
        """A plain GET through the good tunnel must answer 200 with the app's page."""
        with self.connect(timeout) as sock:
            sock.sendall(
                f"GET / HTTP/1.1\r\nHost: {self.host()}\r\nConnection: close\r\n\r\n".encode()
            )
            data = read_until_closed(sock, timeout)
        assert data.startswith(b"HTTP/1.1 200 "), data[:200]
        assert data.endswith(b"hello from the local app"), data[-200:]


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the peer sends until it closes (or resets); AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no close within {timeout}s; got {b''.join(chunks)[:300]!r}")
        sock.settimeout(left)
        try:
            piece = sock.recv(1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            break
        except TimeoutError:
            continue
        if not piece:
            break
        chunks.append(piece)
    return b"".join(chunks)


@contextlib.contextmanager
def background_traffic(stack: ThreadedStack, period: float = 0.02) -> Iterator[list[str]]:
    """Requests through the good tunnel, one after another, for as long as the block runs.

    Yields a list of failures; the caller asserts it is empty (and that some requests ran)."""
    failures: list[str] = []
    done = threading.Event()
    count = [0]

    def run() -> None:
        while not done.is_set():
            try:
                stack.good_request()
                count[0] += 1
            except (AssertionError, OSError) as exc:
                failures.append(repr(exc))
            done.wait(period)

    thread = threading.Thread(target=run, name="good-traffic", daemon=True)
    stack.background = True
    thread.start()
    try:
        yield failures
    finally:
        done.set()
        thread.join(10)
        stack.background = False
        if count[0] == 0 and not failures:
            failures.append("no request ran at all")
