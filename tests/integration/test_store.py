"""The metadata store: migrations on start and on demand, SQLite in WAL mode, UTC timestamps everywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command as alembic_command
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import OperationalError

from helpers import Engine
from pg_fixtures import new_database
from twinengine.auth.models import AuditEvent
from twinengine.store import engine as store_engine
from twinengine.store import migrate
from twinengine.store.base import Base
from twinengine.store.engine import Database

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores


@pytest.mark.empty_store  # not the migrated copy the other tests start from
def test_migrations_are_applied_on_start(engine: Engine) -> None:
    db = engine.runtime.db
    assert migrate.current_revision(db) == migrate.head_revision(db)
    with db.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


def test_upgrade_is_idempotent(engine: Engine) -> None:
    db = engine.runtime.db
    assert migrate.upgrade(db) == migrate.head_revision(db)
    assert migrate.upgrade(db) == migrate.head_revision(db)


def test_a_store_at_head_is_found_so_without_loading_the_history(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``twin serve`` migrates the store, then the runtime's start asks again: one query answers, not Alembic
    loading every script. A store behind the head is still migrated."""
    prepared, behind = Database(f"sqlite:///{tmp_path / 'prepared.db'}"), Database(f"sqlite:///{tmp_path / 'b.db'}")
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        head = migrate.upgrade(prepared)
        assert head is not None
        migrate.upgrade(behind, f"{int(head) - 1:04d}")
        run: list[str] = []
        alembic_upgrade = alembic_command.upgrade

        def counted(cfg: Any, revision: str) -> None:
            run.append(revision)
            alembic_upgrade(cfg, revision)

        monkeypatch.setattr(alembic_command, "upgrade", counted)
        assert migrate.upgrade(prepared) == head and run == []
        assert migrate.upgrade(empty) == head and run == []  # built from the models at once, stamped at head
        assert migrate.upgrade(behind) == head and run == ["head"]
        for db in (empty, behind):
            assert migrate.current_revision(db) == migrate.head_revision(db)
    finally:
        for db in (prepared, behind, empty):
            db.dispose()


@pytest.fixture
def fresh(backend: str, tmp_path: Path) -> Iterator[Callable[[], Database]]:
    """New empty databases of the test's store: SQLite files, or PostgreSQL databases of the test's own."""
    made: list[Database] = []
    with ExitStack() as dropped:
        def new() -> Database:
            if backend == "sqlite":
                url = f"sqlite:///{tmp_path / f'fresh-{len(made)}.db'}"
            else:
                url = dropped.enter_context(new_database("twin_fresh")).replace("postgresql://",
                                                                                "postgresql+psycopg://", 1)
            made.append(Database(url))
            return made[-1]

        yield new
        for db in made:
            db.dispose()


def _replayed(db: Database) -> None:
    """Every migration of the history run in turn, as a store made by an older engine was brought to head."""
    cfg = migrate.alembic_config(db.url)
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        alembic_command.upgrade(cfg, "head")


def _schema_and_rows(db: Database) -> dict[str, Any]:
    """What a store is made of, as the database reports it: per table its columns (any order), primary key,
    indexes, unique, foreign-key and check constraints, and its rows."""
    described: dict[str, Any] = {}
    with db.engine.connect() as conn:
        found = inspect(conn)
        for table in sorted(found.get_table_names()):
            columns = sorted((c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                             for c in found.get_columns(table))
            indexes = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]), str(i.get("dialect_options")))
                             for i in found.get_indexes(table))
            uniques = sorted((u["name"] or "", tuple(u["column_names"])) for u in found.get_unique_constraints(table))
            keys = sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]),
                           str(f.get("options"))) for f in found.get_foreign_keys(table))
            checks = sorted(str(c["sqltext"]) for c in found.get_check_constraints(table))
            rows = sorted(sorted((name, str(value)) for name, value in row._mapping.items())
                          for row in conn.execute(text(f'SELECT * FROM "{table}"')))
            key = found.get_pk_constraint(table)["constrained_columns"]
            described[table] = {"columns": columns, "primary key": key, "indexes": indexes, "unique": uniques,
                                "foreign keys": keys, "checks": checks, "rows": rows}
    return described


def test_models_match_the_migration_history(fresh: Callable[[], Database]) -> None:
    """Autogenerate against a store brought to head by the whole history finds nothing left to do: one
    history, no drift."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    db = fresh()
    _replayed(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_an_empty_store_is_built_at_head_as_the_history_builds_it(fresh: Callable[[], Database]) -> None:
    """An empty store is made from the models at once and stamped (the first start's 0.7 s of migrations);
    what it holds is what replaying every migration gives: the same tables, columns, keys, indexes,
    constraints, seeded rows and revision. A model changed without its migration (or a migration that seeds
    rows ``SEEDS`` lacks) fails here."""
    replayed, built = fresh(), fresh()
    _replayed(replayed)
    assert migrate.upgrade(built) == migrate.current_revision(replayed) == migrate.head_revision(built)
    expected, got = _schema_and_rows(replayed), _schema_and_rows(built)
    assert set(got) == set(expected)
    for table in expected:
        assert got[table] == expected[table], table
    assert any(expected[table]["rows"] for table in expected if table != "alembic_version")  # seeds compared too


def test_sqlite_runs_in_wal_mode(engine: Engine, backend: str) -> None:
    if backend != "sqlite":
        return
    with engine.runtime.db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_timestamps_come_back_in_utc(engine: Engine) -> None:
    moment = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    with engine.runtime.db.session() as session:
        event = AuditEvent(at=moment, actor="t", action="x", target="y", outcome="success")
        session.add(event)
        session.flush()
        event_id = event.id
    with engine.runtime.db.session() as session:
        stored = session.scalar(select(AuditEvent).where(AuditEvent.id == event_id))
        assert stored is not None
        assert stored.at == moment and stored.at.tzinfo == UTC


def _backend_pid(db: Database) -> int:
    with db.session(readonly=True) as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url.replace("+psycopg", "", 1), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_dropped_postgresql_connection_costs_at_most_one_unit_of_work(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pooled connection is pinged only after it sat idle, not on every checkout; one the server dropped
    meanwhile is replaced unseen. Used again within the idle window, a dropped connection fails that one
    unit of work (nothing was acknowledged), and the pool replaces it for the next."""
    monkeypatch.setattr(store_engine, "PING_AFTER_IDLE_S", 0.0)
    pinged = Database(database_url, pool_size=1)
    monkeypatch.setattr(store_engine, "PING_AFTER_IDLE_S", 3600.0)
    trusting = Database(database_url, pool_size=1)
    try:
        first = _backend_pid(pinged)
        _terminate(database_url, first)
        assert _backend_pid(pinged) != first  # replaced before the unit of work saw it

        first = _backend_pid(trusting)
        _terminate(database_url, first)
        with pytest.raises(OperationalError):
            _backend_pid(trusting)
        assert _backend_pid(trusting) != first
    finally:
        pinged.dispose()
        trusting.dispose()


def test_a_read_only_unit_of_work_reads_in_autocommit_and_refuses_writes(engine: Engine, backend: str) -> None:
    """On PostgreSQL a read-only unit of work sends no BEGIN or COMMIT (each statement reads its own snapshot,
    as it would in a READ COMMITTED transaction); a write there would not be atomic, so it is refused before
    it runs. The pooled connection goes back to transactions for the next unit of work. On SQLite the read
    stays a transaction (one WAL snapshot for all its statements)."""
    db = engine.runtime.db
    with db.session() as session:
        session.execute(text("CREATE TABLE scratch_rows (x integer)"))
    with db.session(readonly=True) as session:
        assert session.execute(text("SELECT count(*) FROM scratch_rows")).scalar() == 0
        autocommit = session.connection().get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        assert autocommit is (backend != "sqlite")
        if backend != "sqlite":
            with pytest.raises(store_engine.WriteInReadOnlyUnit, match="INSERT INTO scratch_rows"):
                session.execute(text("INSERT INTO scratch_rows VALUES (1)"))
    with db.session() as session:
        assert session.connection().get_execution_options().get("isolation_level") != "AUTOCOMMIT"
        session.execute(text("INSERT INTO scratch_rows VALUES (2)"))
    with db.session(readonly=True) as session:
        assert session.execute(text("SELECT x FROM scratch_rows")).scalars().all() == [2]
