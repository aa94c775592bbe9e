"""Backups on their own (no served engine): a store at an older schema is backed up as it is and restored at this
engine's head with every row; SQL NULL and JSON null stay apart; SQLite restores into PostgreSQL; a damaged
backup or an occupied target is refused before anything is written."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, Table, create_engine, text
from test_store_upgrades import REVISIONS, fill, fingerprint

from twinengine.backup import Manifest, backup, restore, verify
from twinengine.config import Settings
from twinengine.errors import DataCorrupted, InvalidInput
from twinengine.store import migrate
from twinengine.store.engine import Database


def older_store(data: Path, revision: str) -> tuple[MetaData, dict[str, tuple[int, str]]]:
    migrate._reached_head = None
    db = Database(f"sqlite:///{data / 'twin.db'}")
    try:
        migrate.upgrade(db, revision)
        with db.engine.begin() as connection:
            tables = fill(connection)
            # the filler's compacted segments name files it never wrote (a backup refuses such a store)
            connection.execute(text("DELETE FROM stream_segments"))
            return tables, fingerprint(connection, tables)
    finally:
        db.dispose()


def rows_now(url: str, tables: MetaData) -> dict[str, tuple[int, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            current, kept = MetaData(), MetaData()
            current.reflect(connection)
            for table in tables.sorted_tables:
                Table(table.name, kept, *(Column(c.name, current.tables[table.name].c[c.name].type)
                                          for c in table.columns))
            return fingerprint(connection, kept)
    finally:
        engine.dispose()


def test_a_store_at_an_older_schema_is_backed_up_as_it_is_and_restored_at_head(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    (source / "lake").mkdir(parents=True)
    (source / "lake" / "notes.txt").write_text("kept")
    tables, rows = older_store(source, REVISIONS[-3])
    made = backup(Settings(data_dir=source), tmp_path / "backup")
    assert made.manifest.schema_revision == REVISIONS[-3]
    done = restore(tmp_path / "backup", Settings(data_dir=target))
    migrate._reached_head = None
    db = Database(f"sqlite:///{target / 'twin.db'}")
    try:
        assert done.schema_revision == migrate.current_revision(db) == migrate.head_revision(db)
    finally:
        db.dispose()
    assert rows_now(f"sqlite:///{target / 'twin.db'}", tables) == rows
    assert (target / "lake" / "notes.txt").read_text() == "kept"


def _twins_column(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return sorted(connection.execute(text("SELECT jti, twins IS NULL, twins FROM api_tokens")).all(),
                          key=lambda r: str(r[0]))
    finally:
        engine.dispose()


def _tokens(data: Path) -> None:
    """Two tokens: one limited to no twin list at all (SQL NULL), one whose list is a JSON null."""
    migrate._reached_head = None
    db = Database(f"sqlite:///{data / 'twin.db'}")
    try:
        migrate.upgrade(db)
        with db.engine.begin() as connection:
            connection.execute(text("INSERT INTO identities (name, id, created_at, created_by, disabled) "
                                    "VALUES ('uma', 'i1', '2026-03-01 00:00:00', 'admin', 0)"))
            for jti, twins in (("t-sql", None), ("t-json", "null")):
                connection.execute(text(
                    "INSERT INTO api_tokens (jti, identity, identity_id, role, issued_at, expires_at, twins) "
                    "VALUES (:jti, 'uma', 'i1', 'user', '2026-03-01 00:00:00', '2027-03-01 00:00:00', :twins)"),
                    {"jti": jti, "twins": twins})
    finally:
        db.dispose()


def test_sql_null_and_json_null_stay_apart(tmp_path: Path) -> None:
    _tokens(tmp_path / "a")
    before = _twins_column(f"sqlite:///{tmp_path / 'a' / 'twin.db'}")
    assert [r[1] for r in before] == [0, 1]  # t-json: JSON null; t-sql: SQL NULL
    backup(Settings(data_dir=tmp_path / "a"), tmp_path / "backup")
    restore(tmp_path / "backup", Settings(data_dir=tmp_path / "b"))
    assert _twins_column(f"sqlite:///{tmp_path / 'b' / 'twin.db'}") == before


@pytest.mark.postgres
def test_a_sqlite_store_restores_into_postgres(tmp_path: Path, own_database: str) -> None:
    _tokens(tmp_path / "a")
    tables, rows = older_store(tmp_path / "other", REVISIONS[-1])
    del tables, rows
    made = backup(Settings(data_dir=tmp_path / "a"), tmp_path / "backup")
    url = own_database.replace("postgresql://", "postgresql+psycopg://", 1)
    restore(tmp_path / "backup", Settings(data_dir=tmp_path / "b", database_url=url))
    restored = _twins_column(url)
    assert [(r[0], r[1]) for r in restored] == [("t-json", False), ("t-sql", True)]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            counts = {t.name: connection.execute(text(f'SELECT count(*) FROM "{t.name}"')).scalar()
                      for t in made.manifest.tables}
            # the ids a PostgreSQL sequence hands out next come after the restored ones
            audit = connection.execute(text("SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))")).scalar()
    finally:
        engine.dispose()
    assert counts == {t.name: t.rows for t in made.manifest.tables}
    assert audit is not None


def test_a_damaged_backup_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    _tokens(tmp_path / "a")
    (tmp_path / "a" / "lake").mkdir()
    (tmp_path / "a" / "lake" / "file.bin").write_bytes(b"\x00" * 4096)
    backup(Settings(data_dir=tmp_path / "a"), tmp_path / "backup")
    verify(tmp_path / "backup")
    copied = tmp_path / "backup" / "files" / "data" / "lake" / "file.bin"
    copied.write_bytes(b"\x01" + copied.read_bytes()[1:])
    with pytest.raises(DataCorrupted, match=r"data/lake/file\.bin"):
        restore(tmp_path / "backup", Settings(data_dir=tmp_path / "b"))
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    (tmp_path / "backup" / "manifest.json").unlink()
    with pytest.raises(InvalidInput, match=r"no manifest\.json"):
        verify(tmp_path / "backup")


def test_a_restore_never_writes_into_an_engine_that_has_data(tmp_path: Path) -> None:
    _tokens(tmp_path / "a")
    backup(Settings(data_dir=tmp_path / "a"), tmp_path / "backup")
    with pytest.raises(InvalidInput, match="not empty"):
        restore(tmp_path / "backup", Settings(data_dir=tmp_path / "a"))
    with pytest.raises(InvalidInput, match="not an empty folder"):
        backup(Settings(data_dir=tmp_path / "a"), tmp_path / "backup")
    with pytest.raises(InvalidInput, match="inside the engine's folder"):
        backup(Settings(data_dir=tmp_path / "a"), tmp_path / "a" / "backups" / "1")
    manifest = Manifest.read(tmp_path / "backup")
    assert json.loads(manifest.model_dump_json())["schema_revision"] == migrate.head_revision(
        Database(f"sqlite:///{tmp_path / 'a' / 'twin.db'}"))
    with closing(sqlite3.connect(tmp_path / "a" / "twin.db")) as store:
        assert store.execute("SELECT count(*) FROM api_tokens").fetchone() == (2,)


def test_a_backup_knows_every_table_of_the_store(tmp_path: Path) -> None:
    """The tables a backup dumps are those a store at head has (the models the migrations' environment reads)."""
    from sqlalchemy import inspect

    from twinengine.backup.rows import engine_tables

    migrate._reached_head = None
    db = Database(f"sqlite:///{tmp_path / 'twin.db'}")
    try:
        migrate.upgrade(db)
        with db.engine.connect() as connection:
            stored = set(inspect(connection).get_table_names()) - {"alembic_version"}
    finally:
        db.dispose()
    assert set(engine_tables()) == stored
