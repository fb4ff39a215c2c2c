"""A relay's refusal of a name, said in the dashboard's words (the relay's are the CLI's)."""

from __future__ import annotations

import re
from dataclasses import dataclass

HELD_FOR = re.compile(r"for ([0-9]{1,6}) more seconds")  # ASCII digits only
MAX_WAIT = 24 * 3600
RETRY_UNKNOWN = 10  # seconds to wait before retrying when the relay did not say how long


@dataclass(frozen=True, slots=True)
class NameRefusal:
    """What the dashboard says and offers when the relay refuses a profile's name."""

    message: str
    wait: int | None  # seconds until a held name is free (then the dashboard retries)
    takeover: bool  # whether to offer "take it over?" (only with an agent token)


def name_refusal(code: str, relay_message: str, name: str, has_token: bool) -> NameRefusal | None:
    """The dashboard's reading of a name refusal; None for refusals of another kind.

    The relay's message advises flags (``--subdomain``, ``--takeover``): in the dashboard the
    same choices are the profile's public name (``e``) and the takeover question.
    """
    if code == "name_held":
        found = HELD_FOR.search(relay_message)
        # +1: the relay rounds down. A relay's figure is capped: it only sets when to retry.
        wait = min(int(found.group(1)) + 1, MAX_WAIT) if found else RETRY_UNKNOWN
        message = (
            f"the name '{name}' is held for the agent that had it (it lost its connection); "
            "it is started again when the name is free (the sidebar counts down)"
        )
        return NameRefusal(message, wait, has_token)
    if code == "name_taken":
        message = (
            f"the name '{name}' is in use by another agent; "
            "press e to give this profile another public name"
        )
        return NameRefusal(message, None, has_token)
    if code == "name_reserved":
        message = (
            f"the name '{name}' is reserved on this relay for another token; "
            "press e to give this profile another public name"
        )
        return NameRefusal(message, None, False)
    return None
