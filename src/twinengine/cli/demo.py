"""``twin demo``: the whole foundation at work on the embedded default, with nothing to start by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from twinengine.cli._common import console, state_of


def demo(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Keep the engine's data here (default: a new "
                                                                  "temporary folder)."),
    hours: float = typer.Option(72.0, "--hours", min=1.0, max=24 * 365, help="Simulated hours of gauge readings."),
    step_minutes: int = typer.Option(15, "--step-minutes", min=1, max=24 * 60, help="Minutes between readings."),
    seed: int = typer.Option(7, "--seed", help="Seed of the simulated weather."),
    plot: Path | None = typer.Option(None, "--plot", help="Where to write the level plot (PNG)."),
) -> None:
    """Publish river-reach, create a twin, simulate its gauges, time-travel, fork a what-if, plot it."""
    from twinengine.demo.runner import DemoOptions, run_demo
    out = state_of(ctx)
    options = DemoOptions(data_dir=data_dir, hours=hours, step_minutes=step_minutes, seed=seed, plot=plot)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False, disable=out.as_json) as bar:
        task = bar.add_task("gauges reporting", total=None, visible=False)

        def say(text: str) -> None:
            if not out.as_json:
                bar.console.print(f"[green]✓[/green] {text}", highlight=False)

        result = run_demo(options, say=say, progress=lambda n: bar.advance(task, n),
                          on_total=lambda total: bar.update(task, total=total, visible=True))
    if out.as_json:
        print(_as_json(result))
    else:
        console.print(_summary(result))


def _summary(r: Any) -> Table:
    t = Table(title="twin demo: summary", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    level = r.last_state.reported
    rate = r.revisions_written / r.write_seconds if r.write_seconds else 0.0
    t.add_row("engine", f"{r.url} (in-process), store {r.backend}, data {r.data_dir}")
    t.add_row("app", f"{r.app_ref}, sha256 {r.app_sha256[:16]}…")
    t.add_row("twin", f"{r.twin.name} ({r.twin.id}), owner {r.twin.owner}, head revision {r.twin.head_revision}")
    t.add_row("revisions written", f"{r.revisions_written} gauge reports in {r.write_seconds:.2f} s ({rate:.0f}/s)")
    t.add_row("last state", ", ".join(f"{p} {v.value}{' ' + v.unit if v.unit else ''}" for p, v in level.items()))
    t.add_row("peak level", f"{r.peak_level[1]:.2f} m at {r.peak_level[0]:%Y-%m-%d %H:%M} UTC; alert on "
                            f"{r.alert_steps} of {r.steps} steps")
    t.add_row("time travel", f"at {r.travel_time:%Y-%m-%d %H:%M} UTC: level {r.travel_level:.2f} m (revision "
                             f"{r.travel_revision}); {r.diff_changes} properties changed since")
    t.add_row("what-if fork", f"{r.fork.name} from revision {r.fork_revision}: peak {r.fork_peak_level:.2f} m vs "
                              f"{r.observed_peak_after_fork:.2f} m observed; origin untouched: {r.origin_untouched}")
    t.add_row("audit log", f"{r.audit_events} events")
    t.add_row("plot", str(r.plot))
    t.add_row("time taken", f"{r.seconds:.1f} s")
    return t


def _as_json(r: Any) -> str:
    import json

    return json.dumps({
        "data_dir": str(r.data_dir), "backend": r.backend, "app": r.app_ref, "app_sha256": r.app_sha256,
        "twin": r.twin.model_dump(mode="json"), "fork": r.fork.model_dump(mode="json"),
        "revisions_written": r.revisions_written, "write_seconds": r.write_seconds,
        "last_state": r.last_state.model_dump(mode="json"),
        "peak_level": {"time": r.peak_level[0].isoformat(), "level_m": r.peak_level[1]},
        "alert_steps": r.alert_steps, "steps": r.steps,
        "time_travel": {"at": r.travel_time.isoformat(), "level_m": r.travel_level, "revision": r.travel_revision,
                        "changes_since": r.diff_changes},
        "what_if": {"revision": r.fork_revision, "peak_level_m": r.fork_peak_level,
                    "observed_peak_level_m": r.observed_peak_after_fork, "origin_untouched": r.origin_untouched},
        "audit_events": r.audit_events, "plot": str(r.plot), "seconds": r.seconds,
    }, indent=2)
