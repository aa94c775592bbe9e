"""``twin runs rerun RUN|CRATE.zip``: start the rerun, wait for it, and show its diff against the original."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twinengine.cli._common import console, table
from twinengine.crates.schemas import RerunDiff

__all__ = ["rerun_and_show", "show_diff"]

MARKS = {"identical": "[green]identical[/green]", "within_tolerance": "[yellow]within tolerance[/yellow]",
         "different": "[red]different[/red]"}


def show_diff(diff: RerunDiff) -> None:
    console.print(f"rerun [bold]{diff.rerun}[/bold] of {diff.original} ({diff.kind}, {diff.status}): "
                  f"{MARKS[diff.verdict]}", highlight=False)
    rows = []
    for out in diff.outputs:
        largest = ", ".join(f"{k} {v:.3g}" for k, v in (out.largest_difference or {}).items() if v)
        rows.append((out.name, MARKS[out.verdict], (out.original_sha256 or "-")[:16], (out.rerun_sha256 or "-")[:16],
                     largest or out.why or ""))
    console.print(table("outputs", ["output", "verdict", "original sha256", "rerun sha256", "largest difference"],
                        rows))
    for reason in diff.why:
        console.print(f"why: {reason}", highlight=False)


def rerun_and_show(out: Any, run: str, *, wait: bool, timeout: float) -> None:
    path = Path(run)
    with out.client() as client:
        if run.endswith(".zip") or path.is_file():
            started = client.crates.rerun_crate(path)
        else:
            started = client.crates.rerun(run)
        if not wait:
            out.emit(started, lambda: console.print(f"rerun {started.rerun} of {started.original} started"))
            return
        diff = client.crates.wait_diff(started.rerun, timeout=timeout)
    out.emit(diff, lambda: show_diff(diff))
