"""Statements run straight on a unit of work's SQLite connection, for the one writer's groups of state writes.

SQLAlchemy's execution layer costs about 50 to 100 µs of Python a statement (the execution context, events,
the result's metadata) where SQLite's own work for a row is a few µs; a group of writes of one twin runs about ten
statements, so that layer was most of the writer's time. A ``Direct`` is a Core statement (the one source of its
SQL and its column types) compiled once for SQLite and run with the driver's cursor in the caller's transaction:
each value goes through its column type's bind processor, each result column through its result processor,
as SQLAlchemy would convert them. What it does not do: fire the engine's statement events (nothing in the engine
listens to them on SQLite, whose write lock ``store.guard`` follows from ``BEGIN``), render expanding ``IN`` lists
(pass a JSON array and read it with ``json_each``), or run on another store (it raises).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable

__all__ = ["Direct"]

_Convert = Callable[[Any], Any] | None


class Direct:
    """``statement`` compiled once for SQLite (on first use), run on a unit of work's driver connection.

    ``keys``: the columns an ``insert`` without values binds (``Insert.compile(column_keys=...)``)."""

    __slots__ = ("_binds", "_compiled_for", "_keys", "_results", "_sql", "statement")

    def __init__(self, statement: Executable, *, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self._keys = list(keys) if keys is not None else None
        self._compiled_for: Dialect | None = None
        self._sql = ""
        self._binds: list[tuple[str, _Convert, Any]] = []
        self._results: list[_Convert] = []

    def _compile(self, dialect: Dialect) -> None:
        if dialect.name != "sqlite":
            raise TypeError(f"direct statements run on SQLite only, not {dialect.name}")
        compiled: Any = self.statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=self._keys)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise TypeError("a direct statement cannot expand parameters at run time: pass a JSON array")
        binds = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            default = _REQUIRED if bind.required else bind.effective_value
            binds.append((name, bind.type.dialect_impl(dialect).bind_processor(dialect), default))
        columns = getattr(self.statement, "exported_columns", ())
        self._results = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        self._binds, self._sql = binds, str(compiled)
        self._compiled_for = dialect

    def _driver(self, session: Session | Connection) -> Any:
        connection = session.connection() if isinstance(session, Session) else session
        if self._compiled_for is not connection.dialect:
            self._compile(connection.dialect)
        return connection.connection.driver_connection

    def _values(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, process, default in self._binds:
            value = params[name] if default is _REQUIRED or name in params else default
            out.append(process(value) if process is not None and value is not None else value)
        return tuple(out)

    def rows(self, session: Session | Connection, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run the statement once; its rows (a ``RETURNING`` clause's too), each column converted by its type."""
        driver = self._driver(session)
        found = driver.execute(self._sql, self._values(params or {})).fetchall()
        processors = self._results
        if not any(processors):
            return list(found)
        return [tuple(value if process is None or value is None else process(value)
                      for process, value in zip(processors, row, strict=True)) for row in found]

    def run(self, session: Session | Connection, params: Mapping[str, Any] | None = None) -> None:
        """Run the statement once, for its effect."""
        driver = self._driver(session)
        driver.execute(self._sql, self._values(params or {})).close()

    def many(self, session: Session | Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row (``executemany``: one preparation)."""
        if rows:
            driver = self._driver(session)
            driver.executemany(self._sql, [self._values(row) for row in rows]).close()


_REQUIRED = object()
