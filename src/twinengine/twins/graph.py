"""Reading the relationship graph: breadth-first, one query per hop, as of now or of a valid time.

A hop is one indexed query for the whole frontier (the ``ix_twin_links_out``/``_in`` indexes begin with the
twin a hop starts from), joined to the twins it reaches so that it can keep only those the reader may see.
``bench/relations_traversal.py`` measures it against a recursive CTE: see docs/twins.md#relationships.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from twinengine.twins.models import Twin
from twinengine.twins.relationship_models import TwinLink
from twinengine.twins.relationship_schemas import Direction

__all__ = ["Reached", "live_at", "path_between", "traverse"]

_CHUNK = 500  # frontier ids per IN list: far below SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class Reached:
    twin: Twin
    depth: int
    link: TwinLink


def live_at(at: datetime | None) -> ColumnElement[bool]:
    """Links that hold at ``at`` (half-open spans), or now: the open ones."""
    if at is None:
        return TwinLink.valid_to.is_(None)
    return and_(TwinLink.valid_from <= at, or_(TwinLink.valid_to.is_(None), TwinLink.valid_to > at))


def _ends(direction: Direction) -> list[tuple[Any, Any]]:
    """(column the hop starts from, column it reaches) for each way a direction follows links."""
    out = (TwinLink.source_id, TwinLink.target_id)
    back = (TwinLink.target_id, TwinLink.source_id)
    return {Direction.OUT: [out], Direction.IN: [back], Direction.BOTH: [out, back]}[direction]


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def traverse(session: Session, start: str, *, type: str | None, direction: Direction, depth: int,
             at: datetime | None, visible: ColumnElement[bool] | None, limit: int) -> tuple[list[Reached], bool]:
    """Twins within ``depth`` hops of ``start``, each once at its shortest distance, nearest first; a twin
    the reader may not see (``visible`` false) is neither returned nor walked through. The second value is
    True when ``limit`` cut the answer short."""
    condition = live_at(at) if type is None else and_(live_at(at), TwinLink.type == type)
    seen = {start}
    frontier = [start]
    found: list[Reached] = []
    for hop in range(1, depth + 1):
        reached: dict[str, Reached] = {}
        for begin, end in _ends(direction):
            for chunk in _chunks(frontier):
                query = (select(TwinLink, Twin).join(Twin, Twin.id == end)
                         .where(begin.in_(chunk), condition, visible if visible is not None else true())
                         .order_by(Twin.name, TwinLink.id))
                for link, twin in session.execute(query):
                    if twin.id not in seen and twin.id not in reached:
                        reached[twin.id] = Reached(twin, hop, link)
        ordered = sorted(reached.values(), key=lambda r: (r.twin.name, r.link.id))
        if len(found) + len(ordered) > limit:
            return found + ordered[:limit - len(found)], True
        found += ordered
        seen.update(reached)
        frontier = list(reached)
        if not frontier:
            break
    return found, False


def path_between(session: Session, start: str, goal: str, *, type: str) -> list[str] | None:
    """The ids on a shortest path of open ``type`` links from ``start`` to ``goal``, or None: whether a new
    link ``goal → start`` would close a cycle. Walks what ``start`` reaches, not the whole graph."""
    parent: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier and goal not in parent:
        following: list[str] = []
        for chunk in _chunks(frontier):
            query = (select(TwinLink.source_id, TwinLink.target_id)
                     .where(TwinLink.source_id.in_(chunk), TwinLink.type == type, TwinLink.valid_to.is_(None))
                     .order_by(TwinLink.id))
            for source, target in session.execute(query):
                if target not in parent:
                    parent[target] = source
                    following.append(target)
        frontier = following
    if goal not in parent:
        return None
    path: list[str] = []
    node: str | None = goal
    while node is not None:
        path.append(node)
        node = parent[node]
    return path[::-1]
