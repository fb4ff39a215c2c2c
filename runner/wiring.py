"""Profiles' [env] with the URLs of the tunnels they refer to filled in (sans-I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from profiles.refs import Ref, depends_on, parse_template


def url_part(url: str, field: str) -> str:
    """ "url", "host" or "port" of a public URL (the port even when the scheme implies it)."""
    if field == "url":
        return url
    parts = urlsplit(url)
    if field == "host":
        return parts.hostname or ""
    default = {"https": 443, "http": 80}.get(parts.scheme, 0)
    return str(parts.port or default)


def missing(env: Mapping[str, str], urls: Mapping[str, str]) -> list[str]:
    """The profiles `env` refers to whose public URL is not known yet."""
    return [name for name in depends_on(env) if not urls.get(name)]


def resolve(env: Mapping[str, str], urls: Mapping[str, str]) -> dict[str, str]:
    """`env` with each {profile.field} replaced; KeyError names a profile with no URL yet."""
    resolved = {}
    for name, text in env.items():
        out = []
        for piece in parse_template(text):
            if isinstance(piece, Ref):
                url = urls.get(piece.profile)
                if not url:
                    raise KeyError(piece.profile)
                out.append(url_part(url, piece.field))
            else:
                out.append(piece)
        resolved[name] = "".join(out)
    return resolved
