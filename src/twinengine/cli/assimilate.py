"""``twin assimilate``: correct a twin's state from the observations that arrived since its last cycle, with a
progress bar over the cycles and a summary of what the filter saw (innovations against what it expected)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from twinengine.cli._common import console, err_console, state_of, table
from twinengine.twin_assimilation.summary import summary

__all__ = ["assimilate"]

HISTORY_FORMATS = {".csv": "csv", ".parquet": "parquet", ".arrow": "arrow", ".arrows": "arrow"}


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _auto(out: Any, twin: str, on: str, every: str | None) -> None:
    """Set (or show) when the twin's cycles run by themselves."""
    if on not in ("arrival", "schedule", "off", "show"):
        err_console.print(f"--auto: {on!r} is not one of arrival, schedule, off, show")
        raise typer.Exit(2)
    with out.client() as client:
        got = client.assimilation.schedule(twin) if on == "show" else client.assimilation.set_schedule(
            twin, on, every)

    def render() -> None:
        every_text = "-" if got.every_seconds is None else f"{got.every_seconds:g} s"
        console.print(table(f"{got.twin}: assimilation {got.on}", ["on", "every", "set by", "runs as",
                                                                   "last pass", "cycles", "failures"],
                            [[got.on, every_text, got.source, got.owner,
                              got.last_run_at.isoformat() if got.last_run_at else "-", got.last_cycles,
                              got.failures]]))
        if got.last_error:
            console.print(f"[red]last failure ({got.last_error_at}): {got.last_error}[/red]")

    out.emit(got.model_dump(mode="json"), render)


def _history(out: Any, twin: str, path: Path) -> None:
    """Write the twin's analyses, a row per cycle, to ``path`` (its suffix says the format)."""
    fmt = HISTORY_FORMATS.get(path.suffix.lower())
    if fmt is None:
        err_console.print(f"--history: {path.name!r} ends in none of {', '.join(HISTORY_FORMATS)} (the format)")
        raise typer.Exit(2)
    with out.client() as client:
        data = client.assimilation.history(twin, format=fmt)
    try:
        path.write_bytes(data)
    except OSError as exc:
        err_console.print(f"--history: cannot write {path}: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    out.emit({"twin": twin, "path": str(path), "format": fmt, "bytes": len(data)},
             lambda: console.print(f"{twin}: its analyses, a row per cycle, written to {path} ({fmt}, "
                                   f"{len(data):,} bytes)"))


def assimilate(ctx: typer.Context, twin: str = typer.Argument(..., help="The twin (id or name)."),
               method: str | None = typer.Option(
                   None, "--method", "-m", help="The filter: etkf (ensemble square root), enkf (perturbed "
                                                "observations), letkf (localised, for spatial state), pf "
                                                "(particle filter), 3dvar (static background). Default: the "
                                                "app's."),
               members: int | None = typer.Option(None, "--members", "-n", help="Ensemble size (default: the "
                                                                                "app's, then the kept ensemble's; "
                                                                                "another size redraws it)."),
               seed: int | None = typer.Option(None, "--seed", help="Random seed: the same seed gives the same "
                                                                    "analysis (default: the app's)."),
               cycles: int | None = typer.Option(None, "--cycles", "-c", min=1, help="At most this many cycles "
                                                                                     "(default: every new "
                                                                                     "observation time)."),
               what_if: str | None = typer.Option(None, "--what-if", help="Run on a new fork of this name; the "
                                                                          "twin's own state is not touched."),
               auto: str | None = typer.Option(None, "--auto", help="Instead of running cycles now: run them by "
                                                                    "themselves on arrival of observations "
                                                                    "(arrival), every --every (schedule), or "
                                                                    "only on request (off); show: how it is set "
                                                                    "and how its last pass ended."),
               every: str | None = typer.Option(None, "--every", help="With --auto schedule: the interval (1h, "
                                                                      "PT30M); with arrival: the least time "
                                                                      "between two passes."),
               history: Path | None = typer.Option(None, "--history", help="Instead of running cycles: write the "
                                                                           "twin's analyses, a row per cycle "
                                                                           "(mean, std and quantiles of each "
                                                                           "state entry), to this file: .csv, "
                                                                           ".parquet or .arrow.")) -> None:
    """Correct a twin's state from its observations (data assimilation).

    Each cycle advances the twin's ensemble with the app's model to the next observation time.
    It compares the forecast with what the sensors saw (the innovation: observation minus forecast).
    The analysis (the corrected state, with its spread) becomes a new revision of the twin's state.
    The filter and its tuning come from the app's `assimilation:` section (docs/assimilation.md)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    out = state_of(ctx)
    if auto is not None:
        _auto(out, twin, auto, every)
        return
    if history is not None:
        _history(out, twin, history)
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with out.client() as client, Progress(*columns, console=err_console, disable=out.as_json) as bars:
        task = bars.add_task(f"assimilating {twin}", total=None)

        def moved(count: int, total: int) -> None:
            bars.update(task, completed=count, total=max(total, 1))

        # requests of about a second each, the bar moving after each (the SDK sizes them)
        result = client.assimilation.run(twin, method=method, members=members, seed=seed,
                                         cycles=cycles if cycles is not None else sys.maxsize, what_if=what_if,
                                         progress=moved)
    done, target = result.cycles, result.twin
    facts = summary(done)

    def render() -> None:
        if not done:
            console.print(f"{target}: no new observations since the last cycle")
            return
        console.print(table(f"{target}: {facts['cycles']} cycles", ["cycles", "obs used", "innovation mean",
                                                                    "innovation RMS", "expected RMS", "ratio",
                                                                    "analysis spread", "revision"],
                            [[facts["cycles"], facts["observations"], _num(facts["innovation_mean"]),
                              _num(facts["innovation_rms"]), _num(facts["expected_rms"]), _num(facts["ratio"]),
                              _num(facts["spread"]), facts["revision"]]]))
        if facts["ratio"] is not None and facts["ratio"] > 2:
            console.print("[yellow]innovations are more than twice what the filter expected: a sensor may be "
                          "bad, or the filter diverging (more inflation or members)[/yellow]")
        if result.pending:
            console.print(f"{result.pending} observation times still wait: run again to assimilate them")

    out.emit(result.model_dump(mode="json") | {"summary": facts}, render)
