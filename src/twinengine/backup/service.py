"""Take a backup of an engine while it serves, check one, restore one into an empty data dir and store.

The order is what makes a backup whole while writes go on: the store's rows first, in one snapshot; then the
files, which only grow after it (a lake file is registered once its bytes are written, a stream's segments are
appended to and never rewritten); then a check that every file the snapshot names is in the copy with its
registered checksum. A write acknowledged before the snapshot is therefore in the backup; one acknowledged
after it may be (a stream's records), as after a crash of the engine at that moment.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Integer, Table, inspect, text

from twinengine._version import __version__
from twinengine.backup.files import Root, copy_file, file_sha256, list_files, roots_of, settle
from twinengine.backup.manifest import MANIFEST, FileEntry, Manifest, StreamEntry, TableEntry
from twinengine.backup.rows import (
    RowsDigest,
    engine_tables,
    for_insert,
    insert_table,
    json_positions,
    read_rows,
    select_rows,
    write_rows,
)
from twinengine.backup.snapshot import ExpectedFile, expected_files, left_out_endpoints, snapshot
from twinengine.config import Settings
from twinengine.errors import DataCorrupted, InvalidInput, StoreNewerThanEngine
from twinengine.store import migrate
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["BackupReport", "RestoreReport", "backup", "restore", "verify"]

Say = Callable[[str], None]
Advance = Callable[[int], None]
_BATCH = 1000


@dataclass
class BackupReport:
    folder: Path
    manifest: Manifest
    seconds: float

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.manifest.tables)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.manifest.files) + sum(t.bytes for t in self.manifest.tables)


@dataclass
class RestoreReport:
    manifest: Manifest
    schema_revision: str | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.manifest.tables)


def backup(settings: Settings, target: Path, *, with_envs: bool = False, say: Say = lambda _: None,
           advance: Advance = lambda _: None) -> BackupReport:
    """Write a backup of the engine of ``settings`` into ``target`` (a new or empty folder), while it serves."""
    began, started = time.monotonic(), utcnow()
    roots, notes = roots_of(settings, with_envs=with_envs)
    target = target.resolve()
    for root in roots:
        if target == root.path.resolve() or root.path.resolve() in target.parents:
            raise InvalidInput(f"target: {target} lies inside the engine's folder {root.path}; write the backup "
                               "elsewhere (another disk, ideally)")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInput(f"target: {target} is not an empty folder; a backup is written into a new one")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)  # it holds the engine's keys
    try:
        manifest = _write_backup(settings, target, roots, notes, with_envs, started, say, advance)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return BackupReport(folder=target, manifest=manifest, seconds=time.monotonic() - began)


def _write_backup(settings: Settings, target: Path, roots: list[Root], notes: list[str], with_envs: bool,
                  started: Any, say: Say, advance: Advance) -> Manifest:
    db = Database(settings.db_url, pool_size=1)
    try:
        with snapshot(db) as connection:
            snapshot_at = utcnow()  # before the first read fixes the snapshot: what was acknowledged by then is in
            revision = _known_revision_of(connection, db)
            say(f"store: one snapshot of {db.backend} at schema {revision}")
            tables = _dump(connection, target / "store", say)
            expected = expected_files(connection)
            notes = [*left_out_endpoints(connection), *notes]
    finally:
        db.dispose()
    files: dict[tuple[str, str], FileEntry] = {}
    for root, relative in list_files(roots, settings, with_envs=with_envs):
        entry = copy_file(root.path / relative, target / "files" / root.name / relative, root.name, relative,
                          advance)
        files[(entry.root, entry.path)] = entry
    say(f"files: {len(files)} copied ({sum(f.bytes for f in files.values()):,} bytes)")
    streams = _settle_streams(settings, target, files) if settings.stream_backend == "local" else []
    _check_expected(expected, files)
    settle()
    manifest = Manifest(engine=__version__, schema_revision=revision, backend=db.backend,
                        started_at=started, snapshot_at=snapshot_at, finished_at=utcnow(), tables=tables,
                        files=sorted(files.values(), key=lambda f: (f.root, f.path)), streams=streams,
                        left_out=notes)
    manifest.write(target)
    return manifest


def _known_revision_of(connection: Connection, db: Database) -> str:
    """The store's revision, which this engine's history must know: a backup taken by a newer release (before
    an upgrade, say) holds the store as it is, and a restore brings it to the restoring engine's head."""
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None:
        raise InvalidInput("the store is empty: there is nothing to back up (has an engine ever started on it?)")
    try:
        ScriptDirectory.from_config(migrate.alembic_config(db.url)).get_revision(revision)
    except CommandError:
        raise StoreNewerThanEngine(f"the store is at schema revision {revision}, newer than this engine "
                                   f"(twinengine {__version__}, schema {migrate.head_revision(db)}): back it up "
                                   "with the release that serves it") from None
    return revision


def _dump(connection: Connection, folder: Path, say: Say) -> list[TableEntry]:
    folder.mkdir(parents=True, exist_ok=True)
    tables = engine_tables()
    present = set(inspect(connection).get_table_names()) - {"alembic_version"}
    unknown = sorted(present - set(tables))
    if unknown:
        raise InvalidInput(f"the store has tables this engine does not know: {', '.join(unknown)}")
    entries = []
    inspector = inspect(connection)
    for name, table in tables.items():
        if name not in present:  # made by a later migration than the store's
            continue
        stored = {c["name"] for c in inspector.get_columns(name)}
        unknown_columns = sorted(stored - set(table.c.keys()))
        if unknown_columns:
            raise InvalidInput(f"the store's table {name} has columns this engine does not know: "
                               f"{', '.join(unknown_columns)}")
        columns = [c.name for c in table.columns if c.name in stored]
        path = folder / f"{name}.msgpack"
        with path.open("wb") as fh:
            rows, rows_sha256, file_sha256_ = write_rows(select_rows(connection, table, columns), fh)
        entries.append(TableEntry(name=name, columns=columns, rows=rows, rows_sha256=rows_sha256,
                                  file_sha256=file_sha256_, bytes=path.stat().st_size))
    say(f"store: {sum(e.rows for e in entries):,} rows of {len(entries)} tables")
    return entries


def _stream_copy(target: Path) -> Path:
    return target / "files" / "streams"


def _settle_streams(settings: Settings, target: Path, files: dict[tuple[str, str], FileEntry]) -> list[StreamEntry]:
    """Open the copied stream log as the engine would (a torn frame at a segment's end is cut, as after a
    crash), note each stream's newest entry, and checksum its segments as they now are."""
    from twinengine.streams.backends.local import LocalLog

    root = _stream_copy(target)
    if not root.is_dir():
        return []
    log = LocalLog(root)
    try:
        streams = [StreamEntry(key=key, last=log.last(key)) for key in log.list_keys()]
    finally:
        log.close()
        (root / ".lock").unlink(missing_ok=True)
    for name, path in list(files):
        if name != "streams":
            continue
        copied = root / path
        if not copied.exists():  # an empty newest segment, removed on open
            del files[(name, path)]
        elif path.endswith(".seg"):
            files[(name, path)] = FileEntry(root=name, path=path, bytes=copied.stat().st_size,
                                            sha256=file_sha256(copied))
    return streams


def _check_expected(expected: list[ExpectedFile], files: dict[tuple[str, str], FileEntry]) -> None:
    for want in expected:
        got = files.get((want.root, want.path))
        if got is None:
            raise DataCorrupted(f"the {want.what} ({want.root}/{want.path}) is named by the store's snapshot but "
                                "is not in the engine's folder: removed meanwhile (take the backup again) or lost "
                                "(if it persists)")
        if (want.sha256 is not None and got.sha256 != want.sha256) or \
                (want.sha256 is None and want.bytes is not None and got.bytes != want.bytes):
            raise DataCorrupted(f"the {want.what} ({want.root}/{want.path}) does not match its registered "
                                "checksum: the file in the data dir is damaged")


def verify(folder: Path, manifest: Manifest | None = None, advance: Advance = lambda _: None, *,
           files: bool = True) -> Manifest:
    """Check a backup against its manifest (every table's rows and, with ``files``, every file by checksum);
    raises ``DataCorrupted``."""
    if not (folder / MANIFEST).is_file():
        raise InvalidInput(f"backup: {folder} has no {MANIFEST}: it is not a backup, or one that did not finish")
    manifest = manifest or Manifest.read(folder)
    for table in manifest.tables:
        _same(folder / "store" / f"{table.name}.msgpack", table.file_sha256, f"the rows of {table.name}", advance)
    for entry in manifest.files if files else ():
        _same(folder / "files" / entry.root / entry.path, entry.sha256, f"the file {entry.root}/{entry.path}",
              advance)
    return manifest


def _same(path: Path, sha256: str, what: str, advance: Advance) -> None:
    if not path.is_file():
        raise DataCorrupted(f"the backup lacks {what} ({path})")
    if file_sha256(path, advance) != sha256:
        raise DataCorrupted(f"{what} in the backup does not match its checksum ({path}): the backup is damaged")


def restore(folder: Path, settings: Settings, *, say: Say = lambda _: None,
            advance: Advance = lambda _: None) -> RestoreReport:
    """Restore the backup in ``folder`` into the empty data dir and store of ``settings``, then bring its schema
    to this engine's head. The store's rows are checked before anything is written, each file as it is copied
    (one read of it, not two); a mismatch anywhere takes back what was written."""
    began = time.monotonic()
    folder = folder.resolve()
    manifest = verify(folder, advance=advance, files=False)
    say(f"backup checked: the rows of {len(manifest.tables)} tables match their checksums")
    db = Database(settings.db_url, pool_size=1)
    try:
        _known_revision(db, manifest)
        roots = {root.name: root.path for root in roots_of(settings, with_envs=True)[0]}
        _refuse_occupied(settings, roots, db)
        try:
            reached, kept = _restore_into(folder, manifest, roots, db, say, advance)
        except BaseException:
            _undo(roots, db)
            raise
    finally:
        db.dispose()
    notes = kept or _settings_file(settings, manifest)
    return RestoreReport(manifest=manifest, schema_revision=reached, seconds=time.monotonic() - began,
                         notes=[*manifest.left_out, *notes])


def _restore_into(folder: Path, manifest: Manifest, roots: dict[str, Path], db: Database, say: Say,
                  advance: Advance) -> tuple[str | None, list[str]]:
    """The writing half of a restore (``_undo`` takes it back if it fails)."""
    kept = []
    for entry in manifest.files:
        if entry.root not in roots:
            raise InvalidInput(f"backup: files of an unknown folder {entry.root!r}")
        if (entry.root, entry.path) == ("data", "twin.toml") and (roots["data"] / "twin.toml").is_file():
            kept.append("twin.toml: the data dir's own was kept (the backup's is in its files/data)")
            continue
        source = folder / "files" / entry.root / entry.path
        if not source.is_file():
            raise DataCorrupted(f"the backup lacks the file {entry.root}/{entry.path} ({source})")
        copied = copy_file(source, roots[entry.root] / entry.path, entry.root, Path(entry.path), advance, live=False)
        if copied.sha256 != entry.sha256 or copied.bytes != entry.bytes:
            raise DataCorrupted(f"the file {entry.root}/{entry.path} in the backup does not match its checksum "
                                f"({source}): the backup is damaged")
    settle()
    say(f"files: {len(manifest.files)} restored")
    migrate.upgrade(db, manifest.schema_revision)
    _load(db, folder, manifest)
    _check_loaded(db, manifest)
    say(f"store: {sum(t.rows for t in manifest.tables):,} rows loaded into {db.backend}, checksums match")
    reached = migrate.upgrade(db)
    if reached != manifest.schema_revision:
        say(f"store: upgraded from schema {manifest.schema_revision} to {reached}")
    return reached, kept


def _undo(roots: dict[str, Path], db: Database) -> None:
    """Take a failed restore back: the folders emptied again (a data dir's own twin.toml kept), the store's
    tables dropped (it was empty before)."""
    db.dispose()
    for name, path in roots.items():
        if not path.is_dir():
            continue
        for child in path.iterdir():
            if name == "data" and child.name == "twin.toml":
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    if db.backend == "postgresql":
        from sqlalchemy import MetaData

        with db.engine.begin() as connection:
            found = MetaData()
            found.reflect(connection)
            found.drop_all(connection)


def _known_revision(db: Database, manifest: Manifest) -> None:
    try:
        ScriptDirectory.from_config(migrate.alembic_config(db.url)).get_revision(manifest.schema_revision)
    except CommandError:
        raise StoreNewerThanEngine(
            f"the backup was made by twinengine {manifest.engine} at schema revision {manifest.schema_revision}, "
            f"which this engine (twinengine {__version__}) does not know: restore it with that release or a later "
            "one") from None


def _refuse_occupied(settings: Settings, roots: dict[str, Path], db: Database) -> None:
    """A restore writes only into empty folders and an empty store: it never mixes two engines' data."""
    for name, path in roots.items():
        if path.is_dir() and any(p.name not in ("twin.toml",) for p in path.iterdir()):
            raise InvalidInput(f"{'data_dir' if name == 'data' else name}: {path} is not empty; restore into a new "
                               "folder")
    with db.engine.connect() as connection:
        tables = inspect(connection).get_table_names()
    if tables:
        raise InvalidInput(f"database_url: the store already holds {len(tables)} tables; restore into an empty "
                           "database")


def _load(db: Database, folder: Path, manifest: Manifest) -> None:
    """Load every table's rows, parents first, in one transaction."""
    tables = engine_tables()
    with db.engine.begin() as connection:
        for table in reversed(tables.values()):  # rows the migrations seed (counters): the backup's replace them
            if manifest.table(table.name) is not None:
                connection.execute(table.delete())
        for name, table in tables.items():
            entry = manifest.table(name)
            if entry is None:
                continue
            rows = read_rows(folder / "store" / f"{name}.msgpack")
            target, json_at = insert_table(table, entry.columns), json_positions(table, entry.columns)
            ordered = _parents_first(table, entry.columns, list(rows)) if _refers_to_itself(table) else rows
            batch: list[dict[str, Any]] = []
            for row in ordered:
                batch.append(dict(zip(entry.columns, for_insert(row, json_at), strict=True)))
                if len(batch) >= _BATCH:
                    connection.execute(target.insert(), batch)
                    batch = []
            if batch:
                connection.execute(target.insert(), batch)
        if db.backend == "postgresql":
            _advance_sequences(connection, tables, manifest)
    unknown = [t.name for t in manifest.tables if t.name not in tables]
    if unknown:
        raise InvalidInput(f"backup: tables this engine does not know: {', '.join(unknown)}")


def _refers_to_itself(table: Table) -> bool:
    return any(fk.column.table is table for fk in table.foreign_keys)


def _parents_first(table: Table, columns: list[str], rows: list[list[Any]]) -> list[list[Any]]:
    """Rows of a table that refers to itself (a fork names its origin), each after the row it refers to."""
    links = [(columns.index(fk.parent.name), columns.index(fk.column.name)) for fk in table.foreign_keys
             if fk.column.table is table and fk.parent.name in columns and fk.column.name in columns]
    present = {(parent, row[parent]) for row in rows for _, parent in links}
    placed: set[tuple[int, Any]] = set()
    ordered: list[list[Any]] = []
    waiting = rows
    while waiting:
        later = []
        for row in waiting:
            if all(row[child] is None or (parent, row[child]) in placed or (parent, row[child]) not in present
                   for child, parent in links):
                ordered.append(row)
                placed.update((parent, row[parent]) for _, parent in links)
            else:
                later.append(row)
        if len(later) == len(waiting):  # a cycle: the store's own constraint will say so
            ordered += later
            break
        waiting = later
    return ordered


def _advance_sequences(connection: Connection, tables: dict[str, Table], manifest: Manifest) -> None:
    """PostgreSQL: each table's id sequence past the ids loaded (SQLite takes the largest id by itself)."""
    for entry in manifest.tables:
        keys = list(tables[entry.name].primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer) or keys[0].autoincrement is False:
            continue
        column = keys[0].name
        connection.execute(text(
            f'SELECT setval(pg_get_serial_sequence(:table, :column), COALESCE(MAX("{column}"), 0) + 1, false) '
            f'FROM "{entry.name}"'), {"table": entry.name, "column": column})


def _check_loaded(db: Database, manifest: Manifest) -> None:
    """The restored rows, read back from the store, against the backup's checksums."""
    tables = engine_tables()
    with snapshot(db) as connection:
        for entry in manifest.tables:
            digest = RowsDigest()
            for row in select_rows(connection, tables[entry.name], entry.columns):
                digest.add(row)
            if digest.count != entry.rows or digest.hexdigest() != entry.rows_sha256:
                raise DataCorrupted(f"the restored rows of {entry.name} differ from the backup's ({digest.count} "
                                    f"rows, {entry.rows} in the backup)")


_DATABASE_LINE = re.compile(r"^\s*database_url\s*=.*$", re.MULTILINE)


def _settings_file(settings: Settings, manifest: Manifest) -> list[str]:
    """A restored ``twin.toml`` that named the backed-up engine's database is pointed at the restored one."""
    path = settings.data_dir / "twin.toml"
    if not path.is_file() or not _DATABASE_LINE.search(path.read_text()):
        return []
    url = settings.database_url
    text_ = path.read_text()
    replaced = _DATABASE_LINE.sub(f'database_url = "{url}"' if url else "", text_)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(replaced)
    os.replace(tmp, path)
    return [f"twin.toml: database_url now names the restored store ({url or 'SQLite in the data dir'})"]
