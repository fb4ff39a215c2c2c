"""What the cluster keeps in Redis, and how a node reads Redis's answers (sans-I/O).

One hash per tunnel name, ``molehill:name:NAME``, with a TTL:
  node    the id of the node whose agent holds the name (the first of ``nodes``)
  nodes   the ids of every node the agent holds it through, space-separated (an agent with
          several links, ``--relay`` given more than once, holds it through each)
  state   "live" (the agent is connected there) or "held" (lost; kept for its resume token)
  label   the label of the agent token it was opened with ("" on an open relay)
  resume  the SHA-256 of the tunnel's resume token (never the token itself)
  policy  JSON of the tunnel's per-request options (basic_auth, allow, deny, protocol), which
          the node a visitor reaches applies
One set per agent token, ``molehill:label:LABEL``: the keys of the names taken with it (some may
have expired: the claim script, which counts its live ones against ``max_tunnels``, drops them).
One key per running node, ``molehill:node:ID`` = the node's URL, with a short TTL that the node
renews: a "live" name whose node key is gone belongs to a dead node and reads as "held".
One heartbeat hash per node, ``molehill:seen:ID`` (url, seen: Redis's clock in ms at the last
renewal, tunnels: how many live ones, stopped: set when it stopped on purpose), kept a day.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from relay.cluster.registry import Claim

PREFIX = "molehill:"
NAME_PREFIX = PREFIX + "name:"
NODE_PREFIX = PREFIX + "node:"
LABEL_PREFIX = PREFIX + "label:"  # a set per agent token: its names, for max_tunnels
SEEN_PREFIX = PREFIX + "seen:"
TOKENS_KEY = (
    PREFIX + "tokens"
)  # shared agent tokens: label -> JSON entry (relay/server/shared_tokens.py)


def name_key(name: str) -> str:
    return NAME_PREFIX + name


def label_key(label: str) -> str:
    return LABEL_PREFIX + label


def node_key(node_id: str) -> str:
    return NODE_PREFIX + node_id


def seen_key(node_id: str) -> str:
    return SEEN_PREFIX + node_id


def resume_digest(resume: str) -> str:
    """What Redis keeps of a resume token: a digest, so reading Redis does not give names away.

    Compared inside Redis; comparing digests of a secret leaks nothing useful about it.
    """
    if not resume:
        return ""
    return hashlib.sha256(resume.encode("utf-8", "surrogatepass")).hexdigest()


POLICY_KEYS = ("basic_auth", "allow", "deny", "protocol")


def policy_of(options: dict[str, Any]) -> str:
    """The HELLO options that other nodes apply to this tunnel's visitors, as JSON."""
    return json.dumps({k: options[k] for k in POLICY_KEYS if k in options}, sort_keys=True)


def options_from_policy(text: str) -> dict[str, Any]:
    """A record's policy back as HELLO options; ValueError for anything but a JSON object of
    the known keys (a corrupt or foreign record: its tunnel is then not served from here)."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        raise ValueError("the tunnel's policy in Redis is not JSON") from None
    if not isinstance(value, dict) or set(value) - set(POLICY_KEYS):
        raise ValueError("the tunnel's policy in Redis has unknown fields")
    return value


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def claim_from_reply(name: str, reply: object) -> Claim:
    """The claim script's reply (``[how, detail]``) as a Claim, with the refusal's words.

    Anything else (a foreign script, a corrupt key) refuses, and says so, rather than grant.
    """
    if not isinstance(reply, Sequence) or isinstance(reply, str | bytes) or len(reply) != 2:
        return unavailable(f"unexpected answer from Redis: {_text(reply)[:80]}")
    how, detail = _text(reply[0]), _text(reply[1])
    if how in ("fresh", "resumed", "takeover", "joined"):
        return Claim(how)
    if how == "taken":
        return Claim(
            code="name_taken",
            message=f"the name '{name}' is in use by another agent (on relay node "
            f"{detail[:63]}); choose another --subdomain",
        )
    if how == "too_many":
        return Claim(
            code="too_many_tunnels",
            message=f"this agent token has {detail[:12]} tunnel(s) open across the relay "
            "cluster, as many as it may have at once (its max_tunnels); stop one first",
        )
    if how == "held":
        try:
            wait = max(0, int(detail) // 1000)
        except ValueError:
            wait = 0
        return Claim(
            code="name_held",
            message=f"the name '{name}' is held for its previous agent for {wait} more "
            "seconds; choose another --subdomain",
        )
    return unavailable(f"unexpected answer from Redis: {how[:40]}")


def unavailable(why: str) -> Claim:
    """The refusal when the registry cannot answer: no name is given without it."""
    return Claim(
        code="cluster_unavailable",
        message=f"the relay cannot reach its cluster registry ({why}); new tunnel names are "
        "refused until it is back (tunnels already open keep working): try again shortly",
    )


def lost_names(reply: object) -> list[str]:
    """The renew script's reply: the keys of names another node holds now, as names."""
    if not isinstance(reply, Sequence) or isinstance(reply, str | bytes):
        return []
    names = []
    for item in reply:
        key = _text(item)
        if key.startswith(NAME_PREFIX):
            names.append(key[len(NAME_PREFIX) :])
    return names
