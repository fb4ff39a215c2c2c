"""Run the aiohttp test app of tests/support/apps.py in its own process.

``python -m tests.reliability.serve_app [PORT]`` listens on 127.0.0.1:PORT (0: chosen by the OS),
prints ``listening on 127.0.0.1:PORT`` and serves until killed.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from tests.support.apps import make_app


async def serve(port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port))
    else:
        uvloop.run(serve(port))


if __name__ == "__main__":
    main()
