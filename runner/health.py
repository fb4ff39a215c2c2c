"""Is the app answering? A TCP connect to its port, then GET of the health path if one is set."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

CHECK_TIMEOUT = 2.0
MAX_STATUS_LINE = 1024


async def check(host: str, port: int, path: str | None, tls: bool = False) -> str | None:
    """None when the app answers (and `path`, if given, returns 2xx or 3xx); else why not."""
    context = None
    if tls:
        # The app's own certificate is the user's business (local_insecure); only "does it answer".
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
            try:
                if path is None:
                    return None
                hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n"
                    "User-Agent: molehill-health\r\n\r\n".encode()
                )
                line = await reader.readline()
                return status_problem(line[:MAX_STATUS_LINE], path)
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except TimeoutError:
        return f"{host}:{port} did not answer within {CHECK_TIMEOUT:g}s"
    except (OSError, ssl.SSLError) as exc:
        return (
            f"{host}:{port} does not answer ({exc.strerror or exc})"
            if isinstance(exc, OSError)
            else f"{host}:{port}: TLS failed ({exc})"
        )


def status_problem(status_line: bytes, path: str) -> str | None:
    """None for a 2xx/3xx status line; else what came back (hostile or empty lines included)."""
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        shown = status_line[:60].decode("latin-1").strip() or "nothing"
        return f"GET {path} did not get an HTTP answer (got {shown!r})"
    status = int(parts[1])
    if 200 <= status < 400:
        return None
    return f"GET {path} answered {status}"
