"""Local targets as users type them: PORT, HOST:PORT, http://HOST:PORT or https://HOST:PORT."""

from __future__ import annotations

from dataclasses import dataclass

ACCEPTED = "use PORT, HOST:PORT, http://HOST:PORT or https://HOST:PORT"
MAX_TARGET_LENGTH = 300  # a host name is at most 253 characters; anything longer is a mistake
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._:")


class TargetError(ValueError):
    """The text is not a target; the message says what is accepted."""


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """Where the agent dials the local app, and whether it speaks TLS there."""

    host: str
    port: int
    tls: bool = False

    @property
    def address(self) -> str:
        """host:port, with brackets around an IPv6 address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"


def parse_target(text: str, default_host: str = "127.0.0.1") -> LocalTarget:
    """The target ``text`` names; raises TargetError saying what is accepted."""
    if not isinstance(text, str):
        raise TargetError(f"{text!r} is not a target: {ACCEPTED}")
    shown = text if len(text) <= 60 else text[:57] + "..."
    wrong = TargetError(f"{shown!r} is not a target: {ACCEPTED}")
    if not text or len(text) > MAX_TARGET_LENGTH or text != text.strip():
        raise wrong
    rest = text
    tls = False
    scheme, sep, after = text.partition("://")
    if sep:
        if scheme.lower() not in ("http", "https"):
            raise TargetError(
                f"{shown!r} is not a target: the local app is reached over http:// or https://, "
                f"not {scheme}://; {ACCEPTED}"
            )
        tls = scheme.lower() == "https"
        rest = after[:-1] if after.endswith("/") else after  # http://localhost:3000/ is fine
        if "/" in rest or "?" in rest or "#" in rest:
            raise TargetError(
                f"{shown!r} is not a target: a target has no path, only scheme, host and port; "
                f"{ACCEPTED}"
            )
    if _digits(rest) and not sep:
        return LocalTarget(default_host, _port(rest, shown), tls)
    if rest.startswith("["):  # [::1]:3000
        host, bracket, port_text = rest[1:].partition("]")
        if not bracket or not port_text.startswith(":"):
            raise wrong
        port_text = port_text[1:]
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon or ":" in host:
            if sep and rest and ":" not in rest:  # http://localhost: the scheme's port
                host, port_text = rest, "443" if tls else "80"
            else:
                raise wrong
    host = host.lower()
    if not host or not set(host) <= _HOST_CHARACTERS or not _digits(port_text):
        raise wrong
    return LocalTarget(host, _port(port_text, shown), tls)


def _port(text: str, shown: str) -> int:
    port = int(text[:6]) if _digits(text) else 0
    if not 1 <= port <= 65535:
        raise TargetError(f"{shown!r} is not a target: the port must be 1-65535; {ACCEPTED}")
    return port


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes '³', which int() refuses."""
    return text.isascii() and text.isdigit()
