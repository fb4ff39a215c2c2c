"""The tunnel agent: one websocket to the relay, one local connection per stream."""

from relay.agent.client import (
    DEFAULT_RELAY,
    Agent,
    AgentLink,
    AgentSettings,
    LocalConnection,
    Refused,
)
from relay.agent.connect_errors import Unreachable

__all__ = [
    "DEFAULT_RELAY",
    "Agent",
    "AgentLink",
    "AgentSettings",
    "LocalConnection",
    "Refused",
    "Unreachable",
]
