"""Apply the engine's one Alembic migration history to a database (on start and by `twin db upgrade`)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, inspect

from twinengine._version import __version__
from twinengine.errors import StoreNewerThanEngine
from twinengine.store.engine import Database

__all__ = ["alembic_config", "analyze", "autogenerate", "current_revision", "head_revision", "refuse_newer_store",
           "upgrade"]

# Any constant works: it serialises engines that start at once against the same PostgreSQL database.
_PG_MIGRATION_LOCK = 0x7477696E



def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "twinengine.store:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; safe when several engines start together. Returns the new revision."""
    from twinengine.store.migrations import HEAD

    # Alembic loads its environment and every script (about half a second) to find a store at head with
    # nothing to do; one query for the store's revision answers that on every start but the first.
    if revision == "head" and current_revision(db) == HEAD:
        if db.backend == "sqlite":
            analyze(db)
        return HEAD
    cfg = alembic_config(db.url)
    with db.engine.begin() as connection:
        if db.backend == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        cfg.attributes["connection"] = connection
        if revision == "head" and not inspect(connection).get_table_names():
            _create_at_head(connection, cfg)
        else:
            try:
                command.upgrade(cfg, revision)
            except CommandError:  # Alembic looks the store's revision up before it runs anything
                refuse_newer_store(connection, ScriptDirectory.from_config(cfg))
                raise
    if db.backend == "sqlite":
        analyze(db)
    return current_revision(db)


def _create_at_head(connection: Connection, cfg: Config) -> None:
    """An empty store built from the models at once, with the rows the history would have written, and
    stamped at the head (Alembic's "building an up to date database from scratch"): 0.05 s where replaying
    the history took 0.7 s. In the caller's transaction: SQLite's write lock (``BEGIN IMMEDIATE``) or
    PostgreSQL's advisory lock keeps a second engine starting at once from finding the store empty too."""
    from twinengine.store.migrations import SEEDS, schema

    metadata = schema()
    metadata.create_all(connection)
    for table, rows in SEEDS.items():
        connection.execute(metadata.tables[table].insert(), rows)
    command.stamp(cfg, "head")


def refuse_newer_store(connection: Connection, scripts: ScriptDirectory) -> None:
    """Refuse a store whose revision this engine's history lacks: a newer engine upgraded it. Running on it
    would read tables this engine does not know the meaning of, and Alembic cannot downgrade from a revision it
    has no script for; the message says what to do instead. Nothing is changed."""
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        return
    try:
        scripts.get_revision(current)
    except CommandError:
        head = scripts.get_current_head()
        raise StoreNewerThanEngine(
            f"the store is at schema revision {current}, which this engine (twinengine {__version__}, schema "
            f"{head}) does not know: a newer engine has upgraded it. Run that engine's release or a later one; an "
            "engine never downgrades a store. To go back to this release, restore a backup taken before the "
            "upgrade (`twin admin restore`). Nothing was changed.") from None


def analyze(db: Database) -> None:
    """Give SQLite's planner statistics (PostgreSQL's autovacuum keeps its own): without them it keeps a
    table's primary-key index where a covering index would read no row (fleet aggregates, 0014). Sampled
    (``analysis_limit``), so it takes milliseconds whatever the size of the store; run on every start."""
    with db.engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA analysis_limit=400")
        connection.exec_driver_sql("ANALYZE")


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(db: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()


def autogenerate(message: str, rev_id: str | None = None) -> str:
    """Write a new migration for the difference between the models and the current history (developers).

    It compares against a scratch SQLite database upgraded to head, so it needs no running server.
    Returns the new file's path; review it before committing.
    """
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        try:
            upgrade(db)
            cfg = alembic_config(db.url)
            script = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
        finally:
            db.dispose()
    scripts = script if isinstance(script, list) else [script]
    return str(scripts[0].path) if scripts and scripts[0] is not None else ""
