"""One instant of the store, read while the engine writes: a read-only transaction that sees a single snapshot
(SQLite's WAL gives a read transaction one; PostgreSQL needs REPEATABLE READ, where READ COMMITTED would give
each statement its own), and what it says the data dir's files must hold."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, select

from twinengine.lake.models import Did, Endpoint, Replica
from twinengine.store.engine import READONLY_OPTION, Database
from twinengine.streams.models import CompactedSegment

__all__ = ["ExpectedFile", "expected_files", "left_out_endpoints", "snapshot"]


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """A read-only transaction over one snapshot of the store; writers go on meanwhile."""
    with db.engine.connect() as connection:
        if db.backend == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
                yield connection
        else:  # BEGIN (deferred): the WAL snapshot is fixed by the first read, and no write lock is taken
            connection.execution_options(**{READONLY_OPTION: True})
            with connection.begin():
                yield connection


@dataclass(frozen=True)
class ExpectedFile:
    """A file the snapshot says exists (``root``-relative ``path``), with what it must hold."""

    root: str
    path: str
    bytes: int | None
    sha256: str | None
    what: str


def expected_files(connection: Connection) -> list[ExpectedFile]:
    """Files the backup must hold for the snapshot to be whole: every available replica on the data dir's own
    lake (its endpoints' locations are recorded relative to the data dir), and every compacted stream segment
    (recorded relative to the streams folder's ``parquet``)."""
    found = []
    replicas = connection.execute(
        select(Endpoint.name, Endpoint.location, Replica.path, Replica.bytes, Did.sha256, Did.scope, Did.name)
        .join(Replica, Replica.endpoint_id == Endpoint.id).join(Did, Did.id == Replica.did_id)
        .where(Endpoint.protocol == "file", Replica.state == "AVAILABLE"))
    for endpoint, location, path, size, sha256, scope, name in replicas:
        if Path(location).is_absolute():
            continue  # outside the data dir: named by left_out_endpoints
        found.append(ExpectedFile("data", (Path(location) / path).as_posix(), size, sha256,
                                  f"lake file {scope}:{name} on {endpoint}"))
    for path, sha256, size, twin_id, stream in connection.execute(
            select(CompactedSegment.path, CompactedSegment.sha256, CompactedSegment.size, CompactedSegment.twin_id,
                   CompactedSegment.stream)):
        if Path(path).is_absolute():
            continue
        found.append(ExpectedFile("streams", (Path("parquet") / path).as_posix(), size, sha256,
                                  f"compacted segment of {twin_id}/{stream}"))
    return found


def left_out_endpoints(connection: Connection) -> list[str]:
    """The lake's endpoints whose files live outside the data dir: each is backed up by its own means."""
    notes = []
    for name, protocol, location in connection.execute(
            select(Endpoint.name, Endpoint.protocol, Endpoint.location).order_by(Endpoint.name)):
        if protocol == "file" and not Path(location).is_absolute():
            continue
        notes.append(f"lake endpoint {name} ({protocol} at {location}): its files are not in the data dir; back "
                     "them up with the storage's own tools (the store's rows of its replicas are here)")
    return notes
