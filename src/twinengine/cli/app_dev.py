"""``twin app new|test|run``: start an app from a template, check it without a server, try it locally."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer
from rich.markup import escape

from twinengine.appdev._items import Item
from twinengine.appdev.scaffold import DEFAULT_TEMPLATE, TEMPLATES
from twinengine.cli._common import console, err_console, state_of, table

__all__ = ["check", "new", "register", "run"]


def new(ctx: typer.Context, name: str = typer.Argument(..., help="App name (kebab-case, e.g. lake-temperature)."),
        template: str = typer.Option(DEFAULT_TEMPLATE, "--template", "-t", help="The template (see above)."),
        folder: Path | None = typer.Option(None, "--dir", help="Folder to write (default: ./NAME); must be "
                                                                "absent or empty.")) -> None:
    from twinengine.appdev.scaffold import new_app

    out = state_of(ctx)
    target = folder or Path(name)
    written = new_app(name, template, target)
    out.emit({"app": name, "template": template, "path": str(target), "files": [str(p) for p in written]},
             lambda: console.print(f"wrote {len(written)} files of [bold]{escape(name)}[/bold] ({template}) into "
                                   f"{escape(str(target))}; next: twin app test {escape(shlex.quote(str(target)))}",
                                   highlight=False))


def check(ctx: typer.Context, folder: Path = typer.Argument(Path("."), help="App folder with twinapp.yaml."),
           no_tests: bool = typer.Option(False, "--no-tests", help="Skip the app's own pytest tests."),
           no_training: bool = typer.Option(False, "--no-training", help="Skip the short training run.")) -> None:
    """Validate the app and run it on a throw-away local engine: its tests, functions, processes, training
    and workflows, each reported ok or failed with the place in the app's files."""
    from twinengine.appdev.harness import check_app

    out = state_of(ctx)
    if not (folder / "twinapp.yaml").is_file():
        err_console.print(f"[red]error[/red]: FOLDER: {escape(str(folder))} has no twinapp.yaml", highlight=False)
        raise typer.Exit(2)

    def report(item: Item) -> None:
        if not out.as_json:  # a failure's message whole on its progress line, never cut at the terminal's width
            mark = ("[yellow]skipped[/yellow]" if item.skipped else "[green]ok[/green]" if item.ok
                    else "[red]failed[/red]")
            said = f": {escape(_said(item))}" if item.error else ""
            err_console.print(f"  {mark} {escape(item.name)} ({item.seconds:.1f} s){said}", highlight=False,
                              soft_wrap=True)

    with err_console.status("checking the app"):
        items = check_app(folder, run_tests=not no_tests, train=not no_training, report=report)
    failed = [i for i in items if not i.ok]
    if out.as_json:
        print(json.dumps({"ok": not failed, "items": [i.to_dict() for i in items]}, indent=2))
    else:
        rows = [(i.name, "skipped" if i.skipped else "ok" if i.ok else "failed", f"{i.seconds:.2f}", i.where or "")
                for i in items]
        console.print(table(f"twin app test {folder}", ["item", "result", "seconds", "where"], rows))
        # What went wrong (or why an item was skipped) below the table, whole: a table cell would fold or cut
        # it at any width, and logs keep lines as printed.
        for item in items:
            if item.error:
                kind = "skipped" if item.skipped else "failed"
                console.print(f"{kind} {item.name}: {_said(item)}", markup=False, highlight=False, soft_wrap=True)
        console.print("[red]failed[/red]" if failed else "[green]all ok[/green]")
    if failed:
        raise typer.Exit(1)


def _said(item: Item) -> str:
    """An item's message with its place in the app (``file.py:line`` or a manifest field), all of it."""
    error = item.error or ""
    return f"{error} (at {item.where})" if item.where else error


def run(folder: Path = typer.Argument(..., help="App folder with twinapp.yaml."),
        port: int = typer.Option(8000, "--port", min=0, max=65535, help="Loopback port (0: any free one)."),
        twin: str = typer.Option("local", "--twin", help="Name of the twin created.")) -> None:
    """Serve a throw-away local engine (temporary data) with the app published, a twin created and the
    sample records appended, until Ctrl-C."""
    from twinengine.api import create_app
    from twinengine.appdev.local import LocalEngine, twin_parameters
    from twinengine.catalog.validate import check_app_dir
    from twinengine.demo.server import InProcessServer
    from twinengine.stopping import until_stopped

    if not (folder / "twinapp.yaml").is_file():
        err_console.print(f"[red]error[/red]: FOLDER: {escape(str(folder))} has no twinapp.yaml", highlight=False)
        raise typer.Exit(2)
    declared, _problems = check_app_dir(folder)  # its problems are publishing's to report
    if declared is not None:  # the twin's parameters are refused before a throw-away engine is started
        twin_parameters(folder, declared)
    with LocalEngine(folder, twin_name=twin) as local:
        _sha, manifest = local.publish()
        local.create_twin(manifest)
        counts = local.ingest_samples(manifest)
        with InProcessServer(create_app(runtime=local.rt), port=port) as server:
            console.print(f"[bold]{manifest.ref}[/bold] with twin [bold]{escape(twin)}[/bold] "
                          f"({sum(counts.values())} sample records) at {server.url}", highlight=False)
            console.print(f"  portal: {server.url}/ui/   API docs: {server.url}/docs")
            console.print(f"  token:  {local.token}", highlight=False, soft_wrap=True)
            console.print(f"  e.g.    twin --url {server.url} --token $TOKEN state show {escape(twin)}",
                          highlight=False)
            console.print("throw-away data: everything goes when you stop (Ctrl-C)")
            until_stopped()
            console.print("stopped")


def _new_help() -> str:
    """``twin app new --help``: what it writes, then one line per template (rich markup keeps the lines)."""
    lines = [f"[bold]{name}[/bold]{' (default)' if name == DEFAULT_TEMPLATE else ''}: {what}"
             for name, what in TEMPLATES.items()]
    return ("Write a working app folder (manifest, package, tests, sample data, README) from a template; it "
            "passes `twin app test` as written.\n\nTemplates (--template):\n\n" + "\n\n".join(lines))


def register(app: typer.Typer) -> None:
    app.command("new", help=_new_help())(new)
    app.command("test")(check)
    app.command("run")(run)
