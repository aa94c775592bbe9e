"""Entry point of ``twin``: global options, error rendering, and the engine commands (serve, db, version)."""

from __future__ import annotations

from typing import Any

import typer

from twinengine._defaults import DEFAULT_URL
from twinengine._version import __version__
from twinengine.cli._common import DataDirOption, Output, console, err_console, local_settings, state_of
from twinengine.cli._help import fold_help_tables
from twinengine.cli._lazy import Lazy, LazyGroup
from twinengine.errors import TwinEngineError

__all__ = ["app", "main"]

fold_help_tables()  # help tables print long words whole
_CLI = "twinengine.cli."
SANDBOX_CHECK = "twin-sandbox-check"  # the thread on which ``twin serve`` checks the sandbox as it starts
_TWINS = _CLI + "twins"
# Imported only when run (see cli/_lazy.py); the summaries are what `twin --help` shows for them.
SUBCOMMANDS = {
    "audit": Lazy(_CLI + "audit", "audit", "Who wrote what, when, and how it ended (newest first)."),
    "quality": Lazy(_CLI + "quality", "quality", "Input quality of a twin's streams: share of good / suspect / "
                    "bad records, failed checks, lateness and\ncompleteness, per window of event time."),
    "verify": Lazy(_CLI + "verify", "verify", "Verify a twin's forecasts against what was observed, per "
                   "workflow, model version and lead."),
    "assimilate": Lazy(_CLI + "assimilate", "assimilate", "Correct a twin's state from its observations (data "
                       "assimilation)."),
    "calibrate": Lazy(_CLI + "calibrate", "app", "Fit a twin's parameters to its observed history (SCE-UA, "
                      "differential evolution, DREAM, emcee); accept or reject the result."),
    "ensemble": Lazy(_CLI + "ensembles", "app", "Ensembles of a twin's workflow: members, statistics, progress."),
    "scenario": Lazy(_CLI + "ensembles", "scenario_app", "What-if branches from a scenario file (forks, runs)."),
    "compare": Lazy(_CLI + "ensembles", "compare", "Show twins (a scenario's branches) side by side: chosen state, "
                    "changed parameters, latest forecasts."),
    "demo": Lazy(_CLI + "demo", "demo", "Publish river-reach, create a twin, simulate its gauges, time-travel, "
                 "fork a what-if, plot it."),
    "run": Lazy(_CLI + "workflows", "run", "Run a workflow of a twin's app (async; --wait follows it; --what-if "
                "runs it on a fork of the twin)."),
    "train": Lazy(_CLI + "ml", "train", "Train a twin's model (queued in the engine); the gate decides whether "
                  "the new version becomes champion."),
    "tune": Lazy(_CLI + "ml", "tune", "Search hyper-parameters with Optuna, then train and register the best "
                 "configuration."),
    "models": Lazy(_CLI + "ml", "models", "The twin's models: every version with its aliases, metrics and the "
                   "gate's decision."),
    "training": Lazy(_CLI + "ml", "training_app", "Training runs of a twin: list, show, stop."),
    "create": Lazy(_TWINS, "COMMANDS.create", "Create a twin of a published app; parameters are checked against "
                   "the app's schema."),
    "list": Lazy(_TWINS, "COMMANDS.list", "Twins you own or were granted; with filters, one page by name "
                 "(--cursor for the next)."),
    "update": Lazy(_TWINS, "COMMANDS.update", "Set a twin's tags and/or location (owner or admin)."),
    "show": Lazy(_TWINS, "COMMANDS.show", "One twin: app, owner, parameters, origin."),
    "delete": Lazy(_TWINS, "COMMANDS.delete", "Delete a twin and its whole state history (owner or admin)."),
    "fork": Lazy(_TWINS, "COMMANDS.fork", "Fork a what-if scenario: a new twin starting from the state at a "
                 "revision; the origin is untouched."),
    "grant": Lazy(_TWINS, "COMMANDS.grant", "Let another identity, or every member "
                        "of a group, read or operate your twin."),
    "revoke": Lazy(_TWINS, "COMMANDS.revoke", "Take back a grant (of an "
                         "identity, or of a group with --group)."),
    "grants": Lazy(_TWINS, "COMMANDS.grants", "Who else may read or operate a twin: "
                         "identities, and groups (as group:NAME)."),
    "link": Lazy(_CLI + "relations", "COMMANDS.link", "Link two twins by a relationship type, checked against "
                 "the source's app."),
    "unlink": Lazy(_CLI + "relations", "COMMANDS.unlink", "Close a link; it stays readable as of earlier times."),
    "links": Lazy(_CLI + "relations", "COMMANDS.links", "A twin's links now, as of a time, or all of them."),
    "related": Lazy(_CLI + "relations", "COMMANDS.related", "Twins within some hops along links, e.g. what is "
                    "downstream of a reach."),
    "subscribe": Lazy(_CLI + "subscriptions", "subscribe", "Be told when a twin's condition changes, by e-mail "
                      "or a signed webhook."),
    "subscriptions": Lazy(_CLI + "subscriptions", "app", "Your subscriptions to twins' conditions: list, show, "
                          "delete, test."),
    "fleet": Lazy(_CLI + "fleet", "app", "Fleets of twins: aggregates of a state property over many twins."),
    "login": Lazy(_CLI + "login", "login", "Sign in through your institution: open the URL shown, enter the code, "
                  "and come back (device flow)."),
    "whoami": Lazy(_CLI + "login", "whoami", "Who the engine takes you for: identity, provider, groups, role, and "
                   "when the sign-in expires."),
    "logout": Lazy(_CLI + "login", "logout", "Forget the sign-in to this engine, and revoke its refresh token at "
                   "the provider where it can."),
    "token": Lazy(_CLI + "tokens", "app", "Tokens: create (admins; scoped ones for yourself), list, revoke, "
                  "rotate-keys."),
    "identity": Lazy(_CLI + "tokens", "identity_app", "Identities (admins): list, disable, enable, delete."),
    "group": Lazy(_CLI + "groups", "app", "Groups of identities: create, update, delete, add, remove (admins), "
                                          "list, show."),
    "offer": Lazy(_CLI + "offers", "app", "The data space: offer lake data under ODRL policies; find, negotiate "
                  "and transfer another engine's."),
    "app": Lazy(_CLI + "apps", "app", "DT applications: start from a template, test locally, validate, publish "
                "and browse the catalogue."),
    "state": Lazy(_CLI + "state", "app", "A twin's state: write, read (now or as of a revision/time), history, "
                  "diff."),
    "lake": Lazy(_CLI + "lake", "app", "The federated data lake: endpoints, files and datasets, replication "
                 "rules, STAC import."),
    "stream": Lazy(_CLI + "streams", "app", "A twin's streams: send, read, tail, bind to MQTT, functions on "
                   "arrival."),
    "buffer": Lazy(_CLI + "streams", "buffers", "Retraining buffers: policies that collect stream records for "
                   "the AI lifecycle."),
    "cwl": Lazy(_CLI + "cwl", "app", "CWL application packages: run or validate one through the engine's "
                "sandboxed CWL runner; export an app's workflow."),
    "runs": Lazy(_CLI + "workflows", "app", "Workflow runs: status, logs, provenance, results."),
    "triggers": Lazy(_CLI + "workflows", "triggers_app", "Triggers that start a twin's workflows (cron, "
                     "webhook, dataset)."),
    "site": Lazy(_CLI + "sites", "app", "Compute sites: register (providers), list, show, drain, remove."),
    "usage": Lazy(_CLI + "sites", "usage", "What runs used (core- and GPU-hours, memory, bytes) by identity, "
                  "group, twin, app, site or kind."),
    "quota": Lazy(_CLI + "sites", "quota_app", "Compute quotas: core-hours per identity or group per site (admins "
                  "set them)."),
    "admin": Lazy(_CLI + "admin", "app", "Operate an engine on its machine: back up a data dir and its store while "
                  "it serves, restore one elsewhere."),
}


class _ErrorsAsMessages(LazyGroup):
    """Turn engine errors into a red message and exit code 1, never a traceback."""

    lazy = SUBCOMMANDS

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except TwinEngineError as exc:
            from rich.markup import escape  # a location such as head[ow3] is not markup

            err_console.print(f"[red]error[/red] ({exc.code}): {escape(exc.message)}", highlight=False,
                              soft_wrap=True)
            for detail in exc.details:
                if "loc" in detail:
                    err_console.print(escape(f"  {detail['loc']}: {detail.get('msg', '')}"), highlight=False,
                                      soft_wrap=True)
            raise typer.Exit(1) from None


SHUTDOWN_GRACE_SECONDS = 3  # for requests in flight on SIGTERM; the engine's loops get a few more

app = typer.Typer(
    cls=_ErrorsAsMessages,
    help="twinengine: a digital twin engine for science.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(asked: bool) -> None:
    """``twin --version``: the release (semantic version; CHANGELOG.md says what each one changed)."""
    if asked:
        console.print(f"twinengine {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    url: str = typer.Option(DEFAULT_URL, "--url", envvar="TWIN_URL", help="Engine to talk to."),
    token: str | None = typer.Option(None, "--token", envvar="TWIN_TOKEN", help="Bearer token.",
                                     show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    profile: str = typer.Option("default", "--profile", envvar="TWIN_PROFILE",
                                help="Whose sign-in (`twin login --profile`) to use without --token."),
    _version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                  help="Print the engine's version and exit."),
) -> None:
    ctx.obj = Output(url=url, token=token, as_json=as_json, profile=profile)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default 127.0.0.1, loopback only)."),
    port: int | None = typer.Option(None, help="Port (default 8000)."),
    data_dir: Any = DataDirOption,
    lake_daemons: bool = typer.Option(True, "--lake-daemons/--no-lake-daemons",
                                      help="Run the lake's judge, conveyor and reaper in this process."),
    processes: int | None = typer.Option(
        None, "--processes", min=1, max=64, show_default=False,
        help="Engine processes serving the socket (default 1, or TWIN_SERVE_PROCESSES): each uses a core. "
             "Above 1 the stream log must be shared (TWIN_STREAM_BACKEND=nats), and PostgreSQL is the store "
             "it pays off with."),
) -> None:
    """Run the engine: REST API, OpenAPI docs at /docs, /health and /metrics."""
    from twinengine.stopping import unblock_stop_signals

    unblock_stop_signals()  # started with SIGINT blocked, Ctrl-C would never reach uvicorn's handler
    overrides: dict[str, Any] = {k: v for k, v in {"host": host, "port": port, "serve_processes": processes}.items()
                                 if v is not None}
    settings = _sandbox_for_serving(local_settings(data_dir, lake_daemons=lake_daemons, **overrides))
    count = settings.serve_processes
    err_console.print(f"twinengine {__version__}: data in {settings.data_dir}, store "
                      f"{settings.db_url.split('://')[0]}, listening on http://{settings.host}:{settings.port}"
                      + (f" with {count} engine processes" if count > 1 else ""))
    if count > 1:
        from twinengine.api.serving import serve_processes

        if not serve_processes(settings, grace=SHUTDOWN_GRACE_SECONDS):
            raise typer.Exit(1)
        return
    import uvicorn

    from twinengine.api.edge import edge_config
    from twinengine.api.starting import StartingApp

    # Listening at once; the engine starts behind (api/starting.py) and requests wait for it. On SIGTERM,
    # requests in flight get a few seconds; then the engine stops, ending runs still in progress as errors
    # that say so (a synchronous graph's request included). Each request is bounded first (api/edge.py).
    app = StartingApp(settings)
    server = uvicorn.Server(edge_config(app, settings, host=settings.host, port=settings.port,
                                        log_level=settings.log_level,
                                        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS))
    app.on_failure = lambda: setattr(server, "should_exit", True)
    server.run()
    if app.failed is not None or not server.started:
        raise typer.Exit(1)


def _sandbox_for_serving(settings: Any) -> Any:
    """A served engine runs other people's code only in a sandbox: with ``sandbox = auto`` and no working
    bwrap it refuses such code (and says so now); ``TWIN_SANDBOX=none`` runs it unsandboxed, loudly."""
    import threading

    from twinengine.workers.sandbox import Sandbox

    if settings.sandbox == "none":
        err_console.print("[bold red]TWIN_SANDBOX=none: UDFs and app code run WITHOUT a sandbox and can read this "
                          "engine's secrets (data dir, keys, tokens). Serve only yourself this way.[/bold red]")
        return settings
    settings = settings.model_copy(update={"sandbox": "bwrap"})
    # One tiny worker started in the real layout, said once if it fails. A few tenths of a second spent waiting
    # on that worker: on a thread, while the server starts listening and the engine is imported; the engine's
    # own check when it starts waits for this answer.
    threading.Thread(target=Sandbox.from_settings(settings).announce, name=SANDBOX_CHECK, daemon=True).start()
    return settings


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
    console.print(f"store at revision {after}" + ("" if before == after else " (a new store)" if before is None
                                                   else f" (was {before})"))


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
    """Rebuild twins' current-state heads from their revision log (the log is the truth), and the index of their
    parameters from the parameters; safe while serving."""
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



def main() -> None:
    app(prog_name="twin")


if __name__ == "__main__":
    main()
