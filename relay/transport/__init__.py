"""asyncio adapters shared by relay and agent: they only move bytes between sockets and the wire."""
