"""Entry point of ``twin``: global options, error rendering, and the engine commands (serve, db, version)."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from twinengine._version import __version__
from twinengine.cli import apps, audit, demo, fleet, lake, ml, quality, state, streams, tokens, twins, workflows
from twinengine.cli._common import DataDirOption, Output, console, err_console, local_settings, state_of
from twinengine.client import DEFAULT_URL
from twinengine.errors import TwinEngineError

__all__ = ["app", "main"]


class _ErrorsAsMessages(TyperGroup):
    """Turn engine errors into a red message and exit code 1, never a traceback."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except TwinEngineError as exc:
            err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}", highlight=False, soft_wrap=True)
            for detail in exc.details:
                if "loc" in detail:
                    err_console.print(f"  {detail['loc']}: {detail.get('msg', '')}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


SHUTDOWN_GRACE_SECONDS = 3  # for requests in flight on SIGTERM; the engine's loops get a few more

app = typer.Typer(
    cls=_ErrorsAsMessages,
    help="twinengine: a digital twin engine for science.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    url: str = typer.Option(DEFAULT_URL, "--url", envvar="TWIN_URL", help="Engine to talk to."),
    token: str | None = typer.Option(None, "--token", envvar="TWIN_TOKEN", help="Bearer token.",
                                     show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    ctx.obj = Output(url=url, token=token, as_json=as_json)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default 127.0.0.1, loopback only)."),
    port: int | None = typer.Option(None, help="Port (default 8000)."),
    data_dir: Any = DataDirOption,
    lake_daemons: bool = typer.Option(True, "--lake-daemons/--no-lake-daemons",
                                      help="Run the lake's judge, conveyor and reaper in this process."),
) -> None:
    """Run the engine: REST API, OpenAPI docs at /docs, /health and /metrics."""
    import uvicorn

    from twinengine.api import create_app

    settings = local_settings(data_dir)
    overrides: dict[str, Any] = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    overrides["lake_daemons"] = lake_daemons
    settings = _sandbox_for_serving(settings.model_copy(update=overrides))
    err_console.print(f"twinengine {__version__}: data in {settings.data_dir}, store "
                      f"{settings.db_url.split('://')[0]}, listening on http://{settings.host}:{settings.port}")
    # On SIGTERM, requests in flight get a few seconds; then the engine stops, ending runs still in
    # progress as errors that say so (a synchronous graph's request included).
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS)


def _sandbox_for_serving(settings: Any) -> Any:
    """A served engine runs other people's code only in a sandbox: with ``sandbox = auto`` and no working
    bwrap it refuses such code (and says so now); ``TWIN_SANDBOX=none`` runs it unsandboxed, loudly."""
    from twinengine.workers.sandbox import bwrap_works

    if settings.sandbox == "none":
        err_console.print("[bold red]TWIN_SANDBOX=none: UDFs and app code run WITHOUT a sandbox and can read this "
                          "engine's secrets (data dir, keys, tokens). Serve only yourself this way.[/bold red]")
        return settings
    problem = bwrap_works()
    if problem is None:
        return settings
    err_console.print(f"[bold red]{problem}.[/bold red] This engine refuses to run UDFs, app functions and app "
                      "processes until bubblewrap works (or TWIN_SANDBOX=none says to run them unsandboxed).")
    return settings.model_copy(update={"sandbox": "bwrap"})


db_app = typer.Typer(help="The metadata store.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(data_dir: Any = DataDirOption) -> None:
    """Apply pending migrations (the engine also does this when it starts)."""
    from twinengine.store import migrate
    from twinengine.store.engine import Database

    settings = local_settings(data_dir)
    db = Database(settings.db_url)
    try:
        before = migrate.current_revision(db)
        after = migrate.upgrade(db)
    finally:
        db.dispose()
    console.print(f"store at revision {after}" + ("" if before == after else f" (was {before})"))


@db_app.command("current")
def db_current(data_dir: Any = DataDirOption) -> None:
    """Show the store's migration revision and the newest this engine knows."""
    from twinengine.store import migrate
    from twinengine.store.engine import Database

    db = Database(local_settings(data_dir).db_url)
    try:
        console.print(f"current {migrate.current_revision(db)}, head {migrate.head_revision(db)}")
    finally:
        db.dispose()


@db_app.command("rebuild-state")
def db_rebuild_state(ctx: typer.Context,
                     twin: str | None = typer.Option(None, "--twin", help="Only this twin (name or id)."),
                     data_dir: Any = DataDirOption) -> None:
    """Rebuild twins' current-state heads from their revision log (the log is the truth); safe while serving."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from twinengine.store import migrate
    from twinengine.store.engine import Database
    from twinengine.twins.rebuild import rebuild_state, twins_to_rebuild

    db = Database(local_settings(data_dir).db_url)
    try:
        current, head = migrate.current_revision(db), migrate.head_revision(db)
        if current != head:
            err_console.print(f"[red]error[/red]: the store is at migration {current}, not {head}: run `twin db "
                              "upgrade` first (it also builds the heads)", highlight=False)
            raise typer.Exit(1)
        selected = twins_to_rebuild(db, twin)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("revisions"),
                   TimeRemainingColumn())
        with Progress(*columns, console=err_console, transient=True) as progress:
            task = progress.add_task("rebuilding state heads", total=sum(n for _, _, n in selected))
            done = rebuild_state(db, selected, lambda r: progress.advance(task, max(r.revisions, 1)))
    finally:
        db.dispose()
    drifted = [r.name for r in done if r.drifted]
    revisions = sum(r.revisions for r in done)

    def show() -> None:
        console.print(f"rebuilt the state heads of {len(done)} twin{'s' * (len(done) != 1)} ({revisions:,} "
                      "revisions)", highlight=False)
        console.print(f"differed from the log and are now repaired: {', '.join(drifted)}" if drifted
                      else "every twin's heads already matched its log", highlight=False)

    state_of(ctx).emit({"twins": len(done), "revisions": revisions, "drifted": drifted}, show)


@db_app.command("revision")
def db_revision(message: str = typer.Option(..., "--message", "-m", help="What the migration does."),
                rev_id: str | None = typer.Option(None, "--rev-id", help="Revision id, e.g. 0002.")) -> None:
    """(Developers) Autogenerate a migration from the models; review the file before committing."""
    from twinengine.store import migrate

    console.print(f"wrote {migrate.autogenerate(message, rev_id)}")


@app.command()
def version() -> None:
    """Print the engine version."""
    console.print(__version__)


app.add_typer(tokens.app, name="token")
app.add_typer(apps.app, name="app")
app.add_typer(state.app, name="state")
app.add_typer(lake.app, name="lake")
app.add_typer(streams.app, name="stream")
app.add_typer(streams.buffers, name="buffer")
app.add_typer(fleet.app, name="fleet")
app.command("audit")(audit.audit)
app.command("quality")(quality.quality)
app.command("demo")(demo.demo)
app.command("run")(workflows.run)
app.add_typer(workflows.app, name="runs")
app.add_typer(workflows.triggers_app, name="triggers")
app.command("train")(ml.train)
app.command("tune")(ml.tune)
app.command("models")(ml.models)
for name, command in twins.COMMANDS.items():
    app.command(name)(command)


def main() -> None:
    app(prog_name="twin")


if __name__ == "__main__":
    main()
