"""The constant head the engine's start compares a store with is the history's real head."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from twinengine.store import migrate
from twinengine.store.engine import Database
from twinengine.store.migrations import HEAD


def test_head_is_the_scripts_head() -> None:
    scripts = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert scripts.get_current_head() == HEAD, "a new migration: set store.migrations.HEAD to its revision"


def test_a_store_at_head_starts_without_alembic(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert migrate.upgrade(db) == HEAD

        def loads_scripts(*args: object, **kwargs: object) -> None:
            raise AssertionError("Alembic's scripts were loaded for a store already at head")

        monkeypatch.setattr(command, "upgrade", loads_scripts)
        monkeypatch.setattr(ScriptDirectory, "from_config", loads_scripts)
        assert migrate.upgrade(db) == HEAD
        with db.engine.begin() as connection:  # an older store still goes through Alembic
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0037'")
        with pytest.raises(AssertionError, match="scripts were loaded"):
            migrate.upgrade(db)
    finally:
        db.dispose()
