"""What a relay says, checked before the agent shows it, stores it or acts on it.

The relay an agent connects to is not always the developer's own: a team's shared relay, a
public instance, one that was compromised. Every text in its frames reaches the developer's
side: the WELCOME's URL and name are printed by ``molehill http``, drawn by the dashboard,
written to ``--json`` output, handed to other profiles' commands as ``{profile.url}`` and kept in
the resume file; ERROR messages, GOAWAY reasons and RESET codes become the tunnel's error line.
A relay that wanted to could put an ESC (a terminal's escape sequences: clear the screen,
retitle the window, OSC 52 into the clipboard), a newline (a forged line of output) or a quote
in any of them. So the WELCOME's fields must have the shape a molehill relay gives them, or the
agent refuses the relay; and free texts have their control characters spelled out once, here,
for every place that shows them.
"""

from __future__ import annotations

import ipaddress
import re

from relay.terminal_text import visible
from relay.wire import codec as p

# A public URL as relays make them (relay/server/relay.py public_url, tcp_listener.py):
# SCHEME://HOST[:PORT], the host a DNS name or an IP address. Nothing else: no userinfo, path,
# query, space, quote or control, so the URL is the same text wherever it is pasted or written.
_URL = re.compile(
    r"(?P<scheme>https?|tcp)://(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
    r"|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?/?"
)
# A tunnel name is a DNS label (relay/http/names.py), any case.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# A resume token is the relay's secrets.token_urlsafe; printable ASCII is all that is asked,
# and a bound on its size: it is written to the resume file on every connection.
_RESUME = re.compile(r"[\x21-\x7e]{0,512}")
MAX_SHOWN = 500  # characters of a relay's message kept: a message, not a page


class BadWelcome(p.ProtocolError):
    """The relay's WELCOME has a field no molehill relay would send."""


def printable(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` with every control character written as ``\\xNN`` (newlines included: it is
    shown on one line), cut to ``limit`` characters."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return visible(text)


def _ipv6_ok(url: re.Match[str]) -> bool:
    host = url.group("host")
    if not host.startswith("["):
        return True
    try:
        return ipaddress.ip_address(host[1:-1]).version == 6
    except ValueError:
        return False


def check_welcome(welcome: p.Welcome, protocol: str) -> None:
    """Raise BadWelcome unless ``welcome``'s name, URL and resume token have the shapes a
    molehill relay gives them (``protocol``: the tunnel's, "http" or "tcp")."""
    url = _URL.fullmatch(welcome.url)
    # urlsplit (runner/wiring.py, replays) raises on a port past 65535 or a bracketed host
    # that is no IPv6 address: such a URL would fail wherever it is read, not only here.
    if url is None or not 0 < int(url.group("port") or 80) <= 65535 or not _ipv6_ok(url):
        raise BadWelcome(f"its public URL is not SCHEME://HOST[:PORT]: {printable(welcome.url)}")
    if (url.group("scheme") == "tcp") != (protocol == "tcp"):
        raise BadWelcome(f"its public URL is not a {protocol} URL: {welcome.url}")
    if _NAME.fullmatch(welcome.name) is None:
        raise BadWelcome(f"the tunnel name is not a DNS label: {printable(welcome.name)}")
    if _RESUME.fullmatch(welcome.resume) is None:
        raise BadWelcome("its resume token is not printable ASCII of at most 512 characters")
