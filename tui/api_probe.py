"""Finding a running molehill process's local API: --api URL, else the ports 4040..4050.

A port counts only if what answers there is a molehill API, recognised by its answer's content,
so that another program on 4040 (ngrok, a dev server, anything) is skipped, never trusted.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import socket
import threading
from typing import Any
from urllib.parse import quote, urlsplit

from tui.local_api import DEFAULT_PORT, LAST_PORT

PROBE_TIMEOUT = 2.0  # seconds per read: a loopback API answers in milliseconds
PROBE_DEADLINE = 5.0  # seconds per port in all: a server that drips bytes is cut off
ANSWER_LIMIT = 16 * 1024 * 1024  # bytes read from an answer at most: junk cannot fill memory
PROBE_PORTS: list[int] = list(range(DEFAULT_PORT, LAST_PORT + 1))  # where `molehill http` looks
_LARGEST = 2**63  # bytes, counts, ms: beyond any real figure (and int() of it is cheap)
_YEAR_9999 = 253_402_300_800  # seconds since 1970: time.localtime() fails past this


class ApiNotFound(Exception):
    """No molehill API where we looked; the message says what to do."""


def api_url(text: str) -> tuple[str, int]:
    """``http://HOST:PORT``, ``HOST:PORT`` or ``PORT`` -> (host, port); ValueError if not."""
    parts = urlsplit(text if "://" in text else f"http://{text}" if ":" in text else f"//:{text}")
    if parts.scheme not in ("http", ""):
        raise ValueError(f"{text!r}: the local API is plain http://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError(f"{text!r}: expected http://HOST:PORT, e.g. http://127.0.0.1:4040")
    return parts.hostname or "127.0.0.1", port


def get_json(host: str, port: int, path: str) -> tuple[int, Any]:
    """GET path; (status, decoded JSON). OSError if nothing answers, ValueError if not JSON."""
    conn = http.client.HTTPConnection(host, port, timeout=PROBE_TIMEOUT)
    cut = threading.Event()
    late = threading.Timer(PROBE_DEADLINE, _cut, (conn, cut))
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        late.start()
        response = conn.getresponse()
        body = response.read(ANSWER_LIMIT + 1)
    except (http.client.HTTPException, OSError) as exc:
        if cut.is_set():  # the cut ended the read, whichever way the read then failed
            raise ValueError(f"no whole answer within {PROBE_DEADLINE:g}s") from None
        if isinstance(exc, OSError):
            raise
        raise ValueError(f"not an HTTP answer ({exc.__class__.__name__})") from None
    finally:
        late.cancel()
        conn.close()
    if cut.is_set():
        raise ValueError(f"no whole answer within {PROBE_DEADLINE:g}s")
    if len(body) > ANSWER_LIMIT:
        raise ValueError(f"an answer over {ANSWER_LIMIT} bytes")
    try:
        return response.status, json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("an answer that is not JSON") from None


def _cut(conn: http.client.HTTPConnection, cut: threading.Event) -> None:
    """Past the deadline: end the exchange (a shutdown wakes a read blocked on the socket)."""
    cut.set()
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def connections_at(host: str, port: int, tunnel: str | None = None) -> dict[str, Any]:
    """The /api/connections answer of a molehill API; ApiNotFound if something else answers."""
    path = "/api/connections" + (f"?tunnel_name={quote(tunnel)}" if tunnel else "")
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    try:
        status, data = get_json(host, port, path)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or "timeout"
        raise ApiNotFound(f"{where}: {why}") from None
    if status == 404 and _is_error(data) and tunnel and "TCP tunnel" in data["msg"]:
        raise ApiNotFound(f"{where}: {data['msg']}")
    if status != 200 or not _is_connections(data):
        raise ApiNotFound(f"{where} is not a molehill local API (or one too old to list them)")
    return data


def find_connections(
    fixed: tuple[str, int] | None, tunnel: str | None
) -> list[tuple[str, dict[str, Any]]]:
    """(API URL, answer) of the API asked for, else of every molehill API on 4040..4050."""
    if fixed is not None:
        host, port = fixed
        return [(f"http://{host}:{port}", connections_at(host, port, tunnel))]
    found = []
    for port in PROBE_PORTS:
        try:
            found.append((f"http://127.0.0.1:{port}", connections_at("127.0.0.1", port)))
        except ApiNotFound:
            continue
    if not found:
        raise ApiNotFound(
            f"no molehill process with a local API is running (looked on 127.0.0.1:"
            f"{PROBE_PORTS[0]}-{PROBE_PORTS[-1]}); start one with molehill tcp PORT, "
            "or give --api URL"
        )
    return found


def _is_error(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("msg"), str)


def _is_connections(data: Any) -> bool:
    """molehill's /api/connections shape, checked all the way down to what the CLI reads."""
    if not isinstance(data, dict) or data.get("uri") != "/api/connections":
        return False
    rows, tunnels = data.get("connections"), data.get("tunnels")
    if not isinstance(rows, list) or not isinstance(tunnels, list):
        return False
    row_keys = {"tunnel_name": str, "client": str, "time": _timestamp, "state": str,
                "duration_ms": _amount, "bytes_in": _count, "bytes_out": _count,
                "closed": str}  # fmt: skip
    tunnel_keys = {"name": str, "public_url": str, "open": _count, "total": _count,
                   "throughput": _rates}  # fmt: skip
    return all(_has(r, row_keys) for r in rows) and all(_has(t, tunnel_keys) for t in tunnels)


def _has(item: Any, keys: dict[str, Any]) -> bool:
    """Every key is there with a value the listing can print (a type, or a check of the value)."""
    return isinstance(item, dict) and all(
        isinstance(item.get(k), t) if isinstance(t, type) else t(item.get(k))
        for k, t in keys.items()
    )


def _amount(value: Any) -> bool:
    """A finite number >= 0 (a bool is not one: JSON true is not a size)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= _LARGEST
    )


def _count(value: Any) -> bool:
    return isinstance(value, int) and _amount(value)


def _timestamp(value: Any) -> bool:
    return _amount(value) and value < _YEAR_9999  # time.localtime() takes it


def _rates(value: Any) -> bool:
    """A TCP tunnel's live throughput: {"in": bytes/s, "out": bytes/s}, either may be missing."""
    return isinstance(value, dict) and all(_amount(value.get(k, 0)) for k in ("in", "out"))
