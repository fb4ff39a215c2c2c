"""Tests of profiles that run their apps: commands, health, URLs wired between profiles."""
