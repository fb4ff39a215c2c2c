"""`molehill service status` as lines for a terminal."""

from __future__ import annotations

from typing import Any


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def status_lines(status: dict[str, Any], header: bool) -> list[str]:
    lines = []
    if header:
        lines.append(
            f"molehill service: pid {status['pid']}, up {duration(status['uptime'])}, "
            f"profiles {status['profiles']}"
        )
        api = f" · API {status['api']}" if status.get("api") else ""
        lines.append(f"socket {status['socket']} · log {status['log']}{api}")
        lines.append(f"relay {status['relay']}")
    tunnels = status.get("tunnels", [])
    if not tunnels:
        lines.append("no profiles (`molehill profiles add` adds one)")
        return lines
    rows = [("NAME", "STATE", "URL", "UPTIME", "REQUESTS", "ERRORS")]
    for t in tunnels:
        rows.append(
            (
                t["name"],
                t["state"],
                _with_links(t["url"], t.get("links", "")) or t["error"] or "-",
                duration(t["uptime"]),
                str(t["requests"]),
                str(t["errors"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return lines


def _with_links(url: str, links: str) -> str:
    """The tunnel's URL, and how many of its links are up when it has several."""
    return f"{url} ({links})" if url and links else url
