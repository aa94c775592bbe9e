"""``twin calibrate``: fit a twin's physical parameters to what its gauges observed, follow the calibration with
a progress bar, read its result, and accept (apply to the twin) or reject what it proposes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from twinengine.cli._common import console, err_console, state_of, table
from twinengine.errors import ValidationFailed

if TYPE_CHECKING:
    from twinengine.calibration.schemas import CalibrationRead

__all__ = ["app"]

# Paragraphs of the help, each one line on the screen (rich keeps the source's line breaks).
HELP = "\n\n".join([
    ("Fit a twin's parameters to its observed history (SCE-UA, differential evolution, DREAM, emcee); accept "
     "or reject the result."),
    ("`twin calibrate TWIN` fits the parameters the twin's app lets calibrate (its manifest's calibration "
     "section, e.g. river-reach's reservoir_hours and runoff_coefficient) so that the app's model "
     'reproduces the observed stream field (e.g. the level at the gauge), running the model many times '
     'with other parameter values.'),
    ('Methods: sceua (shuffled complex evolution, the classic global optimiser of rainfall-runoff models),'
     ' de (differential evolution), dream (DREAM, Markov chain Monte Carlo: a posterior distribution), '
     'emcee (ensemble MCMC). Objectives: nse (Nash-Sutcliffe efficiency), kge (Kling-Gupta efficiency), '
     'rmse, likelihood.'),
    ('The result is a proposal: the best parameters, their credible intervals and correlations, a figure, '
     'and a fork of the twin with the calibrated values. The twin itself changes only with `twin calibrate'
     ' accept ID`.'),
])

class _TwinFirst(TyperGroup):
    """``twin calibrate TWIN ...`` starts a calibration; ``twin calibrate show|list|accept|reject`` the rest."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_TwinFirst, help=HELP, no_args_is_help=True)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _show(read: CalibrationRead) -> None:
    console.print(f"[bold]{read.id}[/bold] of {read.twin}: [bold]{read.status}[/bold] ({read.percent:.0f}%), "
                  f"{read.runs_done}/{read.runs} model runs, {read.method} on {read.objective}, seed {read.seed}"
                  f"{'' if read.site == 'local' else f', on site {read.site}'}; "
                  f"proposal {read.decision}", highlight=False)
    if read.error:
        console.print(f"[red]{read.error.get('code')}[/red]: {read.error.get('message')}", highlight=False)
    if read.core_seconds is not None:
        console.print(f"used {read.core_seconds:.4g} core-seconds ({read.core_seconds / 3600:.3g} core-hours; "
                      "`twin usage` lists each attempt)", highlight=False)
    summary = read.summary or {}
    if not summary.get("best"):
        return
    interval = summary.get("interval") or {}
    median = summary.get("median") or {}
    level = summary.get("level", 0.9)
    rows = []
    for name in read.parameters:
        low, high = interval.get(name, (None, None))
        rows.append((name, _num(summary["best"].get(name)), _num(median.get(name)),
                     f"{_num(low)} .. {_num(high)}" if low is not None else "-",
                     f"{_num(read.bounds[name][0])} .. {_num(read.bounds[name][1])}"))
    console.print(table(f"best {read.objective} {_num(read.best_score)}",
                        ["parameter", "best", "posterior median", f"{level:.0%} interval", "bounds"], rows))
    corr = summary.get("correlation")
    if corr and len(read.parameters) > 1:
        console.print(table("posterior correlations", ["", *read.parameters],
                            [(n, *(f"{v:+.2f}" for v in row)) for n, row in zip(read.parameters, corr, strict=True)]))
    if read.fork:
        console.print(f"proposed as the fork [bold]{read.fork}[/bold]; apply it to {read.twin} with "
                      f"`twin calibrate accept {read.id}`, or `twin calibrate reject {read.id}`", highlight=False)


@app.command("start", help="Start a calibration of TWIN (also: `twin calibrate TWIN ...`).")
def start(ctx: typer.Context,
          twin: str = typer.Argument(..., help="The twin (id or name) whose parameters are fitted."),
          params: str | None = typer.Option(None, "--params", help="Comma-separated parameters to fit, e.g. "
                                            "reservoir_hours,runoff_coefficient (default: all the app declares)."),
          bounds: list[str] = typer.Option([], "--bounds", help="name=min:max, within the parameters schema "
                                           "(repeat; default: the app's calibration bounds)."),
          method: str | None = typer.Option(None, "--method", "-m", help="sceua, de, dream or emcee (default: "
                                            "the app's)."),
          objective: str | None = typer.Option(None, "--objective", help="nse, kge, rmse or likelihood."),
          runs: int | None = typer.Option(None, "--runs", "-n", help="Budget: most model runs (default: the "
                                          "app's)."),
          seconds: float | None = typer.Option(None, "--seconds", help="Budget: most seconds of model runs."),
          workers: int = typer.Option(1, "--workers", "-k", help="Model runs in parallel (worker processes)."),
          seed: int = typer.Option(0, "--seed", help="The same seed proposes the same model runs."),
          site: str | None = typer.Option(None, "--site", help="Compute site (dask or slurm) whose Dask cluster "
                                          "runs the model (default: the engine's own workers)."),
          wait: bool = typer.Option(False, "--wait", help="Follow it with a progress bar and show the result."),
          plot: Path | None = typer.Option(None, "--plot", help="With --wait: write the figure (PNG) here.")) -> None:
    out = state_of(ctx)
    parsed: dict[str, list[float]] = {}
    for item in bounds:
        name, _, rest = item.partition("=")
        low, _, high = rest.partition(":")
        try:
            parsed[name.strip()] = [float(low), float(high)]
        except ValueError:
            raise ValidationFailed.one("--bounds", f"{item!r} is not name=min:max") from None
    names = [p.strip() for p in params.split(",") if p.strip()] if params else None
    with out.client() as client:
        read = client.calibration.start(twin, params=names, bounds=parsed or None, method=method,
                                        objective=objective, runs=runs, seconds=seconds, workers=workers, seed=seed,
                                        site=site)
        if wait:
            read = _follow(client, read, as_json=out.as_json)
            if plot is not None and read.figure:
                plot.write_bytes(client.calibration.figure(read.id))
    def render() -> None:
        _show(read)
        if plot is not None and read.figure:
            console.print(f"figure: {plot}")

    out.emit(read, render)
    if wait and read.status != "done":
        raise typer.Exit(1)


def _follow(client: Any, read: CalibrationRead, *, as_json: bool) -> CalibrationRead:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=as_json) as bars:
        task = bars.add_task(f"{read.id}: {read.status}", total=100)

        def show(now: CalibrationRead) -> None:
            best = f", best {now.objective} {_num(now.best_score)}" if now.best_score is not None else ""
            bars.update(task, completed=now.percent,
                        description=f"{now.method}: {now.status}, {now.runs_done}/{now.runs} runs{best}")

        final: CalibrationRead = client.calibration.wait(read.id, on_progress=show)
        return final


@app.command("show", help="A calibration: progress, best parameters, intervals, correlations, proposal.")
def show(ctx: typer.Context, calibration: str = typer.Argument(..., help="Calibration id (cal-...)."),
         plot: Path | None = typer.Option(None, "--plot", help="Write the figure (PNG) here.")) -> None:
    out = state_of(ctx)
    with out.client() as client:
        read = client.calibration.get(calibration)
        if plot is not None and read.figure:
            plot.write_bytes(client.calibration.figure(read.id))
    out.emit(read, lambda: _show(read))


@app.command("list", help="The calibrations of a twin, newest first.")
def list_(ctx: typer.Context, twin: str = typer.Argument(..., help="The twin (id or name)."),
          limit: int = typer.Option(20, "--limit", min=1, max=1000)) -> None:
    out = state_of(ctx)
    with out.client() as client:
        page = client.calibration.list(twin, limit=limit)
    rows = [(c.id, c.status, f"{c.percent:.0f}%", c.method, c.objective, _num(c.best_score), c.decision,
             c.created_at.isoformat(timespec="seconds")) for c in page.items]
    out.emit(page, lambda: console.print(table(f"{twin}: {page.total} calibrations",
                                               ["id", "status", "done", "method", "objective", "best", "proposal",
                                                "created"], rows)))


@app.command("accept", help="Apply a finished calibration's best parameters to its twin.")
def accept(ctx: typer.Context, calibration: str = typer.Argument(..., help="Calibration id (cal-...).")) -> None:
    out = state_of(ctx)
    with out.client() as client:
        read = client.calibration.accept(calibration)
    best = ", ".join(f"{k}={v:.4g}" for k, v in (read.best or {}).items())
    out.emit(read, lambda: console.print(f"{read.twin}: parameters set to {best} (calibration {read.id})",
                                         highlight=False))


@app.command("reject", help="Leave the twin as it is and remove the proposed fork.")
def reject(ctx: typer.Context, calibration: str = typer.Argument(..., help="Calibration id (cal-...).")) -> None:
    out = state_of(ctx)
    with out.client() as client:
        read = client.calibration.reject(calibration)
    out.emit(read, lambda: console.print(f"{read.twin}: unchanged; calibration {read.id} rejected",
                                         highlight=False))


@app.command("cancel", help="Stop a queued or running calibration (its runs so far are kept).")
def cancel(ctx: typer.Context, calibration: str = typer.Argument(..., help="Calibration id (cal-...).")) -> None:
    out = state_of(ctx)
    with out.client() as client:
        read = client.calibration.cancel(calibration)
    out.emit(read, lambda: console.print(f"calibration {read.id} of {read.twin}: {read.status} after "
                                         f"{read.runs_done} runs", highlight=False))
