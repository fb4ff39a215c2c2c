"""molehill's tunnel core: the wire protocol, the relay server and the tunnel agent."""

__version__ = "0.1.0"
