"""The store's rows in and out of a backup: every table the engine's models declare, read through their column
types (UTC datetimes, JSON documents, bytes), written as MessagePack, and checksummed in a form that does not
depend on the backend or on the order rows come in.

A JSON column tells a SQL NULL from a JSON ``null`` (queries such as ``twins IS NULL`` do): both read back as
Python ``None``, so the dump asks the store which one each is and keeps the SQL NULL as a marker of its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
from sqlalchemy import JSON, Column, Connection, MetaData, Table, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from twinengine.store.migrations import schema

__all__ = ["SQL_NULL", "RowsDigest", "engine_tables", "for_insert", "insert_table", "json_positions", "read_rows",
           "select_rows", "write_rows"]

_SQL_NULL_CODE = 1  # MessagePack extension type of a JSON column's SQL NULL


class _SqlNull:
    """A JSON column's SQL NULL (as opposed to a JSON ``null``, which is Python ``None``)."""

    def __repr__(self) -> str:
        return "SQL_NULL"


SQL_NULL = _SqlNull()


@cache
def engine_tables() -> dict[str, Table]:
    """Every table of the store, parents before the tables that refer to them (the order rows are loaded in):
    the schema the migrations' environment builds (``store.migrations.schema``: one list of model modules)."""
    return {table.name: table for table in schema().sorted_tables}


def _is_json(column: Column[Any]) -> bool:
    return isinstance(column.type, JSON) or isinstance(getattr(column.type, "impl", None), JSON)


def select_rows(connection: Connection, table: Table, columns: Sequence[str]) -> Iterator[list[Any]]:
    """The rows of ``table`` (values of ``columns``, in that order), read in batches; a JSON column's SQL NULL
    as ``SQL_NULL``."""
    picked = [table.c[name] for name in columns]
    json_columns = [i for i, column in enumerate(picked) if _is_json(column)]
    flags: list[ColumnElement[bool]] = [picked[i].is_(None) for i in json_columns]
    result = connection.execution_options(yield_per=2000).execute(select(*picked, *flags))
    width = len(picked)
    for row in result:
        values = list(row[:width])
        for flag, i in enumerate(json_columns):
            if row[width + flag]:
                values[i] = SQL_NULL
        yield values


def insert_table(table: Table, columns: Sequence[str]) -> Table:
    """A table to insert rows of ``columns`` into ``table`` with: the model's types, a JSON column taking
    ``None`` as SQL NULL and ``JSON.NULL`` as JSON null, and no constraints (the store's own apply)."""
    built = []
    for name in columns:
        column = table.c[name]
        kind: Any = column.type
        if _is_json(column):
            kind = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
        built.append(Column(name, kind))
    return Table(table.name, MetaData(), *built)


def json_positions(table: Table, columns: Sequence[str]) -> frozenset[int]:
    """Where ``table``'s JSON columns are among ``columns``."""
    return frozenset(i for i, name in enumerate(columns) if _is_json(table.c[name]))


def for_insert(values: Sequence[Any], json_at: frozenset[int]) -> list[Any]:
    """A row read from a backup as the insert table takes it (``json_at``: ``json_positions``)."""
    return [v if i not in json_at else None if v is SQL_NULL else JSON.NULL if v is None else v
            for i, v in enumerate(values)]


def _default(value: Any) -> Any:
    if value is SQL_NULL:
        return msgpack.ExtType(_SQL_NULL_CODE, b"")
    raise TypeError(f"a value of type {type(value).__name__} cannot be written to a backup")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _SQL_NULL_CODE:
        return SQL_NULL
    return msgpack.ExtType(code, data)


def write_rows(rows: Iterator[list[Any]], fh: BinaryIO) -> tuple[int, str, str]:
    """Write ``rows`` to ``fh``; returns (rows, checksum of their values, checksum of the bytes written)."""
    packer = msgpack.Packer(datetime=True, use_bin_type=True, default=_default)
    values, data, count = RowsDigest(), hashlib.sha256(), 0
    for row in rows:
        packed = packer.pack(row)
        fh.write(packed)
        data.update(packed)
        values.add(row)
        count += 1
    return count, values.hexdigest(), data.hexdigest()


def read_rows(path: Path) -> Iterator[list[Any]]:
    with path.open("rb") as fh:
        unpacker = msgpack.Unpacker(fh, raw=False, timestamp=3, ext_hook=_ext_hook, strict_map_key=False,
                                    max_buffer_size=1 << 31)
        yield from unpacker


def _canonical(value: Any) -> Any:
    """A value in a form every backend reads back alike: UTC datetimes as text, bytes as hex, JSON documents
    with their keys sorted (PostgreSQL's JSONB orders them its own way)."""
    if value is SQL_NULL:
        return {"$": "sql-null"}
    if isinstance(value, datetime):
        return {"$t": value.astimezone(UTC).isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": bytes(value).hex()}
    if isinstance(value, float):
        return {"$f": repr(value)}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


class RowsDigest:
    """A checksum of a set of rows whatever their order: the sum of each row's SHA-256, modulo 2^256."""

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def add(self, row: Sequence[Any]) -> None:
        encoded = json.dumps(_canonical(list(row)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        self.total = (self.total + int.from_bytes(hashlib.sha256(encoded.encode()).digest(), "big")) % (1 << 256)
        self.count += 1

    def hexdigest(self) -> str:
        return f"{self.total:064x}"
