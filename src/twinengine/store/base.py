"""Declarative base and column types shared by every package's tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnClause,
    DateTime,
    Integer,
    MetaData,
    and_,
    inspect,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

__all__ = ["LIMIT_ONE", "Base", "JSONValue", "LogId", "UTCDateTime", "lock_for_delete", "upsert", "utcnow"]

LIMIT_ONE: ColumnClause[int] = literal_column("1", Integer)
"""``.limit(LIMIT_ONE)``: LIMIT 1 written into a statement that runs again and again, not bound. psycopg
prepares a statement after its fifth run, and PostgreSQL then weighs a generic plan, made without the bound
values, against the plans made with them: with the limit unknown, a seek for one row looks dearer than it is,
so the server plans the statement anew at every run (``pg_prepared_statements``: no generic plan for the
state reads "as of" a revision or a time, one planning per read)."""


def upsert(dialect: str, table: Any) -> Any:
    """``INSERT`` into ``table`` in ``dialect``'s own form, which has ``on_conflict_do_update`` and
    ``on_conflict_do_nothing`` (SQLite and PostgreSQL spell ``ON CONFLICT`` alike). A write two requests may
    make at once: a read, then an insert or an update, collides on PostgreSQL, where neither sees the other's
    uncommitted row."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def lock_for_delete(session: Session, row: Any, missing: Exception) -> None:
    """Lock ``row`` (``FOR UPDATE``) before it is deleted; raise ``missing`` when it is gone already. Two
    deletes at once both found the row on PostgreSQL, the second's DELETE then matched nothing once the first
    had committed, and both answered 204; now the second waits for the first and answers as it would have
    after it: not found. (SQLite's writers take turns from the start: the second finds nothing.)"""
    mapper = inspect(row).mapper
    key = mapper.primary_key_from_instance(row)
    where = and_(*(column == value for column, value in zip(mapper.primary_key, key, strict=True)))
    if session.execute(select(*mapper.primary_key).where(where).with_for_update()).first() is None:
        raise missing


# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text, so we re-attach UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Ids of append-only logs: 64-bit on PostgreSQL; SQLite's rowid is 64-bit already but must be INTEGER.
LogId: Any = BigInteger().with_variant(Integer(), "sqlite")

# JSON documents: JSONB on PostgreSQL (indexable), JSON text elsewhere.
JSONValue: Any = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
