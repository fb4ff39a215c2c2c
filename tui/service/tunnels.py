"""A profile's tunnel settings and its entry in the local API, for the dashboard and the service."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from inspector.api import TunnelInfo
from profiles.model import Profile
from relay.agent import AgentSettings
from relay.host import TunnelStatus


def agent_settings(profile: Profile, takeover: bool = False) -> AgentSettings:
    """The agent settings of ``profile``'s tunnel (the host fills in the relay and token)."""
    return AgentSettings(
        local_port=profile.port,
        local_host=profile.host,
        name=profile.public_name,
        relay="",
        basic_auth=profile.basic_auth,
        allow=profile.allow,
        deny=profile.deny,
        takeover=takeover,
        protocol=profile.protocol,
        remote_port=profile.remote_port,
        local_tls=profile.tls,
        local_insecure=profile.local_insecure,
    )


def api_tunnels(
    statuses: Mapping[str, TunnelStatus], profile: Callable[[str], Profile | None]
) -> list[TunnelInfo]:
    """The profiles' tunnels that are online, for /api/tunnels (ngrok's shape)."""
    tunnels = []
    for name, status in statuses.items():
        found = profile(name)
        if found is None or not status.url:
            continue
        secrets = dict(found.webhook_secrets)
        tunnels.append(TunnelInfo(name, status.url, found.local_url, found.local_insecure, secrets))
    return tunnels
