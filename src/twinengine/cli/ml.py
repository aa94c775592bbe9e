"""AI lifecycle commands: ``twin train TWIN MODEL``, ``twin tune TWIN MODEL --trials N``, ``twin models TWIN``,
``twin training list|show|stop``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import yaml
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from twinengine.cli._common import Output, console, err_console, parse_assignments, state_of, table
from twinengine.errors import ValidationFailed

if TYPE_CHECKING:  # the schemas import scipy (drift): keep `twin --help` fast
    from twinengine.ml.schemas import TrainingRunRead

__all__ = ["models", "train", "training_app", "tune"]


def _show(run: TrainingRunRead) -> None:
    console.print(f"[bold]{run.id}[/bold] {run.model}: [bold]{run.status}[/bold] ({run.progress:.0f}%, epoch "
                  f"{run.epoch}/{run.epochs})" + (f" → version {run.model_version}" if run.model_version else ""),
                  highlight=False)
    if run.metrics:
        console.print("  " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(run.metrics.items())), highlight=False)
    if run.site:
        console.print(f"  on site {run.site}", highlight=False)
    if run.error:
        console.print(f"[red]{run.status}[/red]: {run.error}", highlight=False)


def _follow(out: Output, twin: str, started: TrainingRunRead, label: str) -> TrainingRunRead:
    with out.client() as client:
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, disable=out.as_json) as bars:
            task = bars.add_task(f"{label} ({started.id})", total=100)

            def show(read: TrainingRunRead) -> None:
                loss = read.metrics.get("val_loss")
                tail = f" val_loss {loss:.4g}" if loss is not None else ""
                bars.update(task, completed=read.progress, description=f"{label}: {read.status}{tail}")

            return client.ml.wait(twin, started.id, on_progress=show)


def _config(param: list[str], config_file: Path | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if config_file is not None:
        loaded = yaml.safe_load(config_file.read_text())
        if not isinstance(loaded, dict):
            raise ValidationFailed.one("--config", "the file must hold a mapping of TrainingConfig fields")
        config.update(loaded)
    for key, value in parse_assignments(param, option="--set").items():
        *parents, leaf = key.split(".")
        target = config
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    return config


def train(
    ctx: typer.Context,
    twin: str = typer.Argument(..., help="Twin name or id."),
    model: str = typer.Argument(..., help="A model the twin's app declares."),
    nproc: int = typer.Option(1, "--nproc", min=1, max=64, help="Local processes (DDP: gloo on CPU, nccl on GPU)."),
    param: list[str] = typer.Option([], "--set", "-s", help="Config override key=value (dotted keys, JSON values)."),
    config_file: Path | None = typer.Option(None, "--config", exists=True, dir_okay=False,
                                            help="YAML file of TrainingConfig overrides."),
    wait: bool = typer.Option(False, "--wait", help="Follow the run with a progress bar."),
    site: str | None = typer.Option(None, "--site", help="Train on this compute site (default: the engine's own, "
                                                         "or where the engine places it when --gpus is "
                                                         "given; twin site list)."),
    gpus: int = typer.Option(0, "--gpus", min=0, max=64, help="GPUs it needs on its site."),
) -> None:
    """Train a twin's model (queued in the engine); the gate decides whether the new version becomes champion."""
    out = state_of(ctx)
    with out.client() as client:
        started = client.ml.train(twin, model, config=_config(param, config_file), nproc=nproc, site=site,
                                  gpus=gpus)
    final = _follow(out, twin, started, f"train {model}") if wait else started
    out.emit(final, lambda: _show(final))
    if wait and final.status != "succeeded":
        raise typer.Exit(1)


def tune(
    ctx: typer.Context,
    twin: str = typer.Argument(..., help="Twin name or id."),
    model: str = typer.Argument(..., help="A model the twin's app declares."),
    trials: int = typer.Option(20, "--trials", min=1, max=10_000),
    parallel: int = typer.Option(1, "--parallel", min=1, max=64, help="Trials at once."),
    space: Path | None = typer.Option(None, "--space", exists=True, dir_okay=False,
                                      help="YAML search space (default: the app's)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the search and the final training."),
) -> None:
    """Search hyper-parameters with Optuna, then train and register the best configuration."""
    out = state_of(ctx)
    body: dict[str, Any] = {"trials": trials, "parallel": parallel}
    if space is not None:
        body["space"] = yaml.safe_load(space.read_text())
    with out.client() as client:
        started = client.ml.tune(twin, model, body)
    final = _follow(out, twin, started, f"tune {model}") if wait else started
    out.emit(final, lambda: _show(final))
    if final.trigger.get("best") is not None and not out.as_json:
        console.print(f"best of {final.trigger.get('complete')} complete trials ({final.trigger.get('pruned')} "
                      f"pruned, {final.trigger.get('failed')} failed): {final.trigger['best']}", highlight=False)
    if wait and final.status != "succeeded":
        raise typer.Exit(1)


def models(ctx: typer.Context, twin: str = typer.Argument(..., help="Twin name or id.")) -> None:
    """The twin's models: every version with its aliases, metrics and the gate's decision."""
    out = state_of(ctx)
    with out.client() as client:
        found = client.ml.models(twin)

    def render() -> None:
        for m in found:
            rows = []
            for v in m.versions:
                d = v.decision
                metric = v.tags.get("metric.rmse_level") or v.tags.get("metric.val_loss", "")
                rows.append((v.version, ", ".join(v.aliases), v.tags.get("training_run", ""),
                             (v.tags.get("trigger", "") or "")[:40], metric,
                             "" if d is None else ("accepted" if d.accepted else "rejected"),
                             "" if d is None else d.reason))
            console.print(table(f"{m.name} ({m.registered_name}), champion {m.champion or '-'}",
                                ["version", "aliases", "run", "trigger", "metric", "gate", "reason"], rows))

    out.emit(found, render)


training_app = typer.Typer(help="Training runs of a twin: list, show, stop.", no_args_is_help=True)


@training_app.command("list")
def training_list(ctx: typer.Context, twin: str = typer.Argument(..., help="Twin name or id."),
                  model: str | None = typer.Option(None, "--model", help="Only this model's runs."),
                  limit: int = typer.Option(20, "--limit", min=1, max=500)) -> None:
    """The twin's training runs, newest first."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.ml.runs(twin, model=model, limit=limit)
    out.emit(page, lambda: console.print(table(
        f"training runs of {twin} ({page.total})", ["run", "model", "status", "progress", "version", "trigger"],
        [(r.id, r.model, r.status, f"{r.progress:.0f}%", r.model_version or "", str(r.trigger.get("kind", "")))
         for r in page.items])))


@training_app.command("show")
def training_show(ctx: typer.Context, twin: str = typer.Argument(..., help="Twin name or id."),
                  run: str = typer.Argument(..., help="Training run id (tr-...).")) -> None:
    """One training run: status, percent, metrics, error."""
    out = state_of(ctx)
    with out.client() as client:
        found = client.ml.run(twin, run)
    out.emit(found, lambda: _show(found))


@training_app.command("stop")
def training_stop(ctx: typer.Context, twin: str = typer.Argument(..., help="Twin name or id."),
                  run: str = typer.Argument(..., help="Training run id (tr-...)."),
                  wait: bool = typer.Option(False, "--wait", help="Wait until it has stopped.")) -> None:
    """Stop a training run: a queued one at once, a running one at the end of its epoch (nothing registered)."""
    out = state_of(ctx)
    with out.client() as client:
        stopped = client.ml.stop(twin, run)
        if wait:
            stopped = client.ml.wait(twin, run)
    out.emit(stopped, lambda: _show(stopped))
