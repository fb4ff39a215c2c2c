"""The public name a captured request reached the relay by, for replays and exports that resend it.

The relay routes an absolute-form request (``POST http://NAME/path``) by its authority, which
overrides Host (RFC 9112 3.2.2), and carries the Host header on as the visitor wrote it. So the
Host of a captured request may name any server the visitor likes, and a Host such as
``pay.example.com:1@evil.example`` routes to the tunnel ``pay`` yet, read as a URL, names
``evil.example``. Whatever sends a captured request again by its public name takes it from here.
"""

from __future__ import annotations

import re

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_AUTHORITY = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")
_ABSOLUTE = re.compile(r"https?://([^/?#]*)", re.IGNORECASE)


def routed_authority(target: str, host: str | None) -> str | None:
    """The authority the relay routed by: an absolute-form target's, else the Host header's.
    None when there is none, or when it is not a plain ``host[:port]`` (userinfo, a path, a
    fragment, spaces: text that, put in a URL, would name another server)."""
    absolute = _ABSOLUTE.match(target)
    value = (absolute.group(1) if absolute else host or "").strip(" \t")
    return value if _AUTHORITY.fullmatch(value) else None


def origin_form(target: str) -> str:
    """The path and query of a request target (an absolute-form one loses its scheme and
    authority)."""
    absolute = _ABSOLUTE.match(target)
    if absolute is None:
        return target
    rest = target[absolute.end() :]
    return rest if rest.startswith("/") else "/" + rest
