"""Reading the relationship graph as of now or of a valid time: one recursive CTE (the same SQL on SQLite
and PostgreSQL) for traversals, breadth-first hops for the cycle check of a new link.

``bench/relations_traversal.py`` measured the CTE against breadth-first reads with one query per hop: the CTE
wins where hops add up (1.7 to 10 times along 30 hops) and is about even or a little slower elsewhere
(docs/twins.md#relationships).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, and_, case, cast, func, literal, or_, select, true
from sqlalchemy.orm import Session

from twinengine.store.base import LogId
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
    """Twins within ``depth`` hops of ``start``, each once at its shortest distance with the lowest-numbered
    link that reached it there, nearest first then by name; a twin the reader may not see (``visible`` false)
    is neither returned nor walked through. The second value is True when ``limit`` cut the answer short.

    One recursive CTE walks (twin, depth, link) rows; UNION drops repeated rows, so cycles end at ``depth``
    and the rows are bounded by links times depth. The same statement then picks each twin's nearest row."""
    first = select(cast(Twin.id, String).label("twin_id"), cast(literal(0), Integer).label("depth"),
                   cast(literal(0), LogId).label("link_id")).where(Twin.id == start)
    reach = first.cte("reach", recursive=True)
    if direction is Direction.BOTH:
        here = or_(TwinLink.source_id == reach.c.twin_id, TwinLink.target_id == reach.c.twin_id)
        there: Any = case((TwinLink.source_id == reach.c.twin_id, TwinLink.target_id), else_=TwinLink.source_id)
    else:
        begin, end = _ends(direction)[0]
        here, there = begin == reach.c.twin_id, end
    step = (select(cast(there, String), cast(reach.c.depth + 1, Integer), TwinLink.id)
            .select_from(reach).join(TwinLink, here)
            .where(reach.c.depth < depth, live_at(at), TwinLink.type == type if type is not None else true()))
    if visible is not None:
        step = step.join(Twin, Twin.id == there).where(visible)
    reach = reach.union(step)
    nearest = (select(reach.c.twin_id, func.min(reach.c.depth).label("depth"))
               .where(reach.c.twin_id != start).group_by(reach.c.twin_id).subquery())
    chosen = (select(nearest.c.twin_id, nearest.c.depth, func.min(reach.c.link_id).label("link_id"))
              .join(reach, and_(reach.c.twin_id == nearest.c.twin_id, reach.c.depth == nearest.c.depth))
              .group_by(nearest.c.twin_id, nearest.c.depth).subquery())
    query = (select(Twin, TwinLink, chosen.c.depth).join(chosen, Twin.id == chosen.c.twin_id)
             .join(TwinLink, TwinLink.id == chosen.c.link_id)
             .order_by(chosen.c.depth, Twin.name, TwinLink.id).limit(limit + 1))
    found = [Reached(twin, hops, link) for twin, link, hops in session.execute(query)]
    return found[:limit], len(found) > limit


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
