"""A unique key or a reference the store refused is a 409 naming the table and the key, as is a row removed
between a request's read and its write or a deadlock the store ended; a null or a check it refused is a bug
and stays one (real SQLite errors, raised by SQLAlchemy)."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, String, create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from twinengine.store.conflicts import store_refusal, stored_conflict


class _Base(DeclarativeBase):
    pass


class Run(_Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String)


def refused(statement: str) -> IntegrityError:
    engine = create_engine("sqlite://")
    with engine.begin() as db:
        db.execute(text("PRAGMA foreign_keys=ON"))
        db.execute(text("CREATE TABLE lake_dids (id INTEGER PRIMARY KEY, scope TEXT NOT NULL, name TEXT, "
                        "bytes INTEGER CHECK (bytes >= 0), UNIQUE (scope, name))"))
        db.execute(text("CREATE TABLE lake_attachments (parent_id INTEGER REFERENCES lake_dids (id))"))
        db.execute(text("INSERT INTO lake_dids VALUES (1, 'demo', 'a', 1)"))
        with pytest.raises(IntegrityError) as caught:
            db.execute(text(statement))
    return caught.value


def test_a_unique_key_names_the_table_and_its_columns() -> None:
    conflict = stored_conflict(refused("INSERT INTO lake_dids VALUES (2, 'demo', 'a', 1)"))
    assert conflict is not None and conflict.status == 409 and conflict.code == "StoredConflict"
    assert conflict.message.startswith("lake_dids (scope, name) already holds a row with the same key")
    assert "nothing of this request was written" in conflict.message


def test_a_primary_key_and_a_reference_are_conflicts_too() -> None:
    assert stored_conflict(refused("INSERT INTO lake_dids VALUES (1, 'demo', 'b', 1)")) is not None
    missing = stored_conflict(refused("INSERT INTO lake_attachments VALUES (7)"))
    assert missing is not None and missing.message.startswith("a row this request refers to")


@pytest.mark.parametrize("statement", ["INSERT INTO lake_dids VALUES (3, NULL, 'c', 1)",
                                       "INSERT INTO lake_dids VALUES (3, 'demo', 'c', -1)"])
def test_a_null_or_a_check_is_left_a_bug(statement: str) -> None:
    assert stored_conflict(refused(statement)) is None


def test_a_row_removed_between_read_and_write_is_a_conflict() -> None:
    """The ORM's UPDATE of a row another request deleted matches nothing (``StaleDataError``)."""
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Run(id=1, title="a"))
        session.commit()
        run = session.get_one(Run, 1)
        session.execute(text("DELETE FROM runs WHERE id = 1"))  # as another request's commit would
        run.title = "b"
        with pytest.raises(StaleDataError) as caught:
            session.flush()
    conflict = store_refusal(caught.value)
    assert conflict is not None and conflict.status == 409
    assert "changed or removed by another request" in conflict.message


def test_a_deadlock_the_store_ended_is_a_conflict_and_other_errors_are_not() -> None:
    """psycopg's own error classes, wrapped as SQLAlchemy wraps them (a real deadlock needs two sessions
    timed against each other: ``tests/e2e/test_concurrent_requests.py`` provokes the ones that happened)."""
    import psycopg.errors
    from sqlalchemy.exc import OperationalError

    deadlock = OperationalError("UPDATE workflow_runs ...", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
    conflict = store_refusal(deadlock)
    assert conflict is not None and conflict.status == 409 and "repeat it" in conflict.message
    lost = OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown("terminating connection"))
    assert store_refusal(lost) is None
    assert store_refusal(ValueError("not the store's")) is None
