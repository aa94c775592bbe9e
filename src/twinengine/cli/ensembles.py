"""``twin ensemble run|show``, ``twin scenario run`` and ``twin compare``: ensembles of a twin's workflow,
what-if branches from a scenario file, and branches side by side (table, JSON, PNG)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from twinengine.cli._common import Output, console, err_console, parse_assignments, state_of, table
from twinengine.client import Client
from twinengine.ensembles.compare import Comparison
from twinengine.ensembles.schemas import EnsembleRead
from twinengine.errors import ValidationFailed

__all__ = ["app", "compare", "scenario_app"]

app = typer.Typer(help="Ensembles of a twin's workflow: members, statistics, progress.", no_args_is_help=True)
scenario_app = typer.Typer(help="What-if branches from a scenario file (forks, runs).", no_args_is_help=True)


def _bars(out: Output) -> Progress:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    return Progress(*columns, console=err_console, disable=out.as_json)


def _show(read: EnsembleRead) -> None:
    console.print(f"[bold]{read.id}[/bold] {read.workflow} of {read.twin_name}: [bold]{read.status.value}[/bold] "
                  f"({read.progress:.0f}%), {len(read.members)} members ({read.mode}"
                  + (f", seed {read.seed}" if read.seed is not None else "") + ")", highlight=False)
    if read.error:
        console.print(f"[red]{read.error.get('code')}[/red]: {read.error.get('message')}", highlight=False)
    stats = read.statistics
    if not stats:
        return
    peak = stats["peak"]
    rows = [("mean", peak["mean"]), ("spread (sd)", peak["spread"])]
    rows += [(f"quantile {q}", v) for q, v in peak["quantiles"].items()]
    if peak.get("exceedance") is not None:
        rows.append((f"P(peak > {stats['threshold']:g})", f"{peak['exceedance']:.0%}"))
    console.print(table("peak over the members", ["statistic", "value"],
                        [(k, f"{v:.4g}" if isinstance(v, float) else v) for k, v in rows]))
    if "state_revision" in stats:
        console.print(f"written to the twin's state, revision {stats['state_revision']}", highlight=False)
    for asset in read.assets:
        console.print(f"output {asset['name']} ({asset['size']} bytes, sha256 {asset['sha256'][:16]}…)",
                      highlight=False)


@app.command("run")
def run(
    ctx: typer.Context,
    twin: str = typer.Argument(..., help="Twin name or id."),
    workflow: str = typer.Argument(..., help="Workflow declared by the twin's app."),
    members: int | None = typer.Option(None, "--members", "-n", help="Members with perturbed parameters."),
    param: list[str] = typer.Option([], "--param", "-p", help="Parameter every member shares: key=value."),
    perturb: list[str] = typer.Option([], "--perturb", help="name=JSON distribution, e.g. "
                                      "'rain_factor={\"distribution\":\"uniform\",\"rel\":0.2}' (default: the app's)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the draws (default: random, reported)."),
    fork: list[str] = typer.Option([], "--fork", help="One member per twin (repeat)."),
    sets: Path | None = typer.Option(None, "--sets", help="JSON/YAML file: a list of parameter sets, one member each."),
    threshold: float | None = typer.Option(None, "--threshold", help="Default: the app's (the alert level)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow it with a progress bar (default)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG of the members, mean and band."),
) -> None:
    """Run a workflow of a twin over N members (perturbed parameters, forks or parameter sets)."""
    import yaml

    out = state_of(ctx)
    parameter_sets = yaml.safe_load(sets.read_text()) if sets is not None else None
    if parameter_sets is not None and not isinstance(parameter_sets, list):
        raise ValidationFailed.one("--sets", "the file must hold a list of parameter maps")
    with out.client() as client:
        distributions = parse_assignments(perturb, option="--perturb") or None
        started = client.ensembles.run(twin, workflow, members=members,
                                       parameters=parse_assignments(param, option="--param"), perturb=distributions,
                                       seed=seed, forks=fork or None, parameter_sets=parameter_sets,
                                       threshold=threshold)
        final = started
        if wait:
            with _bars(out) as bars:
                task = bars.add_task(f"{workflow} x {len(started.members)} ({started.id})", total=100)

                def show(read: EnsembleRead) -> None:
                    done = sum(m.status.value == "finished" for m in read.members)
                    bars.update(task, completed=read.progress,
                                description=f"{workflow}: {read.status.value}, {done}/{len(read.members)} members")

                final = client.ensembles.wait(started.id, on_progress=show)
        if plot is not None and final.statistics:
            _plot(client, final, plot)

    def render() -> None:
        _show(final)
        if plot is not None and final.statistics:
            console.print(f"plot: {plot}")

    out.emit(final, render)
    if wait and final.status.value != "finished":
        raise typer.Exit(1)


def _plot(client: Client, read: EnsembleRead, path: Path) -> None:
    from twinengine.ensembles.plot import plot_ensemble

    values = [client.workflows.get(m.run_id).value for m in read.members]
    plot_ensemble(path, [v for v in values if isinstance(v, list)], read.statistics or {},
                  title=f"{read.workflow} of {read.twin_name}: ensemble {read.id}")


@app.command("show")
def show(ctx: typer.Context, ensemble: str = typer.Argument(..., help="Ensemble id (ens-...).")) -> None:
    """An ensemble: status, percent, members and statistics."""
    out = state_of(ctx)
    with out.client() as client:
        read = client.ensembles.get(ensemble)
    out.emit(read, lambda: _show(read))


@scenario_app.command("run")
def scenario_run(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Scenario file (YAML or JSON)."),
    twin: str | None = typer.Option(None, "--twin", help="Fork this twin instead of the file's."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the branches' runs (default)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG comparing the branches."),
) -> None:
    """Fork the twin once per branch of a scenario file, run the workflow on every fork, compare them."""
    out = state_of(ctx)
    with out.client() as client:
        started = client.ensembles.scenario(file.read_text(), twin=twin)
        statuses: dict[str, str] = {}
        if wait:
            with _bars(out) as bars:
                for branch in started.branches:
                    task = bars.add_task(f"{branch.name} ({branch.run_id})", total=100)

                    def show(read: Any, task: Any = task, name: str = branch.name) -> None:
                        bars.update(task, completed=read.progress, description=f"{name}: {read.status.value}")

                    statuses[branch.name] = client.workflows.wait(branch.run_id, on_progress=show).status.value
        comparison = client.ensembles.compare([started.twin, *[b.fork for b in started.branches]],
                                              properties=started.compare or None) if wait else None
    if plot is not None and comparison is not None:
        from twinengine.ensembles.plot import plot_comparison

        plot_comparison(plot, comparison, title=f"scenario {started.name or file.stem} from {started.twin}")
    compared = comparison.model_dump(mode="json") if comparison else None
    result = started.model_dump(mode="json") | {"statuses": statuses, "comparison": compared}

    def render() -> None:
        console.print(table(f"scenario {started.name or file.stem} from {started.twin}",
                            ["branch", "fork", "run", "kind", "status"],
                            [(b.name, b.fork, b.run_id, b.kind, statuses.get(b.name, "queued"))
                             for b in started.branches]))
        if comparison is not None:
            _render_comparison(comparison)
        if plot is not None and comparison is not None:
            console.print(f"plot: {plot}")

    out.emit(result, render)
    if wait and any(s != "finished" for s in statuses.values()):
        raise typer.Exit(1)


def _render_comparison(comparison: Comparison) -> None:
    rows: list[list[Any]] = [[p, *[_fmt(t.state.get(p)) for t in comparison.twins]] for p in comparison.properties]
    rows.append(["changed parameters", *[", ".join(f"{k}={v}" for k, v in t.changed.items()) or "-"
                                         for t in comparison.twins]])
    rows.append(["latest forecast peak", *[_fmt(max((v for v in t.series.values if v is not None), default=None))
                                           if t.series else "-" for t in comparison.twins]])
    rows.append(["P(exceeding)", *[f"{t.series.exceedance:.0%}" if t.series and t.series.exceedance is not None
                                   else "-" for t in comparison.twins]])
    console.print(table("branches side by side", ["", *[t.name for t in comparison.twins]], rows))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else json.dumps(value) if isinstance(value, dict | list) else str(value)


def compare(
    ctx: typer.Context,
    twins: list[str] = typer.Argument(..., help="Twins to put side by side (a twin and its forks)."),
    prop: list[str] = typer.Option([], "--property", help="State property to show (repeat; default: every "
                                   "number or boolean)."),
    workflow: str | None = typer.Option(None, "--workflow", help="Whose latest runs give the series."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG of the branches."),
) -> None:
    """Show twins (a scenario's branches) side by side: chosen state, changed parameters, latest forecasts."""
    out = state_of(ctx)
    with out.client() as client:
        comparison = client.ensembles.compare(twins, properties=prop or None, workflow=workflow)
    if plot is not None:
        from twinengine.ensembles.plot import plot_comparison

        plot_comparison(plot, comparison, title=" vs ".join(twins))

    def render() -> None:
        _render_comparison(comparison)
        if plot is not None:
            console.print(f"plot: {plot}")

    out.emit(comparison, render)
