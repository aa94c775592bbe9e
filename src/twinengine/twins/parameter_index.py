"""The index of twins' text parameters (``twin_parameters``): each top-level parameter whose value is a
string of at most 200 characters, as a row a fleet filter ``name=value`` seeks. Other values (numbers,
booleans, lists, objects, long text) stay only in ``twins.parameters``, where filters read them as JSON:
a row per number would multiply the table by the count of numeric parameters (ten in river-reach) for
equality tests on measurements that are seldom selective."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from twinengine.twins.models import Twin, TwinParameter

__all__ = ["MAX_NAME", "MAX_TEXT", "index_parameters", "parameter_rows", "reindex_parameters"]

MAX_NAME = 64
MAX_TEXT = 200  # longer than any value a filter condition can hold (a condition is at most 200 characters)


def parameter_rows(twin_id: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one twin's parameters (also what bulk loads insert)."""
    return [{"twin_id": twin_id, "name": name, "value": value} for name, value in parameters.items()
            if isinstance(value, str) and len(value) <= MAX_TEXT and len(name) <= MAX_NAME]


def index_parameters(session: Session, twin: Twin) -> None:
    """Index a new twin's parameters (create and fork; a twin's parameters never change afterwards)."""
    rows = parameter_rows(twin.id, twin.parameters)
    if rows:
        session.connection().execute(insert(cast(Table, TwinParameter.__table__)), rows)


def reindex_parameters(session: Session, twin_id: str) -> bool:
    """Rewrite one twin's rows from its parameters (``twin db rebuild-state``); True when they differed."""
    parameters = session.scalar(select(Twin.parameters).where(Twin.id == twin_id)) or {}
    rows = parameter_rows(twin_id, parameters)
    stored = {name: value for name, value in session.execute(
        select(TwinParameter.name, TwinParameter.value).where(TwinParameter.twin_id == twin_id))}
    if stored == {row["name"]: row["value"] for row in rows}:
        return False
    session.execute(delete(TwinParameter).where(TwinParameter.twin_id == twin_id))
    if rows:
        session.connection().execute(insert(cast(Table, TwinParameter.__table__)), rows)
    return True
