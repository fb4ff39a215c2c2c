"""Why the local app gave no (whole) answer, in words: a refused dial, a timeout, a reset, a
host name that does not resolve, a connection closed without a response.

The sentences name the local address, so the CLI line, the dashboard pane and the 502 page
all say the same thing. They are built only when something failed: never on a healthy request.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl

# The kinds, as `molehill http --json` reports them in "failure_kind".
REFUSED = "refused"
TIMEOUT = "timeout"
RESET = "reset"
CLOSED = "closed"
DNS = "dns"
TLS = "tls"
UNREACHABLE = "unreachable"


_ERRNO = re.compile(r"\[Errno (\d+)\]")


def _codes(exc: OSError) -> set[int]:
    """The errnos of a dial that tried several addresses (``localhost``: ::1 and 127.0.0.1).

    asyncio folds those failures into one OSError without an errno, "Multiple exceptions:
    [Errno 111] Connect call failed ('::1', ...), [Errno 111] ..."; its text is all there is.
    """
    if exc.errno is not None:
        return {exc.errno}
    return {int(code) for code in _ERRNO.findall(str(exc))}


def dial_failure(exc: OSError, local: str, timeout: float) -> tuple[str, str]:
    """(kind, sentence) for a failed connection to the local app at ``local``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLS, (
            f"local app's certificate is not trusted ({local}: "
            f"{exc.verify_message or exc.reason}); for a self-signed certificate use "
            "--local-insecure"
        )
    if isinstance(exc, ssl.SSLError):
        return TLS, (
            f"TLS handshake with the local app failed ({local}: {exc.reason or exc}); "
            f"if the app serves plain HTTP, use http://{local}"
        )
    if isinstance(exc, ConnectionRefusedError) or _codes(exc) == {errno.ECONNREFUSED}:
        return REFUSED, f"local app refused the connection ({local})"
    if isinstance(exc, TimeoutError):
        return TIMEOUT, f"local app did not accept the connection within {timeout:g}s ({local})"
    if isinstance(exc, socket.gaierror):
        return DNS, f"local app's host name does not resolve ({local}: {exc.strerror or exc})"
    if _codes(exc) and _codes(exc) <= {errno.EHOSTUNREACH, errno.ENETUNREACH}:
        return UNREACHABLE, f"local app's host is unreachable ({local})"
    why = exc.strerror or str(exc) or type(exc).__name__
    return UNREACHABLE, f"cannot connect to the local app ({local}: {why})"


def lost_failure(exc: BaseException | None, local: str, mid_response: bool) -> tuple[str, str]:
    """(kind, sentence) for a connection the local app ended before its response was whole."""
    where = "mid-response" if mid_response else "before answering"
    if exc is None:
        return CLOSED, f"local app closed the connection {where} ({local})"
    if isinstance(exc, ConnectionResetError):
        return RESET, f"local app reset the connection {where} ({local})"
    why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return RESET, f"local app connection failed {where} ({local}: {why})"
