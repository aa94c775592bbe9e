"""``twin cwl``: CWL documents through the engine's CWL runner (cwltool in a sandboxed worker), on this machine.

``twin cwl run`` takes cwltool's arguments (``--outdir``, ``--quiet``, a document and a job) and prints the output
object as cwltool does, with cwltool's exit code, so CWL's own test tool (``cwltest --tool``) can drive it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="CWL application packages: run or validate one through the engine's "
                                             "sandboxed CWL runner; export an app's workflow.")


def _runner() -> tuple[object, object]:
    from twinengine.config import Settings
    from twinengine.cwl.runner import CwlRunner
    from twinengine.workers.service import Workers

    settings = Settings()
    workers = Workers.from_settings(settings)
    return CwlRunner.from_settings(settings, workers), workers


def _load_job(path: Path | None) -> dict[str, object]:
    if path is None:
        return {}
    import yaml

    loaded = yaml.safe_load(path.read_text())
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise typer.BadParameter(f"{path}: a job is an object of inputs")
    return loaded


@app.command("run")
def run(tool: Annotated[str, typer.Argument(help="The CWL document (with an optional #fragment).")],
        job: Annotated[Path | None, typer.Argument(help="The job: a JSON or YAML object of inputs.")] = None,
        outdir: Annotated[Path | None, typer.Option(help="Where the outputs go (default: the working folder).")]
        = None,
        quiet: Annotated[bool, typer.Option(help="Print only the output object.")] = False) -> None:
    """Run a CWL document with cwltool in a sandboxed worker (its folder mounted read-only, inputs from
    elsewhere copied in, commands without a container); print the output object."""
    from twinengine.cwl.runner import CwlFailed, CwlRunner, RunnerUnavailable

    path, _, fragment = tool.partition("#")
    document = Path(path).resolve()
    if not document.is_file():
        typer.echo(f"error: no CWL document {path}", err=True)
        raise typer.Exit(2)
    job_path = job.resolve() if job is not None else None
    folder = document.parent if job_path is None else Path(os.path.commonpath([document.parent, job_path.parent]))
    runner, workers = _runner()
    assert isinstance(runner, CwlRunner)
    target = (outdir or Path.cwd()).resolve()
    try:
        with tempfile.TemporaryDirectory(prefix="twin-cwl-out-") as staging:
            outcome = runner.run(folder, str(document.relative_to(folder)) + (f"#{fragment}" if fragment else ""),
                                 _load_job(job_path), job_base=job_path.parent if job_path else folder,
                                 outdir=Path(staging))
            target.mkdir(parents=True, exist_ok=True)
            output = _move_all(Path(staging), target, outcome.output)
    except (CwlFailed, RunnerUnavailable) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        workers.close()  # type: ignore[attr-defined]
    if not quiet or outcome.code != 0:
        sys.stderr.write(outcome.log)
    if outcome.code == 0:
        print(json.dumps(output, indent=4))
    raise typer.Exit(outcome.code)


def _move_all(staging: Path, target: Path, output: object) -> object:
    """Move what cwltool wrote from ``staging`` into ``target`` and point the output object there."""
    import shutil

    from twinengine.cwl.runner import relocate

    for entry in staging.iterdir():
        destination = target / entry.name
        if destination.exists():
            shutil.rmtree(destination) if destination.is_dir() else destination.unlink()
        shutil.move(str(entry), destination)
    return relocate(output, str(staging), target)


@app.command("validate")
def validate(tool: Annotated[Path, typer.Argument(help="The CWL document.")]) -> None:
    """Check a CWL document with cwltool (``--validate``) in a sandboxed worker."""
    from twinengine.cwl.runner import CwlFailed, CwlRunner, RunnerUnavailable

    document = tool.resolve()
    runner, workers = _runner()
    assert isinstance(runner, CwlRunner)
    try:
        with tempfile.TemporaryDirectory(prefix="twin-cwl-out-") as staging:
            outcome = runner.run(document.parent, document.name, None, outdir=Path(staging), validate=True)
    except (CwlFailed, RunnerUnavailable) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        workers.close()  # type: ignore[attr-defined]
    sys.stderr.write(outcome.log)
    raise typer.Exit(outcome.code)



def export_cwl(folder: Annotated[Path, typer.Argument(help="The app's folder (with twinapp.yaml).")],
               workflow: Annotated[str | None, typer.Option(help="Only this workflow (default: every one).")] = None,
               out: Annotated[Path, typer.Option(help="Folder the packages are written to.")] = Path("."),
               image: Annotated[str | None, typer.Option(help="The container image the package's tool runs in (a "
                                                              "Python 3; default python:3.11-slim).")] = None,
               ) -> None:
    """Export the app's openEO workflows as OGC EO Application Packages (CWL v1.2): each runs its workflow on a
    twin of this app version on an engine and stages the results out as a STAC catalog. Check one with
    ``twin cwl validate`` or run it with cwltool (docs/processes.md)."""
    from twinengine.cwl.export import IMAGE, export_app
    from twinengine.errors import ValidationFailed

    try:
        packages = export_app(folder, workflow=workflow, image=image or IMAGE)
    except ValidationFailed as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    if not packages:
        typer.echo(f"{folder}: the app declares no workflows; nothing to export", err=True)
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, document in packages.items():
        import yaml

        (out / name).write_text(yaml.safe_dump(document, sort_keys=False, width=120))
        print(out / name)
