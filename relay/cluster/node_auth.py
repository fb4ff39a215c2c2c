"""Node-to-node link authentication (sans-I/O): HMAC-SHA256 with the cluster secret.

The dialling node sends, in its websocket upgrade request, its id, the time, a random nonce and
``HMAC(secret, "molehill-node-link" | from | to | time | nonce)``. The accepting node checks the
MAC in constant time, the time within ``SKEW`` seconds, and that the nonce was not seen in that
span (a recorded request cannot be replayed); then it proves itself in its 101 response with
``HMAC(secret, "molehill-node-reply" | nonce)``. Without the secret, no link and no stream.

The nonces seen are in memory, so a node also refuses requests signed more than
``RESTART_SLACK`` seconds before it started: else a request recorded on the wire (a ``ws://``
node URL) could be replayed for up to ``SKEW`` seconds after the node restarted, and a replayed
link opens streams to any of its tunnels past their rules (those are applied by the node the
visitor reached). Other nodes sign each dial afresh, after the restarted node is back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

PATH = "/_molehill/node"  # the agents' listener takes node links on this path
SKEW = 60.0  # seconds a signed request stays valid (the nodes' clocks must agree this well)
RESTART_SLACK = 2.0  # seconds before this node started that a request may have been signed
# (the stamp is whole seconds, and NTP keeps nodes well within a second of each other)
NODE = "X-Molehill-Node"
TIME = "X-Molehill-Node-Time"
NONCE = "X-Molehill-Node-Nonce"
MAC = "X-Molehill-Node-Mac"
REPLY = "X-Molehill-Node-Reply"


def _mac(secret: str, *parts: str) -> str:
    message = "\n".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode("utf-8", "surrogatepass"), message, hashlib.sha256).hexdigest()


def sign(secret: str, me: str, peer: str, now: float | None = None) -> dict[str, str]:
    """The headers with which node ``me`` asks node ``peer`` for a link."""
    stamp = str(int(now if now is not None else time.time()))
    nonce = secrets.token_hex(16)
    return {
        NODE: me,
        TIME: stamp,
        NONCE: nonce,
        MAC: _mac(secret, "molehill-node-link", me, peer, stamp, nonce),
    }


def reply(secret: str, nonce: str) -> str:
    return _mac(secret, "molehill-node-reply", nonce)


def reply_valid(secret: str, nonce: str, presented: str) -> bool:
    return hmac.compare_digest(reply(secret, nonce).encode(), presented.encode("utf-8", "replace"))


class Verifier:
    """Checks link requests for node ``me``; remembers nonces for ``SKEW`` seconds."""

    def __init__(
        self, secret: str, me: str, clock: Callable[[], float] = time.time, max_nonces: int = 65536
    ) -> None:
        self.secret = secret
        self.me = me
        self.clock = clock
        self.max_nonces = max_nonces
        self.seen: OrderedDict[str, float] = OrderedDict()
        self.started = clock()  # nonces seen before this are not known: see the module's doc

    def check(self, headers: Mapping[str, str]) -> str | None:
        """Why the request is refused, or None when it comes from a node with the secret."""
        peer = headers.get(NODE, "")
        stamp = headers.get(TIME, "")
        nonce = headers.get(NONCE, "")
        presented = headers.get(MAC, "")
        if not (peer and stamp and nonce and presented):
            return "missing node authentication headers"
        if len(peer) > 63 or len(nonce) > 64 or len(presented) > 64 or len(stamp) > 20:
            return "oversized node authentication headers"
        expected = _mac(self.secret, "molehill-node-link", peer, self.me, stamp, nonce)
        if not hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace")):
            return "bad node authentication (is the cluster secret the same on every node?)"
        now = self.clock()
        try:
            sent = int(stamp)
        except ValueError:
            return "bad node authentication time"
        if abs(now - sent) > SKEW:
            return f"node authentication {now - sent:+.0f} s off (are the nodes' clocks in sync?)"
        if sent < self.started - RESTART_SLACK:
            return "node authentication signed before this node started (replayed?)"
        while self.seen and (
            next(iter(self.seen.values())) < now - 2 * SKEW or len(self.seen) >= self.max_nonces
        ):
            self.seen.popitem(last=False)
        if nonce in self.seen:
            return "replayed node authentication"
        self.seen[nonce] = now
        return None
