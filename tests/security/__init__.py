"""Hostile input against the relay: framing differentials, floods, resource holding."""
