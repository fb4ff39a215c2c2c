"""Small text formatting shared by the command line and the dashboard."""

from __future__ import annotations


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n}B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f}KB"
    if n < 1024**3:
        return f"{n / (1024 * 1024):.1f}MB"
    return f"{n / 1024**3:.2f}GB"


def status_class(status: int) -> str:
    """'2xx'.. '5xx', or '---' for an exchange that got no response."""
    if not status:
        return "---"
    return f"{status // 100}xx"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.2f} s"
