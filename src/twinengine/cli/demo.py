"""``twin demo``: the engine's capabilities at work on the embedded default, with nothing to start by hand."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from twinengine.cli._common import console, state_of

_MAX_HOURS = 24 * 365



def said(console: Any, text: str) -> None:
    """One line the demo says, as written: the engine's words are not console markup (``pip install -e '.[ml]'``
    lost its ``[ml]`` when they were)."""
    if text.startswith("✗ "):  # a part of the story that failed (DemoContext.fail)
        console.print(f"[bold red]✗[/bold red] {escape(text[2:])}", highlight=False)
    else:
        console.print(f"[green]✓[/green] {escape(text)}", highlight=False)

def _hours(value: float) -> float:
    """Checked here, not by the option's range: NaN fails every comparison, and the range check named the
    upper bound for it."""
    if not 1.0 <= value <= _MAX_HOURS:  # false for NaN too
        raise typer.BadParameter(f"{value} hours: give from 1 to {_MAX_HOURS}")
    return value


def demo(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Keep the engine's data here (default: a new "
                                                                  "temporary folder)."),
    hours: float = typer.Option(72.0, "--hours", callback=_hours,
                                help=f"Simulated hours of gauge readings, 1 to {_MAX_HOURS}."),
    step_minutes: int = typer.Option(15, "--step-minutes", min=1, max=24 * 60, help="Minutes between readings."),
    seed: int = typer.Option(7, "--seed", help="Seed of the simulated weather."),
    plot: Path | None = typer.Option(None, "--plot", help="Where to write the level plot (PNG)."),
    serve: bool = typer.Option(False, "--serve", help="Keep serving the engine and its portal (/ui/) after the "
                                                      "story, until Ctrl-C."),
    app: str = typer.Option("river-reach", "--app", help="Whose story: river-reach (the default demo), "
                                                         "lattice-phi4 (flow-based sampling of phi^4 theory), "
                                                         "virgo-glitch (a noise twin of an interferometer), "
                                                         "climate-extremes (extremes under warming pathways), "
                                                         "climate-impacts (drought and fire danger under rain "
                                                         "scenarios), pulsar-rfi (interference flagging and "
                                                         "pulsar folding) or calo-fastsim (a shower "
                                                         "simulator and its generative surrogate)."),
    lattice_size: int = typer.Option(4, "--lattice-size", min=2, max=64, help="lattice-phi4: L of the twin."),
    epochs: int = typer.Option(8, "--epochs", min=1, max=10_000, help="lattice-phi4: epochs of the flow's "
                                                                       "training (50 steps each)."),
    tune_trials: int = typer.Option(3, "--tune-trials", min=0, max=100, help="lattice-phi4: Optuna trials (one "
                                                                             "epoch each) over the flow's size "
                                                                             "before training; 0: none."),
) -> None:
    """Publish river-reach, create a twin, simulate its gauges, time-travel, fork a what-if, plot it.

    With --app lattice-phi4: search a normalising flow's size for 2D phi^4 theory, train it, sample it, compare
    with a local Metropolis chain. With --app virgo-glitch: stream ten interferometer channels, join them,
    veto glitches, publish the cleaned strain. With --app climate-extremes: track planted cyclones, run three
    warming pathways as ensembles and compare the recovered index trends with the planted ones. With --app
    climate-impacts: check the Fire Weather Index system against the cffdrs table, run four rain scenarios as
    ensembles and compare the drought frequency with its closed form and the events with the planted droughts.
    With --app pulsar-rfi: train an interference flagger, stream a filterbank observation, flag, dedisperse,
    classify its chunks and fold the pulsar. With --app calo-fastsim: simulate calorimeter showers (HDF5 and
    ROOT), train a generative surrogate and score it with the CaloChallenge metrics."""
    began = time.perf_counter()
    from twinengine.demo.context import DemoOptions
    from twinengine.demo.runner import APP_CHAPTERS, run_demo

    loaded = time.perf_counter() - began  # the engine's libraries, a phase of its own on a cold install
    out = state_of(ctx)
    if app not in APP_CHAPTERS:
        raise typer.BadParameter(f"{app!r} has no demo; choose one of {', '.join(APP_CHAPTERS)}", param_hint="--app")
    options = DemoOptions(data_dir=data_dir, hours=hours, step_minutes=step_minutes, seed=seed, plot=plot,
                          serve=serve, app=app, lattice_size=lattice_size, epochs=epochs, tune_trials=tune_trials)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, disable=out.as_json) as bars:

        def say(text: str) -> None:
            if not out.as_json:
                said(bars.console, text)

        def track(description: str, total: int) -> Any:
            task = bars.add_task(description, total=total)
            return lambda n: bars.advance(task, n)

        def finished(result: Any) -> None:
            bars.stop()
            if out.as_json:
                print(json.dumps(result.facts, indent=2, default=str), flush=True)
                return
            table = Table(title="twin demo: summary", title_justify="left", show_header=False)
            table.add_column(style="bold", no_wrap=True)
            table.add_column()
            for label, text in result.summary:
                table.add_row(label, text)
            console.print(table)

        say(f"loaded the engine's libraries in {loaded:.1f} s")
        result = run_demo(options, say=say, track=track, finished=finished)
    failed = result.facts.get("failed") or {}
    if failed and not out.as_json:  # said again after the summary, where a reader looks last
        console.print(f"[bold red]✗ {len(failed)} chapter(s) failed:[/bold red] {escape(', '.join(failed))}")
