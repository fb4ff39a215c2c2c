"""The relay server: public listener, agents' listener, admission, names and leases."""

from relay.server.relay import Lease, Relay
from relay.server.settings import RelayConfigError, RelaySettings, is_loopback

__all__ = ["Lease", "Relay", "RelayConfigError", "RelaySettings", "is_loopback"]
