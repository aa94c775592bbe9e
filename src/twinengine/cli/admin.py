"""``twin admin``: operating an engine on its machine (backups and their restore), beside a running engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from twinengine.cli._common import DataDirOption, console, err_console, local_settings, state_of

__all__ = ["app"]

app = typer.Typer(help="Operate an engine on its machine: back up a data dir and its store while it serves, "
                       "restore one elsewhere.", no_args_is_help=True)


@contextmanager
def _progress(what: str) -> Iterator[tuple[Callable[[str], None], Callable[[int], None]]]:
    """Lines said as the work goes, and a bar of the bytes copied or checked."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(what, total=None)

        def say(line: str) -> None:
            progress.console.print(line, highlight=False, soft_wrap=True)

        yield say, lambda n: progress.advance(task, n)


@app.command("backup")
def backup(ctx: typer.Context,
           target: Path = typer.Argument(..., help="A new (or empty) folder to write the backup into, best on "
                                                   "another disk.", show_default=False),
           with_envs: bool = typer.Option(False, "--with-envs", help="Copy the built app environments too (by "
                                          "default only their locks: each is rebuilt on first use)."),
           data_dir: Any = DataDirOption) -> None:
    """Back up the engine's store, lake files, stream segments, app archives, keys and model registry while it
    serves: the store's rows as of one instant, then the files; every part checksummed in manifest.json. The
    backup holds the engine's keys: keep it as safe as the data dir."""
    from twinengine.backup import backup as take

    settings = local_settings(data_dir)
    with _progress("copying") as (say, advance):
        report = take(settings, target, with_envs=with_envs, say=say, advance=advance)
    manifest = report.manifest

    def show() -> None:
        console.print(f"backup written to {report.folder} in {report.seconds:.1f} s: {report.rows:,} rows of "
                          f"{len(manifest.tables)} tables as of {manifest.snapshot_at:%Y-%m-%d %H:%M:%S} UTC, "
                          f"{len(manifest.files):,} files, {report.bytes:,} bytes", highlight=False, soft_wrap=True)
        for note in manifest.left_out:
            console.print(f"  not in it: {note}", highlight=False, soft_wrap=True)

    state_of(ctx).emit({"folder": str(report.folder), "seconds": round(report.seconds, 3), "rows": report.rows,
                        "tables": len(manifest.tables), "files": len(manifest.files), "bytes": report.bytes,
                        "snapshot_at": manifest.snapshot_at.isoformat(), "schema_revision": manifest.schema_revision,
                        "left_out": manifest.left_out}, show)


@app.command("restore")
def restore(ctx: typer.Context,
            source: Path = typer.Argument(..., help="A backup folder (made by `twin admin backup`).",
                                          show_default=False),
            database_url: str | None = typer.Option(None, "--database-url", envvar="TWIN_DATABASE_URL",
                                                    help="An empty PostgreSQL database to restore the store into "
                                                         "(default: SQLite in the data dir).", show_default=False),
            data_dir: Any = DataDirOption) -> None:
    """Restore a backup into an empty data dir (and an empty store), on this host or another: every checksum is
    checked before anything is written, the restored rows again after; the schema is then brought to this
    engine's. Start it with `twin serve` afterwards."""
    from twinengine.backup import restore as bring_back

    settings = local_settings(data_dir, **({"database_url": database_url} if database_url else {}))
    with _progress("restoring") as (say, advance):
        report = bring_back(source, settings, say=say, advance=advance)
    manifest = report.manifest

    def show() -> None:
        console.print(f"restored {report.rows:,} rows and {len(manifest.files):,} files into "
                          f"{settings.data_dir} in {report.seconds:.1f} s (as of "
                          f"{manifest.snapshot_at:%Y-%m-%d %H:%M:%S} UTC, schema {report.schema_revision}); start it "
                          "with `twin serve`", highlight=False, soft_wrap=True)
        for note in report.notes:
            console.print(f"  {note}", highlight=False, soft_wrap=True)

    state_of(ctx).emit({"data_dir": str(settings.data_dir), "seconds": round(report.seconds, 3),
                        "rows": report.rows, "files": len(manifest.files), "schema_revision": report.schema_revision,
                        "snapshot_at": manifest.snapshot_at.isoformat(), "notes": report.notes}, show)


@app.command("verify")
def verify(ctx: typer.Context,
           source: Path = typer.Argument(..., help="A backup folder.", show_default=False)) -> None:
    """Check a backup against its manifest: every file and every table's rows by checksum."""
    from twinengine.backup import verify as check

    with _progress("checking") as (_, advance):
        manifest = check(source, advance=advance)
    state_of(ctx).emit({"ok": True, "engine": manifest.engine, "schema_revision": manifest.schema_revision,
                        "snapshot_at": manifest.snapshot_at.isoformat(), "tables": len(manifest.tables),
                        "files": len(manifest.files)},
                       lambda: console.print(f"{source}: {len(manifest.tables)} tables and {len(manifest.files):,} "
                                                 f"files match their checksums (twinengine {manifest.engine}, "
                                                 f"{manifest.snapshot_at:%Y-%m-%d %H:%M:%S} UTC)", highlight=False))
