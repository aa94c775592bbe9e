"""``twin app``: the manifest schema, validate, publish, list, search, show and pull DT applications."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from twinengine.catalog.manifest import Manifest, parse_app_ref
from twinengine.catalog.schemas import AppPage, AppVersionRead
from twinengine.catalog.validate import check_app_dir, manifest_warnings
from twinengine.cli._common import console, err_console, state_of, table
from twinengine.errors import Problem

app = typer.Typer(help="DT applications: start from a template, test locally, validate, publish and browse the "
                  "catalogue.", no_args_is_help=True)


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of twinapp.yaml (for editors and CI)."""
    print(json.dumps(Manifest.model_json_schema(), indent=2))


@app.command("validate")
def validate(ctx: typer.Context, folder: Path = typer.Argument(..., help="App folder with twinapp.yaml."),
             no_import: bool = typer.Option(False, "--no-import", help="Only the static checks: do not import the "
                                                                       "package in a sandboxed worker.")) -> None:
    """Check an app folder and report every problem with its path; then import the package in a sandboxed
    worker, as publishing does, and check that the engine can call every entrypoint the manifest names."""
    out = state_of(ctx)
    manifest, problems = check_app_dir(folder)
    warnings = manifest_warnings(manifest) if manifest is not None else []
    if manifest is not None and not problems and not no_import:
        from twinengine.appdev.imports import check_imports
        from twinengine.cli._common import local_settings

        with err_console.status("importing the app in a sandboxed worker"):
            problems = check_imports(folder, manifest, local_settings(None))
    if not out.as_json:
        _print_warnings(warnings)
    if out.as_json:
        print(json.dumps({"valid": not problems, "app": manifest.ref if manifest else None,
                          "problems": [p.to_dict() for p in problems],
                          "warnings": [w.to_dict() for w in warnings]}, indent=2))
    elif problems:
        err_console.print(f"[red]{len(problems)} problem(s)[/red] in {escape(str(folder))}:")
        for problem in problems:
            err_console.print(f"  {escape(str(problem))}", highlight=False, soft_wrap=True)
    else:
        assert manifest is not None
        console.print(f"[green]valid[/green]: {manifest.ref} ({len(manifest.state)} state properties, "
                      f"{len(manifest.streams)} streams, {len(manifest.workflows)} workflows)")
    if problems:
        raise typer.Exit(1)


def _print_warnings(warnings: list[Problem]) -> None:
    """Warnings go to stderr, before the verdict: the app is valid, but something is probably not meant."""
    for warning in warnings:
        err_console.print(f"[yellow]warning[/yellow]: {escape(str(warning))}", highlight=False, soft_wrap=True)


@app.command("publish")
def publish(ctx: typer.Context, folder: Path = typer.Argument(..., help="App folder with twinapp.yaml."),
            group: str | None = typer.Option(None, "--group", help="Publish it as this group's app: only the "
                                                                   "group's members publish its versions.")) -> None:
    """Pack the folder into a checksummed archive and publish it (immutable per name@version)."""
    out = state_of(ctx)
    _, problems = check_app_dir(folder)
    if problems:  # same check the server runs; fail before uploading
        err_console.print(f"[red]not published[/red]: {len(problems)} problem(s)")
        for problem in problems:
            err_console.print(f"  {escape(str(problem))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    with out.client() as client:
        result = client.publish_app(folder, group=group)
    if not out.as_json:
        _print_warnings([Problem(w.get("loc", ""), w.get("msg", "")) for w in result.warnings])
    verb = ("published" if result.created else "replaced the development version" if result.replaced
            else "already published with identical content:")
    out.emit(result, lambda: console.print(
        f"{verb} [bold]{result.app.name}@{result.app.version}[/bold] "
        f"{'with new files, now ' if result.replaced else ''}sha256 {result.app.archive_sha256} "
        f"({result.app.archive_size} bytes, {len(result.app.files)} files)", highlight=False))


def _apps_table(title: str, page: AppPage) -> None:
    console.print(table(f"{title} ({len(page.items)} of {page.total})", ["name", "latest", "title", "domain",
                                                                         "versions"],
                        [(a.name, a.latest_version, a.title, a.domain, ", ".join(a.versions)) for a in page.items]))


@app.command("list")
def list_(ctx: typer.Context, domain: str | None = typer.Option(None, "--domain"),
          limit: int = typer.Option(50, "--limit", min=1, max=500)) -> None:
    """Apps in the catalogue."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.list_apps(domain=domain, limit=limit)
    out.emit(page, lambda: _apps_table("apps", page))


@app.command("search")
def search(ctx: typer.Context, text: str = typer.Argument(..., help="Words to look for."),
           limit: int = typer.Option(50, "--limit", min=1, max=500)) -> None:
    """Find apps by name, title, description, domain or keywords."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.search_apps(text, limit=limit)
    out.emit(page, lambda: _apps_table(f"apps matching {text!r}", page))


def _unit(declared: dict[str, Any]) -> str | None:
    """A declared unit with its datum, as the manifest gives them: ``m (EGM2008)``."""
    unit, datum = declared.get("unit"), declared.get("datum")
    return f"{unit} ({datum})" if unit and datum else unit


def _show_version(row: AppVersionRead) -> None:
    manifest = row.manifest
    console.print(f"[bold]{row.name}@{row.version}[/bold]  {escape(row.title)}", highlight=False)
    console.print(f"domain {row.domain}; published by {row.published_by} at "
                  f"{row.published_at.isoformat(timespec='seconds')}; sha256 {row.archive_sha256}", highlight=False)
    if manifest.get("description"):
        console.print(escape(str(manifest["description"]).strip()))
    params = manifest.get("parameters", {}).get("properties", {})
    if params:
        console.print(table("parameters", ["name", "type", "default", "description"],
                            [(k, v.get("type"), v.get("default"), v.get("description")) for k, v in params.items()]))
    if manifest.get("state"):
        console.print(table("state", ["property", "type", "unit", "description"],
                            [(k, v.get("type"), _unit(v), v.get("description"))
                             for k, v in manifest["state"].items()]))
    if manifest.get("streams"):
        console.print(table("streams", ["stream", "fields", "time field"],
                            [(k, ", ".join(f"{f} ({_unit(d) or d.get('type')})" for f, d in v["fields"].items()),
                              v.get("time_field")) for k, v in manifest["streams"].items()]))


@app.command("show")
def show(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME or NAME@VERSION (default: latest).")) -> None:
    """One app version: manifest summary, parameters, state and streams."""
    out = state_of(ctx)
    name, version = parse_app_ref(ref)
    with out.client() as client:
        row = client.get_app_version(name, version or "latest")
    out.emit(row, lambda: _show_version(row))


@app.command("pull")
def pull(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME@VERSION (or NAME for the latest)."),
         to: Path | None = typer.Option(None, "--to", help="Folder to unpack into (default: ./NAME-VERSION)."),
         ) -> None:
    """Download an app archive, check its sha-256, and unpack it."""
    out = state_of(ctx)
    name, version = parse_app_ref(ref)
    with out.client() as client:
        row = client.get_app_version(name, version or "latest")
        target = to or Path(f"{row.name}-{row.version}")
        data = client.pull_app(f"{row.name}@{row.version}", target)
    out.emit({"app": f"{row.name}@{row.version}", "path": str(target), "bytes": len(data),
              "sha256": row.archive_sha256},
             lambda: console.print(f"pulled {row.name}@{row.version} into {target} ({len(data)} bytes, sha256 "
                                   f"verified)", highlight=False))


from twinengine.cli import app_dev  # noqa: E402  (new, test, run: the developer's local loop)

app_dev.register(app)

from twinengine.cli import cwl as _cwl  # noqa: E402  (export-cwl: the app's workflows as CWL packages)

app.command("export-cwl")(_cwl.export_cwl)
