"""The graph read as of a time equals the graph rebuilt from the link events up to that time.

Random sequences of link and unlink (at non-decreasing times, ties included) go through the service; a
plain-Python model applies the same rules (self-links, duplicates, cycles of an acyclic type) and keeps the
accepted events. At every change's time (and just after, before the first, and now), from every twin, along
random directions, depths and types, ``related`` must equal a BFS over the graph rebuilt from the events up to
that time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import make_app
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.errors import Conflict, NotFound, ValidationFailed
from twinengine.runtime import Runtime
from twinengine.twins import relationships, service
from twinengine.twins.relationship_schemas import Direction

UMA = Principal(name="uma", role=Role.USER)
T0 = datetime(2020, 1, 1, tzinfo=UTC)
NODES = 5
TYPES = ("near", "feeds")  # near: any graph; feeds: acyclic
Edge = tuple[str, int, int]
Event = tuple[datetime, str, Edge]


@pytest.fixture
def runtime(settings: Settings, tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(settings)
    runtime.start()
    folder = make_app(tmp_path, name="node", manifest={"relationships": {
        "near": {"targets": ["node"]}, "feeds": {"targets": ["node"], "acyclic": True}}})
    with runtime.db.session() as session:
        publish(session, runtime.blobs, principal=SYSTEM, archive=pack(folder), max_archive_bytes=10**8,
                max_unpacked_bytes=10**8, steps=runtime.publish_steps)
    try:
        yield runtime
    finally:
        runtime.close()


# -- the model: plain Python over the accepted events ----------------------------------------------------------

def graph_at(events: list[Event], t: datetime | None) -> set[Edge]:
    edges: set[Edge] = set()
    for when, op, edge in events:
        if t is not None and when > t:
            break
        (edges.add if op == "link" else edges.discard)(edge)
    return edges


def bfs(edges: set[Edge], start: int, type: str | None, direction: Direction, depth: int) -> dict[int, int]:
    follow: dict[int, set[int]] = {}
    for kind, a, b in edges:
        if type is None or kind == type:
            if direction in (Direction.OUT, Direction.BOTH):
                follow.setdefault(a, set()).add(b)
            if direction in (Direction.IN, Direction.BOTH):
                follow.setdefault(b, set()).add(a)
    found, frontier = {start: 0}, [start]
    for hop in range(1, depth + 1):
        following = []
        for here in frontier:
            for there in sorted(follow.get(here, ())):
                if there not in found:
                    found[there] = hop
                    following.append(there)
        frontier = following
    found.pop(start)
    return found


def expected_error(edges: set[Edge], op: str, edge: Edge) -> type[Exception] | None:
    kind, a, b = edge
    if op == "unlink":
        return None if edge in edges else NotFound
    if a == b:
        return ValidationFailed
    if edge in edges:
        return Conflict
    if kind == "feeds" and a in bfs(edges, b, "feeds", Direction.OUT, NODES):
        return ValidationFailed
    return None


# -- random histories ---------------------------------------------------------------------------------------

node = st.integers(0, NODES - 1)
change = st.tuples(st.sampled_from(["link", "link", "unlink"]), st.sampled_from(TYPES), node, node,
                   st.integers(0, 90))  # minutes after the previous change: ties happen
query = st.tuples(st.sampled_from(list(Direction)), st.integers(1, NODES), st.sampled_from([None, *TYPES]))
_examples = itertools.count()


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(changes=st.lists(change, min_size=1, max_size=24), queries=st.lists(query, min_size=1, max_size=10))
def test_reads_as_of_a_time_equal_a_rebuilt_graph(runtime: Runtime, changes: list[tuple[Any, ...]],
                                                  queries: list[tuple[Any, ...]]) -> None:
    example = next(_examples)
    names = [f"n{example}-{i}" for i in range(NODES)]
    with runtime.db.session() as session:
        for name in names:
            service.create_twin(session, principal=UMA, app="node@1.0.0", name=name, parameters={"station": "N1"})
    when = T0 + timedelta(days=example)  # each example after the last: a type's changes go forward in time
    events: list[Event] = []
    for op, kind, a, b, minutes in changes:
        when += timedelta(minutes=minutes)
        edge = (kind, a, b)
        wanted = expected_error(graph_at(events, None), op, edge)
        change_fn = relationships.link if op == "link" else relationships.unlink
        if wanted is not None:
            with pytest.raises(wanted), runtime.db.session() as session:
                change_fn(session, principal=UMA, ref=names[a], type=kind, target=names[b], at=when)
            continue
        with runtime.db.session() as session:
            change_fn(session, principal=UMA, ref=names[a], type=kind, target=names[b], at=when)
        events.append((when, op, edge))
    times: list[datetime | None] = [None, *sorted({t for t, _, _ in events} | {t + timedelta(seconds=30) for t, _, _
                                                                                in events}
                                                  | {T0 + timedelta(days=example) - timedelta(seconds=1)})]
    shapes = itertools.cycle(queries)  # every time (each change's own included) from every twin, shapes drawn
    with runtime.db.session(readonly=True) as session:
        for at, start in itertools.product(times, range(NODES)):
            direction, depth, kind = next(shapes)
            want = bfs(graph_at(events, at), start, kind, direction, depth)
            page = relationships.related(session, principal=UMA, ref=names[start], type=kind, direction=direction,
                                         depth=depth, at=at)
            got = {names.index(t.name): t.depth for t in page.items}
            assert got == want, (at, start, direction, depth, kind)
            for item in page.items:  # the link that reached a twin touches it, and holds at that time
                assert item.id in (item.via.source_id, item.via.target_id)
                assert at is None or item.via.valid_from <= at < (item.via.valid_to or at + timedelta(1))
