"""The index of twins' parameters (``twin_parameters``): a row per top-level parameter (name of at most 64
characters) with its JSON type, its text (strings of at most 200 characters), its number (numbers; booleans
as 1 and 0) and the text a group key shows (numbers and booleans). Fleet filters and groups on a parameter
seek these rows instead of reading each twin's JSON.

The rows are computed in SQL from the twin's stored JSON, with the same functions the JSON path used
(``jsonb_each``/``jsonb_typeof`` on PostgreSQL, ``json_each`` on SQLite): a number is what the store reads
the JSON number as, and a label is the store's own text of it (PostgreSQL prints ``2.0`` as ``2.0``, SQLite
``true`` as ``1``), so answers do not change with the index. Create, fork, ``rebuild-state`` and migration
0015 run the same statement."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.orm import Session

from twinengine.twins.models import TwinParameter

__all__ = ["COLUMNS", "MAX_NAME", "MAX_TEXT", "index_parameters", "reindex_parameters", "rows_sql"]

MAX_NAME = 64
MAX_TEXT = 200  # longer than any value a filter condition can hold (a condition is at most 200 characters)
COLUMNS = "twin_id, name, kind, value, num_value, label"
_DOUBLE_MAX = "1.7976931348623157e308"

# One row per top-level parameter of the twins the WHERE clause keeps ({twins}: a condition on ``t``).
_ROWS = {
    "postgresql": f"""
SELECT t.id, p.key, jsonb_typeof(p.value),
  CASE WHEN jsonb_typeof(p.value) = 'string' AND char_length(p.value #>> '{{}}') <= {MAX_TEXT}
       THEN p.value #>> '{{}}' END,
  CASE jsonb_typeof(p.value)
    WHEN 'number' THEN CASE WHEN abs((p.value #>> '{{}}')::numeric) <= {_DOUBLE_MAX}
                            THEN (p.value #>> '{{}}')::double precision END
    WHEN 'boolean' THEN CASE WHEN p.value = 'true'::jsonb THEN 1.0::double precision
                             ELSE 0.0::double precision END END,
  CASE WHEN jsonb_typeof(p.value) IN ('number', 'boolean') THEN p.value #>> '{{}}' END
FROM twins AS t CROSS JOIN LATERAL jsonb_each(t.parameters) AS p
WHERE jsonb_typeof(t.parameters) = 'object' AND char_length(p.key) <= {MAX_NAME} AND {{twins}}""",
    "sqlite": f"""
SELECT t.id, p.key,
  CASE p.type WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number'
              WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' ELSE p.type END,
  CASE WHEN p.type = 'text' AND length(p.value) <= {MAX_TEXT} THEN p.value END,
  CASE WHEN p.type IN ('integer', 'real') THEN CAST(p.value AS REAL)
       WHEN p.type = 'true' THEN 1.0 WHEN p.type = 'false' THEN 0.0 END,
  CASE WHEN p.type IN ('integer', 'real', 'true', 'false') THEN CAST(p.value AS TEXT) END
FROM twins AS t, json_each(t.parameters) AS p
WHERE json_type(t.parameters) = 'object' AND length(p.key) <= {MAX_NAME} AND {{twins}}""",
}


def rows_sql(dialect: str, twins: str = "1 = 1") -> str:
    """The SELECT of the index rows (in ``COLUMNS`` order) of the twins ``t`` that ``twins`` keeps."""
    return _ROWS["postgresql" if dialect == "postgresql" else "sqlite"].replace("{twins}", twins)


def _of(session: Session, insert: bool = False) -> str:
    sql = rows_sql(session.get_bind().dialect.name, "t.id IN :ids")
    return f"INSERT INTO twin_parameters ({COLUMNS}){sql}" if insert else sql


def index_parameters(session: Session, twin_ids: Sequence[str]) -> None:
    """Index the parameters of new twins, already flushed (create, fork, bulk loads; a twin's parameters
    never change afterwards)."""
    if twin_ids:
        session.execute(text(_of(session, insert=True)).bindparams(bindparam("ids", expanding=True)),
                        {"ids": list(twin_ids)})


def reindex_parameters(session: Session, twin_id: str) -> bool:
    """Rewrite one twin's rows from its parameters (``twin db rebuild-state``); True when they differed."""
    query = text(_of(session)).bindparams(bindparam("ids", expanding=True))
    wanted = {tuple(row) for row in session.execute(query, {"ids": [twin_id]})}
    stored = {tuple(row) for row in session.execute(
        select(TwinParameter.twin_id, TwinParameter.name, TwinParameter.kind, TwinParameter.value,
               TwinParameter.num_value, TwinParameter.label).where(TwinParameter.twin_id == twin_id))}
    if stored == wanted:
        return False
    session.execute(delete(TwinParameter).where(TwinParameter.twin_id == twin_id))
    index_parameters(session, [twin_id])
    return True
