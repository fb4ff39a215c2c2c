"""The tunnel agent: one websocket to the relay, one local connection per stream."""

from relay.agent.client import Agent, AgentLink, LocalConnection, Refused
from relay.agent.connect_errors import Unreachable
from relay.agent.settings import DEFAULT_RELAY, AgentSettings

__all__ = [
    "DEFAULT_RELAY",
    "Agent",
    "AgentLink",
    "AgentSettings",
    "LocalConnection",
    "Refused",
    "Unreachable",
]
