"""Upgrades keep every row: a store made at each earlier schema revision (built here from the migrations, every
table filled with rows), on SQLite and on PostgreSQL, is upgraded to head, and every row of every table is
still there with the same values (counted and checksummed before and after, column by column as the older
revision had them). A data dir's files come through ``twin db upgrade`` byte for byte, and an engine refuses a
store newer than itself, saying what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    select,
)
from typer.testing import CliRunner

from helpers import serve_engine, unavailable
from pg_fixtures import POSTGRES_ADMIN_URL
from twinengine.cli.main import app as cli
from twinengine.errors import StoreNewerThanEngine
from twinengine.store import migrate
from twinengine.store.engine import Database

ROWS = 3  # per table: parents and children pair up row by row, so composite keys stay unique
# Tables a migration rebuilds from others by design (the comparison skips them; their sources are compared).
DERIVED = {"twin_parameters": "0015 rebuilds the index of twins' parameters from twins.parameters"}
# What an upgrade must never lose, by table: each is filled at every revision that has it, and compared.
ENTITIES = ("identities", "api_tokens", "twins", "state_revisions", "state_values", "stream_segments",
            "lake_dids", "lake_replicas", "workflow_runs", "ml_training_runs", "ml_gate_decisions")


def _revisions() -> list[str]:
    scripts = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    return [s.revision for s in reversed(list(scripts.walk_revisions()))]


REVISIONS = _revisions()


def _value(table: Table, column: Any, i: int, postgres: bool) -> Any:
    kind = column.type
    if isinstance(kind, JSON):
        return {"station": f"RR-{i:02d}", "level": i + 0.25, "flags": [i, "ok"], "nested": {"k": i}}
    if isinstance(kind, Boolean):
        return i % 2 == 0
    if isinstance(kind, Integer | BigInteger):
        return i + 1
    if isinstance(kind, Float):
        return i + 0.5
    if isinstance(kind, DateTime):
        moment = datetime(2026, 3, 1, 6, tzinfo=UTC) + timedelta(hours=i, microseconds=123)
        return moment if postgres else moment.replace(tzinfo=None)
    if isinstance(kind, LargeBinary):
        return bytes([i]) * 8
    if isinstance(kind, String | Text):
        text = f"{i}-{table.name}.{column.name}"
        length = getattr(kind, "length", None)
        return text[:length] if length else text
    raise AssertionError(f"no filler for {table.name}.{column.name} of type {kind!r}: add one")


def fill(connection: Connection) -> MetaData:
    """Every table of the store as it is now gets ROWS rows, parents first; a foreign key takes the value of
    the parent row with the same number (a table referring to itself: none, or its own row)."""
    tables = MetaData()
    tables.reflect(connection)
    made: dict[str, list[dict[str, Any]]] = {}
    postgres = connection.dialect.name == "postgresql"
    for table in tables.sorted_tables:
        if table.name == "alembic_version":
            continue
        rows = []
        for i in range(ROWS):
            row: dict[str, Any] = {}
            for column in table.columns:
                row[column.name] = _value(table, column, i, postgres)
            for fk in table.foreign_keys:
                parent = fk.column.table
                if parent is table:
                    row[fk.parent.name] = None if fk.parent.nullable else row[fk.column.name]
                else:
                    row[fk.parent.name] = made[parent.name][i][fk.column.name]
            rows.append(row)
        connection.execute(table.insert(), rows)
        made[table.name] = rows
    return tables


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, float):
        return repr(value)
    return value


def fingerprint(connection: Connection, tables: MetaData) -> dict[str, tuple[int, str]]:
    """Per table: rows and a checksum of their values (as the given tables' columns), whatever their order."""
    found = {}
    for table in tables.sorted_tables:
        if table.name == "alembic_version" or table.name in DERIVED:
            continue
        digests = sorted(hashlib.sha256(json.dumps([_canonical(v) for v in row], sort_keys=True, default=str)
                                        .encode()).hexdigest() for row in connection.execute(select(table)))
        found[table.name] = (len(digests), hashlib.sha256("".join(digests).encode()).hexdigest())
    return found


def upgrade_keeps_every_row(url: str, revision: str) -> None:
    migrate._reached_head = None  # this process brought other stores to head: ask this one
    db = Database(url)
    try:
        assert migrate.upgrade(db, revision) == revision
        with db.engine.begin() as connection:
            before_tables = fill(connection)
            before = fingerprint(connection, before_tables)
        assert migrate.upgrade(db) == migrate.head_revision(db)
        with db.engine.connect() as connection:
            after_tables = MetaData()
            after_tables.reflect(connection)
            kept = MetaData()
            for table in before_tables.sorted_tables:  # the older revision's columns, read from the newer table
                assert table.name in after_tables.tables, f"table {table.name} was dropped by an upgrade"
                newer = after_tables.tables[table.name]
                missing = [c.name for c in table.columns if c.name not in newer.c]
                assert not missing, f"{table.name}: columns {missing} were dropped by an upgrade"
                Table(table.name, kept, *(Column(c.name, newer.c[c.name].type) for c in table.columns))
            after = fingerprint(connection, kept)
    finally:
        db.dispose()
    assert after == before
    assert all(before[name][0] == ROWS for name in ENTITIES if name in before)


def _migrated(url: str, revision: str) -> None:
    migrate._reached_head = None  # this process brought other stores to head: ask this one
    db = Database(url)
    try:
        assert migrate.upgrade(db, revision) == revision
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def sqlite_at(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """An empty SQLite store at a revision, made from the one at the revision before by its one migration
    (each once per test process, as a running engine's store is upgraded release by release): building each
    from nothing cost the file as much again as the upgrades it checks."""
    root = tmp_path_factory.mktemp("revisions")
    made: dict[str, Path] = {}

    def at(revision: str) -> Path:
        if revision not in made:
            index = REVISIONS.index(revision)
            path = root / f"{revision}.db"
            if index:
                shutil.copyfile(at(REVISIONS[index - 1]), path)
            _migrated(f"sqlite:///{path}", revision)
            with closing(sqlite3.connect(path)) as connection:  # all of it in the file a copy takes
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            made[revision] = path
        return made[revision]

    return at


@pytest.mark.parametrize("revision", REVISIONS)
def test_a_sqlite_store_of_each_revision_upgrades_with_every_row(
        revision: str, sqlite_at: Callable[[str], Path], tmp_path: Path) -> None:
    shutil.copyfile(sqlite_at(revision), tmp_path / "twin.db")
    upgrade_keeps_every_row(f"sqlite:///{tmp_path / 'twin.db'}", revision)


@pytest.fixture(scope="module")
def postgres_admin() -> Iterator[psycopg.Connection[Any]]:
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable("postgresql", f"cannot connect to {POSTGRES_ADMIN_URL}: {exc}")
        raise
    with admin:
        yield admin


def _postgres_url(name: str) -> str:
    return f"{POSTGRES_ADMIN_URL.rpartition('/')[0].replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


@pytest.fixture(scope="module")
def postgres_at(postgres_admin: psycopg.Connection[Any]) -> Iterator[Callable[[str], str]]:
    """The name of an empty PostgreSQL database at a revision, made from the one at the revision before
    (``CREATE DATABASE ... TEMPLATE``) by its one migration, as ``sqlite_at`` does; all dropped at the end."""
    made: dict[str, str] = {}

    def at(revision: str) -> str:
        if revision not in made:
            index = REVISIONS.index(revision)
            name = f"twin_revision_{os.getpid()}_{revision}"
            template = f' TEMPLATE "{at(REVISIONS[index - 1])}"' if index else ""
            postgres_admin.execute(f'CREATE DATABASE "{name}"{template}')
            made[revision] = name  # dropped at the end even if its migration fails
            _migrated(_postgres_url(name), revision)
        return made[revision]

    try:
        yield at
    finally:
        for name in made.values():
            postgres_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ci_only: a database per revision, migrated to head (about 4 s a revision on PostgreSQL, 3 min in all)
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.ci_only
@pytest.mark.parametrize("revision", REVISIONS)
def test_a_postgres_store_of_each_revision_upgrades_with_every_row(
        revision: str, postgres_admin: psycopg.Connection[Any], postgres_at: Callable[[str], str]) -> None:
    name = f"twin_upgrade_{os.getpid()}_{revision}"
    postgres_admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_at(revision)}"')
    try:
        upgrade_keeps_every_row(_postgres_url(name), revision)
    finally:
        postgres_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "twin.db"}


def test_a_data_dir_of_the_first_revision_upgrades_with_its_files(tmp_path: Path) -> None:
    """``twin db upgrade`` on a data dir whose store is at 0001: rows as above, and the data dir's lake files,
    stream segments and model registry byte for byte."""
    data = tmp_path / "data"
    for relative, payload in (("lake/raw/gauges.csv", b"time,level\n2026-03-01T06:00Z,1.2\n"),
                              ("streams/tw-1/gauges/00000000000000000001.seg", os.urandom(256)),
                              ("mlartifacts/1/model.pt", os.urandom(512)), ("keys/issuer-es256.pem", b"key")):
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_bytes(payload)
    with closing(sqlite3.connect(data / "mlflow.db")) as registry:
        registry.execute("CREATE TABLE registered_models (name TEXT PRIMARY KEY)")
        registry.execute("INSERT INTO registered_models VALUES ('reach-runoff')")
        registry.commit()
    url = f"sqlite:///{data / 'twin.db'}"
    migrate._reached_head = None
    db = Database(url)
    try:
        migrate.upgrade(db, REVISIONS[0])
        with db.engine.begin() as connection:
            tables = fill(connection)
            rows = fingerprint(connection, tables)
    finally:
        db.dispose()
    files = _files(data)
    result = CliRunner().invoke(cli, ["db", "upgrade", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert f"(was {REVISIONS[0]})" in result.output
    assert _files(data) == files
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            kept = MetaData()
            current = MetaData()
            current.reflect(connection)
            for table in tables.sorted_tables:
                Table(table.name, kept, *(Column(c.name, current.tables[table.name].c[c.name].type)
                                         for c in table.columns))
            assert fingerprint(connection, kept) == rows
    finally:
        engine.dispose()


def _newer(data: Path) -> None:
    """A store that a newer engine upgraded: at a revision this engine's history lacks."""
    migrate._reached_head = None
    db = Database(f"sqlite:///{data / 'twin.db'}")
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    with closing(sqlite3.connect(data / "twin.db")) as store:
        store.execute("UPDATE alembic_version SET version_num = '9001'")
        store.commit()


def test_an_engine_refuses_a_store_newer_than_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _newer(data)
    before = (data / "twin.db").read_bytes()
    migrate._reached_head = None
    db = Database(f"sqlite:///{data / 'twin.db'}")
    try:
        with pytest.raises(StoreNewerThanEngine, match="schema revision 9001, which this engine") as refused:
            migrate.upgrade(db)
    finally:
        db.dispose()
    assert "never downgrades" in refused.value.message and "twin admin restore" in refused.value.message
    result = CliRunner().invoke(cli, ["db", "upgrade", "--data-dir", str(data)])
    assert result.exit_code == 1 and "StoreNewerThanEngine" in result.output and "Traceback" not in result.output
    assert (data / "twin.db").read_bytes() == before  # nothing changed


def test_twin_serve_stops_on_a_store_newer_than_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _newer(data)
    from helpers import free_port

    with pytest.raises(AssertionError, match="did not start") as failed, \
            serve_engine(data, free_port(), capture=True, start_timeout=120):
        pass
    printed = str(failed.value)
    assert "StoreNewerThanEngine" in printed and "schema revision 9001" in printed
    shutil.rmtree(data)


# Contractions made before the rule, each with why a running older engine was not hurt by it.
CONTRACTED = {("0015", "drop_table"): "twin_parameters is rebuilt in the same migration, with more columns"}
_CONTRACTING = {"drop_column", "drop_table", "rename_table", "alter_column", "drop_constraint"}


def test_migrations_only_expand_what_a_running_release_reads() -> None:
    """A rolling upgrade runs the previous release on the new schema until every engine is replaced, so a
    migration adds tables, columns and indexes; it drops, renames or retypes one only in a later release, once
    no release in service reads it, with a ``# contract:`` comment on that line saying so (docs/deploy.md)."""
    import ast

    versions = Path(migrate.__file__).parent / "migrations" / "versions"
    found = []
    for script in sorted(versions.glob("*.py")):
        source = script.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        upgrade = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade")
        for node in ast.walk(upgrade):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _CONTRACTING:
                said = "# contract:" in lines[node.lineno - 1] or "# contract:" in lines[node.lineno - 2]
                if not said and (script.name[:4], node.func.attr) not in CONTRACTED:
                    found.append(f"{script.name}:{node.lineno} {node.func.attr}")
    assert not found, f"migrations that take away what a running release may read: {found}"
