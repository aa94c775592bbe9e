"""The metadata store: migrations on start and on demand, SQLite in WAL mode, UTC timestamps everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import inspect, select, text

from helpers import Engine
from twinengine.auth.models import AuditEvent
from twinengine.store import migrate
from twinengine.store.base import Base


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


def test_models_match_the_migration_history(engine: Engine) -> None:
    """Autogenerate against the migrated store finds nothing left to do: one history, no drift."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.runtime.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


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
