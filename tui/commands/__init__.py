"""Subcommands of the molehill command line, one module each."""
