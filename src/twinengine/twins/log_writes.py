"""How revisions reach the state log: the revision counter, the log's rows and the heads they move.

Every path keeps the same guarantees: a twin's counter moves under its row lock, which is held until the
transaction ends, so revision numbers are gap-free and a concurrent writer of the same twin queues; twins
are locked in id order, so two writers of the same twins queue instead of deadlocking; the heads are
written in the same transaction as the log.

On PostgreSQL each call is one or two statements, whatever the number of revisions and values: the rows
travel as one JSON document per table (the server parses it in C; psycopg dumps long arrays element by
element in Python, which took a third of a batch's time) and the tables are written by data-modifying
``WITH`` clauses, so a single write is one round trip instead of four. SQLite runs in the process, where
a statement costs no round trip: there, plain executemany statements built once do the same work.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import orjson
from sqlalchemy import ARRAY, JSON, Connection, Integer, Table, Text, bindparam, insert, text, update
from sqlalchemy.orm import Session

from twinengine.errors import TwinNotFound
from twinengine.quality.stored import pack, unpack
from twinengine.store.base import UTCDateTime, upsert
from twinengine.store.direct import Direct
from twinengine.twins.models import StateHead, StateRevision, StateValue, Twin

if TYPE_CHECKING:
    from twinengine.twins.new_values import NewValue

__all__ = ["REVISIONS_KEY", "LogRow", "append_one", "insert_log", "insert_log_direct", "number_of", "take_numbers",
           "take_numbers_direct"]

REVISIONS_KEY = "twinengine.revisions"  # session.info: (twin id, revision) pairs, announced after commit

# One revision to log: twin id, its number, its values, its message.
LogRow = tuple[str, int, Sequence["NewValue"], str | None]


def number_of(value: Any) -> float | None:
    """A head's ``num_value``: the value (inside its envelope when it carries an uncertainty or a quality,
    quality/stored.py) when it is a finite number (booleans are not numbers here)."""
    value = unpack(value).value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond any double
        return None
    return number if math.isfinite(number) else None


def _announce(session: Session, numbers: dict[str, int]) -> None:
    session.info.setdefault(REVISIONS_KEY, []).extend(numbers.items())


def _stored(v: NewValue) -> Any:
    return pack(v.value, v.uncertainty, v.quality)


# --- one revision of one twin ---------------------------------------------------------------------------

_TEXTS = ARRAY(Text)
# A document of rows [twin, revision, property, kind, value, unit, timestamp, number] as FROM items.
_VALUE_ROWS = """jsonb_array_elements(CAST(:{name} AS jsonb)) WITH ORDINALITY AS {alias}(e, position)"""
_VALUE_COLUMNS = """{alias}.e->>2, {alias}.e->>3, {alias}.e->4, {alias}.e->>5, CAST({alias}.e->>6 AS timestamptz)"""
_HEADS_CONFLICT = """ON CONFLICT (twin_id, property, kind) DO UPDATE SET revision = excluded.revision,
    value = excluded.value, unit = excluded.unit, "timestamp" = excluded."timestamp", num_value = excluded.num_value"""
_APPEND_ONE_PG = text(f"""
WITH n AS (
    UPDATE twins SET head_revision = head_revision + 1, updated_at = :now WHERE id = :twin
    RETURNING head_revision AS revision
), r AS (
    INSERT INTO state_revisions (twin_id, revision, recorded_at, author, message)
    SELECT :twin, n.revision, :now, :author, :message FROM n
), v AS (
    INSERT INTO state_values (twin_id, revision, property, kind, value, unit, "timestamp")
    SELECT :twin, n.revision, {_VALUE_COLUMNS.format(alias="x")}
    FROM n, {_VALUE_ROWS.format(name="values", alias="x")} ORDER BY x.position
), h AS (
    INSERT INTO state_heads (twin_id, property, kind, revision, value, unit, "timestamp", num_value)
    SELECT :twin, y.e->>2, y.e->>3, n.revision, y.e->4, y.e->>5, CAST(y.e->>6 AS timestamptz),
           CAST(y.e->>7 AS double precision)
    FROM n, {_VALUE_ROWS.format(name="heads", alias="y")}
    {_HEADS_CONFLICT}
)
SELECT revision FROM n
""").bindparams(bindparam("now", type_=UTCDateTime()))


def append_one(session: Session, twin: Twin, values: Sequence[NewValue], *, author: str, message: str | None,
               now: datetime) -> int:
    """Append one revision of ``twin`` and return its number: one statement on PostgreSQL."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        number = take_numbers(session, {twin.id: 1}, now)[twin.id]
        insert_log(session, [(twin.id, number, values, message)], author=author, now=now)
        return number
    rows = [(twin.id, 0, v) for v in values]
    newest = _newest(rows)
    params = {"twin": twin.id, "now": now, "author": author, "message": message, "values": _document(rows),
              "heads": _document(rows) if len(newest) == len(rows) else _document(newest)}
    appended = connection.execute(_APPEND_ONE_PG, params).scalar_one_or_none()
    if appended is None:
        raise _deleted([twin.id])
    session.expire(twin, ["head_revision", "updated_at"])
    _announce(session, {twin.id: int(appended)})
    return int(appended)


def _deleted(twin_ids: Sequence[str]) -> TwinNotFound:
    """Twins the request read but another request deleted before its write reached them (on PostgreSQL the
    read takes no lock; on SQLite the write lock is taken before the read)."""
    return TwinNotFound(f"twin {', '.join(sorted(twin_ids))} was deleted while this request wrote to it; nothing "
                        "was written")


def _newest(values: Sequence[tuple[str, int, NewValue]]) -> list[tuple[str, int, NewValue]]:
    """The last value of each (twin, property, kind): one upsert statement may not touch a head twice."""
    return list({(t, v.property, v.kind): (t, n, v) for t, n, v in values}.values())


def _document(rows: Sequence[tuple[str, int, NewValue]]) -> str:
    """Rows of values as the JSON document ``_VALUE_ROWS`` reads (with each value's numeric copy)."""
    out = []
    for twin_id, number, v in rows:
        if v.timestamp.tzinfo is None:  # as UTCDateTime refuses it: the server would read it in its own zone
            raise ValueError("naive datetime given to a UTC column")
        stored = _stored(v)
        out.append([twin_id, number, v.property, v.kind.value, stored, v.unit,
                    v.timestamp.astimezone(UTC).isoformat(), number_of(stored)])
    return json.dumps(out)


# --- revision counters ----------------------------------------------------------------------------------

_TWINS = cast(Table, Twin.__table__)
_COUNT = (update(_TWINS).where(_TWINS.c.id == bindparam("twin"))
          .values(head_revision=_TWINS.c.head_revision + bindparam("count"), updated_at=bindparam("now"))
          .returning(_TWINS.c.head_revision))
_LOCK_PG = text("SELECT id FROM twins WHERE id = ANY(:twins) ORDER BY id FOR UPDATE").bindparams(
    bindparam("twins", type_=_TEXTS))
_COUNT_PG = text("""
UPDATE twins SET head_revision = twins.head_revision + c.count, updated_at = :now
FROM unnest(:twins, :counts) AS c(id, count) WHERE twins.id = c.id
RETURNING twins.id, twins.head_revision
""").bindparams(bindparam("twins", type_=_TEXTS), bindparam("counts", type_=ARRAY(Integer)),
                bindparam("now", type_=UTCDateTime()))


def take_numbers(session: Session, counts: dict[str, int], now: datetime) -> dict[str, int]:
    """Move each twin's revision counter by its count and return the new values; the twins' row locks are
    taken in id order and held until the transaction ends. Twins in the session are told their counter moved."""
    connection = session.connection()
    ids = sorted(counts)
    if connection.dialect.name == "postgresql" and len(ids) > 1:
        connection.execute(_LOCK_PG, {"twins": ids})  # id order; the update below may visit them in any order
        found = {row.id: int(row.head_revision)
                 for row in connection.execute(_COUNT_PG, {"twins": ids, "counts": [counts[i] for i in ids],
                                                           "now": now})}
    else:  # one twin, or SQLite (whose write lock is already the whole database's)
        moved = {i: connection.execute(_COUNT, {"twin": i, "count": counts[i], "now": now}).scalar_one_or_none()
                 for i in ids}
        found = {i: int(n) for i, n in moved.items() if n is not None}
    missing = set(ids) - set(found)
    if missing:
        raise _deleted(sorted(missing))
    for twin_id in ids:
        twin = session.identity_map.get(session.identity_key(Twin, twin_id))
        if twin is not None:
            session.expire(twin, ["head_revision", "updated_at"])
    return found


# --- the log's rows -------------------------------------------------------------------------------------

_INSERT_REVISIONS = insert(cast(Table, StateRevision.__table__))
_INSERT_LOG_PG = text(f"""
WITH r AS (
    INSERT INTO state_revisions (twin_id, revision, recorded_at, author, message)
    SELECT r.e->>0, CAST(r.e->>1 AS integer), :now, :author, r.e->>2
    FROM jsonb_array_elements(CAST(:revisions AS jsonb)) AS r(e)
), v AS (
    INSERT INTO state_values (twin_id, revision, property, kind, value, unit, "timestamp")
    SELECT x.e->>0, CAST(x.e->>1 AS integer), {_VALUE_COLUMNS.format(alias="x")}
    FROM {_VALUE_ROWS.format(name="values", alias="x")} ORDER BY x.position
)
INSERT INTO state_heads (twin_id, property, kind, revision, value, unit, "timestamp", num_value)
SELECT y.e->>0, y.e->>2, y.e->>3, CAST(y.e->>1 AS integer), y.e->4, y.e->>5, CAST(y.e->>6 AS timestamptz),
       CAST(y.e->>7 AS double precision)
FROM {_VALUE_ROWS.format(name="heads", alias="y")}
{_HEADS_CONFLICT}
""").bindparams(bindparam("now", type_=UTCDateTime()))


def insert_log(session: Session, rows: Sequence[LogRow], *, author: str, now: datetime) -> None:
    """The revisions (numbers taken already), their values and the heads they move."""
    connection = session.connection()
    values = [(twin_id, number, v) for twin_id, number, written, _ in rows for v in written]
    newest = _newest(values)
    if connection.dialect.name == "postgresql":
        connection.execute(_INSERT_LOG_PG, {
            "now": now, "author": author, "revisions": json.dumps([[t, n, m] for t, n, _, m in rows]),
            "values": _document(values), "heads": _document(newest)})
    else:
        _insert_log_rows(connection, rows, values, newest, author=author, now=now)
    last: dict[str, int] = {}
    for twin_id, number, _, _ in rows:
        last[twin_id] = max(number, last.get(twin_id, 0))
    _announce(session, last)


def _insert_log_rows(connection: Connection, rows: Sequence[LogRow], values: list[tuple[str, int, NewValue]],
                     newest: list[tuple[str, int, NewValue]], *, author: str, now: datetime) -> None:
    """Three executemany statements built once; Core on the session's connection, since the ORM would only
    add bookkeeping for rows it never tracks."""
    connection.execute(_INSERT_REVISIONS, [{"twin_id": twin_id, "revision": number, "recorded_at": now,
                                            "author": author, "message": message}
                                           for twin_id, number, _, message in rows])
    if not values:
        return
    _insert_many(connection, cast(Table, StateValue.__table__), _VALUE_NAMES,
                 [(t, n, v.property, v.kind.value, _stored(v), v.unit, v.timestamp) for t, n, v in values])
    heads = []
    for t, n, v in newest:
        stored = _stored(v)
        heads.append({"twin_id": t, "property": v.property, "kind": v.kind.value, "revision": n, "value": stored,
                      "unit": v.unit, "timestamp": v.timestamp, "num_value": number_of(stored)})
    connection.execute(_upsert_heads(connection.dialect.name), heads)


_VALUE_NAMES = ("twin_id", "revision", "property", "kind", "value", "unit", "timestamp")
_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _json_text(value: Any) -> str:
    """The JSON a JSON column's processor writes (``json.dumps``), by orjson where that means the same: its
    floats are written in C, several times faster. orjson writes NaN and infinity as null and refuses
    integers beyond 64 bits and keys that are not text: an answer with a null in it, or a refusal, goes to
    ``json.dumps``, as do datetimes, dataclasses and subclasses (orjson would write what ``json.dumps``
    refuses or writes otherwise)."""
    try:
        text = orjson.dumps(value, option=_PASSTHROUGH)
    except TypeError:
        return json.dumps(value)
    return json.dumps(value) if b"null" in text else text.decode()


def _insert_many(connection: Connection, table: Table, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """``INSERT INTO table (names) VALUES (?, ...)`` for every row in one executemany, each value through its
    column type's own bind processor (as a Core insert would send it), a column at a time and each distinct
    time once: for a batch of revisions (many thousands of values) building Core's parameters per row cost
    more than SQLite's insert itself."""
    if not rows:
        return
    dialect = connection.dialect
    columns: list[Any] = [list(column) for column in zip(*rows, strict=True)]
    for j, name in enumerate(names):
        impl = table.c[name].type.dialect_impl(dialect)
        process = _json_text if isinstance(impl, JSON) else impl.bind_processor(dialect)
        if process is None:
            continue
        if columns[j] and isinstance(columns[j][0], datetime):  # a revision's values share their time
            seen = {when: process(when) for when in set(columns[j])}
            columns[j] = [seen[when] for when in columns[j]]
        else:
            columns[j] = list(map(process, columns[j]))
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) "
           f"VALUES ({', '.join('?' for _ in names)})")
    connection.exec_driver_sql(sql, list(zip(*columns, strict=True)))


_UPSERTS: dict[str, Any] = {}


def _upsert_heads(dialect: str) -> Any:
    """Make the given values the heads of their (twin, property, kind). Built once per dialect: building
    ``excluded`` costs more than running the statement."""
    statement = _UPSERTS.get(dialect)
    if statement is None:
        base = upsert(dialect, cast(Table, StateHead.__table__))
        statement = _UPSERTS[dialect] = base.on_conflict_do_update(
            index_elements=["twin_id", "property", "kind"],
            set_={c: base.excluded[c] for c in ("revision", "value", "unit", "timestamp", "num_value")},
        )
    return statement


# --- the one writer's groups on SQLite ----------------------------------------------------------------------
# The same counters and rows as ``take_numbers`` and ``insert_log``, by statements run straight on the group's
# SQLite connection (``store.direct``): the store's one writer applies the single writes of many requests
# together, and SQLAlchemy's execution layer was most of its time.

_COUNT_DIRECT = Direct(_COUNT)
_REVISION_NAMES = ("twin_id", "revision", "recorded_at", "author", "message")
_HEAD_NAMES = ("twin_id", "property", "kind", "revision", "value", "unit", "timestamp", "num_value")
_REVISIONS_DIRECT = Direct(_INSERT_REVISIONS, keys=_REVISION_NAMES)
_VALUES_DIRECT = Direct(insert(cast(Table, StateValue.__table__)), keys=_VALUE_NAMES)
_HEADS_DIRECT = Direct(_upsert_heads("sqlite"), keys=_HEAD_NAMES)


def take_numbers_direct(session: Session, counts: dict[str, int], now: datetime) -> dict[str, int]:
    """``take_numbers`` on SQLite, whose write lock the group's transaction holds already."""
    found: dict[str, int] = {}
    for twin_id in sorted(counts):
        moved = _COUNT_DIRECT.rows(session, {"twin": twin_id, "count": counts[twin_id], "now": now})
        if moved:
            found[twin_id] = int(moved[0][0])
    missing = set(counts) - set(found)
    if missing:
        raise _deleted(sorted(missing))
    for twin_id in found:  # an ORM twin another unit of the group read is told its counter moved
        twin = session.identity_map.get(session.identity_key(Twin, twin_id))
        if twin is not None:
            session.expire(twin, ["head_revision", "updated_at"])
    return found


def insert_log_direct(session: Session, rows: Sequence[LogRow], *, author: str, now: datetime) -> None:
    """``insert_log`` on SQLite: the revisions, their values and the heads they move."""
    values = [(twin_id, number, v) for twin_id, number, written, _ in rows for v in written]
    _REVISIONS_DIRECT.many(session, [dict(zip(_REVISION_NAMES, (twin_id, number, now, author, message), strict=True))
                                     for twin_id, number, _, message in rows])
    _VALUES_DIRECT.many(session, [dict(zip(_VALUE_NAMES, (t, n, v.property, v.kind.value, _stored(v), v.unit,
                                                          v.timestamp), strict=True)) for t, n, v in values])
    heads = []
    for t, n, v in _newest(values):
        stored = _stored(v)
        heads.append(dict(zip(_HEAD_NAMES, (t, v.property, v.kind.value, n, stored, v.unit, v.timestamp,
                                            number_of(stored)), strict=True)))
    _HEADS_DIRECT.many(session, heads)
    last: dict[str, int] = {}
    for twin_id, number, _, _ in rows:
        last[twin_id] = max(number, last.get(twin_id, 0))
    _announce(session, last)
