"""Widgets of the dashboard, one family per module."""
