"""Runs the commands that profiles name: supervision, health checks, URLs wired between them."""
