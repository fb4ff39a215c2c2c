"""The results as a text table (for the terminal and the README) and as a JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from scenarios import Metric, ScenarioResult


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(metric: Metric) -> str:
    ratio = metric.ratio
    if ratio is None:
        return "-"
    return f"{ratio:.2f}" if ratio < 10 else f"{ratio:.1f}"


def table(results: list[ScenarioResult]) -> str:
    """A fixed-width table: scenario | direct | tunnel | tunnel/direct."""
    rows = [("scenario", "direct", "tunnel", "tunnel/direct")]
    for result in results:
        for m in result.metrics:
            rows.append((m.label, _fmt(m.direct, m.digits), _fmt(m.tunnel, m.digits), _ratio(m)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  note: {r.title}: {note}" for r in results for note in r.notes]
    return "\n".join(lines + notes)


CPU_ROLES = ("app", "relay", "agent", "load", "kernel", "others")
NOT_ROLES = {"wall", "attempts"}


def cpu_table(results: list[ScenarioResult]) -> str:
    """CPU used during each run, as a share of one core (from cpuwatch.py). Roles beyond the
    usual ones (the dashboard, its terminal, the load agents) get columns of their own."""
    extra: list[str] = []
    for result in results:
        for run in result.runs.values():
            for role in run.cpu or {}:
                if role not in CPU_ROLES and role not in NOT_ROLES and role not in extra:
                    extra.append(role)
    roles = (*CPU_ROLES[:3], *extra, *CPU_ROLES[3:])
    rows: list[tuple[str, ...]] = [("run", *roles)]
    for result in results:
        for side, run in result.runs.items():
            cpu, wall = run.cpu, run.cpu.get("wall") if run.cpu else None
            if not wall:
                continue
            rows.append(
                (
                    f"{result.key} {side}",
                    *(f"{cpu[r] / wall:.0%}" if r in cpu else "-" for r in roles),
                )
            )
    if len(rows) == 1:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            [row[0].ljust(widths[0])]
            + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        )
        for row in rows
    ]
    return (
        "CPU used during each run (share of one core; load = load generator + run.py, "
        "kernel = kernel threads and interrupts, others = every other process)\n" + "\n".join(lines)
    )


def markdown_table(results: list[ScenarioResult]) -> str:
    """The same table in Markdown, for benchmarks/README.md."""
    lines = ["| scenario | direct | tunnel | tunnel/direct |", "|---|--:|--:|--:|"]
    for result in results:
        for m in result.metrics:
            lines.append(
                f"| {m.label} | {_fmt(m.direct, m.digits)} | {_fmt(m.tunnel, m.digits)} "
                f"| {_ratio(m)} |"
            )
    return "\n".join(lines)


def targets_text(checks: list[dict]) -> str:
    lines = []
    for c in checks:
        verdict = {True: "met", False: "MISSED"}.get(c["ok"], "unsure")
        digits = c.get("digits", 3)
        unit = f" {c['unit']}" if c.get("unit") else ""
        lines.append(
            f"  {verdict:<6}  {c['label']}: {c['value']:,.{digits}f}{unit} (target "
            f"{c['op']} {c['limit']:,g}{unit})"
            + ("; impossible value, a disturbed run: run again" if c["ok"] is None else "")
        )
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    """Write atomically (a .tmp file renamed over the old results)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
