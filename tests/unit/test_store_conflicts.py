"""A unique key or a reference the store refused is a 409 naming the table and the key; a null or a check
it refused is a bug and stays one (real SQLite errors, raised by SQLAlchemy)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from twinengine.store.conflicts import stored_conflict


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
