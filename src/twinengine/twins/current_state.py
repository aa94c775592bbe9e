"""The current state of a twin, read on a DBAPI connection: the path of ``GET /twins/{twin}/state``.

Over HTTP the plain current state is the engine's most frequent read, and SQLAlchemy's unit of work around
its one statement cost about as much as the whole trivial request (docs/twins.md). This reader runs the same
statement (``service._CURRENT_BY_ID_OR_NAME`` / ``_CURRENT_BY_NAME``, compiled once per process and kind of
store) on a pooled DBAPI connection and passes its rows through the same column types, access rule,
manifest cache and state builder as the unit-of-work path:

- on PostgreSQL, an asynchronous psycopg connection on the event loop (``psycopg_pool``, autocommit, as the
  engine's read-only units of work are): the read takes no worker thread;
- on SQLite, a connection of the engine's own pool, on a worker thread (a SQLite call blocks).

The unit-of-work path stays the answer for everything else, and for the rare reads this one hands back
(``None``): a manifest not in the cache, or a head newer than the head revision read beside it (a write
committed in between), whose value at that revision takes a second statement.
"""

from __future__ import annotations

import asyncio
import logging
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect

from twinengine.auth.principal import Principal
from twinengine.catalog.service import cached_manifest
from twinengine.errors import TwinNotFound
from twinengine.store.engine import Database
from twinengine.twins import service, state

__all__ = ["CurrentStateReader"]

log = logging.getLogger("twinengine.twins")

_POOL_TIMEOUT_S = 10.0  # a connection not had within this falls back to the unit-of-work path (and its errors)


class _Statement:
    """One statement compiled for a dialect: its SQL, its parameters in the driver's form, its rows typed as
    SQLAlchemy would type them (``created_at`` and ``timestamp`` in UTC, JSON decoded on SQLite)."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        self.compiled = statement.compile(dialect=dialect)
        self.sql = str(self.compiled)
        self.order: Sequence[str] | None = self.compiled.positiontup if dialect.positional else None
        columns = list(statement.selected_columns)
        self.processors: list[Callable[[Any], Any] | None] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        self.row = namedtuple("_Row", [column.key or f"_{i}" for i, column in enumerate(columns)],  # type: ignore[misc]
                              rename=True)

    def parameters(self, ref: str, who: str) -> Any:
        values = self.compiled.construct_params({"ref": ref, "who": who})
        return tuple(values[name] for name in self.order) if self.order is not None else values

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Any]:
        processors = self.processors
        return [self.row(*(p(v) if p is not None else v for p, v in zip(processors, row, strict=True)))
                for row in raw]


_compiled: dict[tuple[Any, ...], _Statement] = {}


def _statement(statement: Select[Any], dialect: Dialect) -> _Statement:
    """The statement compiled once per process for each kind of store: both took about 6 ms of CPU at each
    engine's start, and engines opened in one process (an embedded engine restarted, the tests' engines)
    compile them alike. The key is what the compiled SQL and the result types depend on."""
    key = (id(statement), type(dialect), dialect.paramstyle, dialect.server_version_info)
    found = _compiled.get(key)
    if found is None:
        found = _compiled[key] = _Statement(statement, dialect)
    return found


class CurrentStateReader:
    """``await reader.read(principal, ref)``: the twin's current state as JSON bytes, or None where the
    unit-of-work path must answer. ``await reader.close()`` on the event loop it read on."""

    def __init__(self, db: Database, *, pool_size: int = 4) -> None:
        self.db = db
        dialect = db.engine.dialect
        if dialect.server_version_info is None:  # first connection: the dialect learns the server's version
            with db.engine.connect():
                pass
        self._by_id = _statement(service._CURRENT_BY_ID_OR_NAME, dialect)
        self._by_name = _statement(service._CURRENT_BY_NAME, dialect)
        self.asynchronous = db.backend == "postgresql"
        self._pool_size = pool_size
        self._pool: Any = None  # psycopg_pool.AsyncConnectionPool, opened on the loop at the first read
        self._opening: asyncio.Lock | None = None

    async def read(self, principal: Principal, ref: str) -> bytes | None:
        statement = self._by_id if service._ID.match(ref) else self._by_name
        parameters = statement.parameters(ref, principal.name)
        if not self.asynchronous:
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(self._read_pooled, statement, parameters, principal, ref)
        try:
            pool = self._pool or await self._open()
            async with pool.connection(timeout=_POOL_TIMEOUT_S) as connection:
                cursor = await connection.execute(statement.sql, parameters)
                raw = await cursor.fetchall()
        except Exception as exc:  # the store away or a connection broken: the unit-of-work path says so
            log.warning("current state of %r not read on the asynchronous pool: %s", ref, exc)
            return None
        return _answer(statement.rows(raw), principal, ref)

    def _read_pooled(self, statement: _Statement, parameters: Any, principal: Principal, ref: str) -> bytes | None:
        connection = self.db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(statement.sql, parameters)
                raw = cursor.fetchall()
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool
        return _answer(statement.rows(raw), principal, ref)

    async def _open(self) -> Any:
        from psycopg_pool import AsyncConnectionPool

        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                url = self.db.engine.url.set(drivername="postgresql")
                pool = AsyncConnectionPool(url.render_as_string(hide_password=False), open=False, min_size=1,
                                           max_size=self._pool_size,
                                           kwargs={"autocommit": True, "application_name": "twinengine-current-state"},
                                           name="twinengine-current-state")
                await pool.open()
                self._pool = pool
        return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


def _answer(rows: list[Any], principal: Principal, ref: str) -> bytes | None:
    if not rows:
        raise TwinNotFound(f"no twin with id or name {ref!r}")
    twin, digest = service.readable_twin(rows[0], principal)
    manifest = cached_manifest(digest)
    current = state.heads_snapshot(rows, twin.head_revision) if manifest is not None else None
    if current is None:
        return None
    return state.current_state(twin, current, manifest).model_dump_json(by_alias=True).encode()
