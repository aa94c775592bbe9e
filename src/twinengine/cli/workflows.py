"""Workflow commands: ``twin run TWIN WORKFLOW`` and ``twin runs list|show|logs|cancel|provenance|crate|rerun|
download``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from twinengine.cli._common import console, parse_assignments, state_of, table
from twinengine.workflows.schemas import RunRead

app = typer.Typer(help="Workflow runs: status, logs, provenance, results.", no_args_is_help=True)


def _show(run: RunRead) -> None:
    where = f" of {run.twin_name}" if run.twin_name else ""
    if run.what_if_of:
        where += f" (a what-if of {run.what_if_of})"
    console.print(f"[bold]{run.id}[/bold] {run.workflow or 'ad-hoc graph'}{where}: [bold]{run.status.value}"
                  f"[/bold] ({run.progress:.0f}%)", highlight=False)
    if run.error:
        console.print(f"[red]{run.error.get('code')}[/red]: {run.error.get('message')}", highlight=False)
    if run.nodes:
        console.print(table("nodes", ["node", "process", "status", "attempts", "seconds"],
                            [(n.node_id, n.process_id, n.status, n.attempts, n.seconds) for n in run.nodes]))
    for asset in run.assets:
        console.print(f"output {asset['name']} ({asset['size']} bytes, sha256 {asset['sha256'][:16]}…)",
                      highlight=False)
    if run.value is not None:
        console.print(f"value: {json.dumps(run.value)[:400]}", highlight=False)


def run(
    ctx: typer.Context,
    twin: str = typer.Argument(..., help="Twin name or id."),
    workflow: str = typer.Argument(..., help="Workflow declared by the twin's app."),
    param: list[str] = typer.Option([], "--param", "-p", help="Run parameter key=value (JSON values)."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the end, showing progress."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute everything (refreshes the cache)."),
    what_if: bool = typer.Option(False, "--what-if", help="Run on a new fork of the twin: the twin's own state "
                                                          "stays as it is; the output names the fork."),
    name: str | None = typer.Option(None, "--name", help="Name of the what-if's fork (default: TWIN-what-if, "
                                                         "numbered when taken); needs --what-if."),
    site: str | None = typer.Option(None, "--site", help="Run on this compute site (else the engine places it)."),
    exclude_site: list[str] = typer.Option([], "--exclude-site", help="A compute site not to run on."),
) -> None:
    """Run a workflow of a twin's app (async; --wait follows it; --what-if runs it on a fork of the twin).

    With --what-if the run gets a new fork of the twin, so the twin's official state is untouched."""
    out = state_of(ctx)
    if name is not None and not what_if:
        raise typer.BadParameter("--name names a what-if's fork: add --what-if", param_hint="--name")
    parameters = parse_assignments(param, option="--param")
    with out.client() as client:
        started = client.workflows.run(twin, workflow, parameters, no_cache=no_cache, what_if=what_if,
                                       fork_name=name, site=site, exclude_sites=exclude_site)
        if started.what_if_of and not out.as_json:
            console.print(f"what-if of {started.what_if_of} on its fork [bold]{started.twin_name}[/bold] "
                          f"(the official state of {started.what_if_of} is untouched)", highlight=False)
        final = started
        if wait:
            columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console, disable=out.as_json, transient=False) as bars:
                task = bars.add_task(f"{workflow} ({started.id})", total=100)

                def show(read: RunRead) -> None:
                    bars.update(task, completed=read.progress, description=f"{workflow}: {read.status.value}")

                final = client.workflows.wait(started.id, on_progress=show)
    out.emit(final, lambda: _show(final))
    if wait and final.status.value != "finished":
        raise typer.Exit(1)


@app.command("list")
def list_runs(ctx: typer.Context, twin: str | None = typer.Option(None, "--twin"),
              limit: int = typer.Option(20, "--limit", min=1, max=500)) -> None:
    """Your runs (or a twin's), newest first."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.workflows.runs(twin=twin, limit=limit)
    out.emit(page, lambda: console.print(table(f"runs ({len(page.items)} of {page.total})",
                                               ["id", "workflow", "twin", "status", "progress", "created (UTC)"],
                                               [(r.id, r.workflow, r.twin_name, r.status.value, r.progress,
                                                 r.created_at) for r in page.items])))


@app.command("show")
def show(ctx: typer.Context, run_id: str = typer.Argument(...)) -> None:
    """A run: status, nodes with attempts and timings, outputs."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.workflows.get(run_id)
    out.emit(row, lambda: _show(row))


@app.command("logs")
def logs(ctx: typer.Context, run_id: str = typer.Argument(...)) -> None:
    out = state_of(ctx)
    with out.client() as client:
        rows = client.workflows.logs(run_id)
    out.emit(rows, lambda: console.print(table(f"logs of {run_id}", ["at (UTC)", "level", "node", "message"],
                                               [(r.at, r.level, r.node_id, r.message) for r in rows])))


@app.command("cancel")
def cancel(ctx: typer.Context, run_id: str = typer.Argument(...)) -> None:
    out = state_of(ctx)
    with out.client() as client:
        row = client.workflows.cancel(run_id)
    out.emit(row, lambda: _show(row))


@app.command("provenance")
def provenance(ctx: typer.Context, run_id: str = typer.Argument(...)) -> None:
    """The run's W3C PROV-JSON document."""
    out = state_of(ctx)
    with out.client() as client:
        doc: dict[str, Any] = client.workflows.provenance(run_id)
    print(json.dumps(doc, indent=2))


@app.command("crate")
def crate(ctx: typer.Context, run_id: str = typer.Argument(..., help="Any run: workflow, ensemble, member, training "
                                                                      "tr-, calibration cal-, assimilation as-."),
          to: Path | None = typer.Option(None, "--to", help="The zip to write (default: RUN.crate.zip).")) -> None:
    """The run's Provenance Run Crate (Workflow Run RO-Crate 0.5), as a zip."""
    out = state_of(ctx)
    target = to or Path(f"{run_id}.crate.zip")
    with out.client() as client:
        data = client.crates.crate(run_id, target)
    out.emit({"path": str(target), "bytes": len(data)}, lambda: console.print(f"wrote {target} ({len(data)} bytes)"))


@app.command("rerun")
def rerun(ctx: typer.Context, run: str = typer.Argument(..., help="A run's id, or a crate's zip (made here or on "
                                                                    "another engine)."),
          wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the rerun and show its diff."),
          timeout: float = typer.Option(1800.0, "--timeout", help="Seconds to wait for the rerun.")) -> None:
    """Run a run again (same app version, graph, parameters, inputs and seeds) and compare its outputs."""
    from twinengine.cli.crates import rerun_and_show

    rerun_and_show(state_of(ctx), run, wait=wait, timeout=timeout)


@app.command("download")
def download(ctx: typer.Context, run_id: str = typer.Argument(...), name: str = typer.Argument(...),
             to: Path = typer.Option(Path("."), "--to", help="Folder to write into.")) -> None:
    out = state_of(ctx)
    to.mkdir(parents=True, exist_ok=True)
    with out.client() as client:
        path = client.workflows.download(run_id, name, to / name)
    out.emit({"path": str(path)}, lambda: console.print(f"wrote {path}"))


triggers_app = typer.Typer(help="Triggers that start a twin's workflows (cron, webhook, dataset).",
                           no_args_is_help=True)


@triggers_app.command("list")
def triggers_list(ctx: typer.Context, twin: str = typer.Argument(...)) -> None:
    """A twin's triggers: from its app's manifest and its own."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.workflows.triggers(twin)
    out.emit(rows, lambda: console.print(table(f"triggers of {twin}", ["name", "kind", "workflow", "source",
                                                                       "next (UTC)", "id"],
                                               [(t.name, t.kind, t.workflow, t.source, t.next_fire_at, t.id)
                                                for t in rows])))


@triggers_app.command("add")
def triggers_add(
    ctx: typer.Context,
    twin: str = typer.Argument(...),
    name: str = typer.Argument(...),
    kind: str = typer.Option(..., "--kind", help="cron, webhook, dataset or stream_window"),
    workflow: str = typer.Option(..., "--workflow"),
    schedule: str | None = typer.Option(None, "--schedule", help="cron expression"),
    misfire: str = typer.Option("run_once", "--misfire", help="run_once or skip"),
    collection: str | None = typer.Option(None, "--collection", help="collection id or pattern"),
    stream: str | None = typer.Option(None, "--stream", help="stream of the twin (stream_window)"),
    count: int | None = typer.Option(None, "--count", help="records per window (stream_window)"),
    param: list[str] = typer.Option([], "--param", "-p", help="fixed run parameter key=value"),
    bind: list[str] = typer.Option([], "--bind", help="run parameter=event field"),
) -> None:
    """Add a trigger; a webhook's secret is printed once."""
    out = state_of(ctx)
    config: dict[str, Any] = {"misfire": misfire, "parameters": parse_assignments(param, option="--param"),
                              "bind": {k: str(v) for k, v in parse_assignments(bind, option="--bind").items()}}
    if schedule:
        config["schedule"] = schedule
    if collection:
        config["collection"] = collection
    if stream is not None:
        config["stream"] = stream
    if count is not None:
        config["count"] = count
    with out.client() as client:
        row = client.workflows.add_trigger(twin, name, kind, workflow, **config)
    out.emit(row, lambda: console.print(f"added {row.kind} trigger {row.name} ({row.id})"
                                        + (f"; POST {row.webhook_url} with X-Twin-Trigger-Secret: {row.secret}"
                                           if row.secret else ""), highlight=False))


@triggers_app.command("remove")
def triggers_remove(ctx: typer.Context, twin: str = typer.Argument(...), name: str = typer.Argument(...)) -> None:
    out = state_of(ctx)
    with out.client() as client:
        client.workflows.remove_trigger(twin, name)
    out.emit({"twin": twin, "removed": name}, lambda: console.print(f"removed trigger {name} of {twin}"))
