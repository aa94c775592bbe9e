"""Graph reads of twin relationships: one recursive CTE (what the engine does, portable to SQLite and
PostgreSQL) against breadth-first reads with one query per hop, on the same store, measured side by side.

For each backend (SQLite always; PostgreSQL when ``TWIN_BENCH_POSTGRES_URL`` or the default local server
answers) it builds a river network of ``--reaches`` twins: a tree where each reach ``flows_into`` one
downstream reach and ``--branching`` reaches flow into each, every link closed and reopened ``--versions``
times over the past so the table holds history. It then times, as the median of ``--repeat`` reads:

- downstream of a headwater reach (a chain) within 3 and within 30 hops, now and as of a past time;
- upstream of the outlet (the whole tree fanning out) within 3 and within 8 hops.

Each read runs as an admin (no visibility filter) and as the twins' owner (the filter an ordinary user's reads
carry). Both return the same twins, depths and links in the same order, checked before timing. Ratios are BFS
time over CTE time (>1: the CTE, which the engine uses, is faster).

Usage: python bench/relations_traversal.py [--reaches 20000] [--branching 3] [--versions 3] [--repeat 30]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, select, true
from sqlalchemy.orm import Session
from state_writes import fresh_pg_database, postgres_url  # beside this script

from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.twins import graph, relationships, service
from twinengine.twins.models import Twin
from twinengine.twins.relationship_models import TwinLink
from twinengine.twins.relationship_schemas import Direction

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "river-reach"
T0 = datetime(2020, 1, 1, tzinfo=UTC)
UMA = Principal(name="uma", role=Role.USER)
TYPE = "flows_into"


def build(runtime: Runtime, reaches: int, branching: int, versions: int) -> tuple[str, str]:
    """Twins r0 (the outlet) .. rN; r(i) flows into r((i-1)//branching). Returns (outlet id, headwater id)."""
    with runtime.db.session() as session:
        publish(session, runtime.blobs, principal=SYSTEM, archive=pack(APP), max_archive_bytes=10**8,
                max_unpacked_bytes=10**8, steps=runtime.publish_steps)
        first = service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="r0",
                                    parameters={"station": "RR-00"})
        template = {c: getattr(first, c) for c in ("app_id", "app_name", "app_version", "owner", "parameters")}
        ids = [first.id] + [f"tw-{i:012x}" for i in range(1, reaches)]
        session.execute(insert(Twin), [{"id": ids[i], "name": f"r{i}", "head_revision": 0, **template}
                                       for i in range(1, reaches)])
        rows: list[dict[str, Any]] = []
        for i in range(1, reaches):
            for v in range(versions + 1):  # closed spans in the past, then the open one
                start = T0 + timedelta(days=2 * v)
                rows.append({"type": TYPE, "source_id": ids[i], "target_id": ids[(i - 1) // branching],
                             "valid_from": start, "valid_to": start + timedelta(days=1) if v < versions else None,
                             "opened_revision": 1, "opened_by": "bench"})
        for i in range(0, len(rows), 20_000):
            session.execute(insert(TwinLink), rows[i:i + 20_000])
    return ids[0], ids[-1]


def bfs(session: Session, start: str, direction: Direction, depth: int, at: datetime | None,
        visible: ColumnElement[bool] | None) -> list[graph.Reached]:
    """The alternative: breadth-first, one query per hop for the whole frontier (IN lists of 500 ids), joined
    to the twins it reaches; same answer and order as ``graph.traverse``."""
    condition = and_(graph.live_at(at), TwinLink.type == TYPE)
    ends = {Direction.OUT: [(TwinLink.source_id, TwinLink.target_id)],
            Direction.IN: [(TwinLink.target_id, TwinLink.source_id)]}[direction]
    seen, frontier, found = {start}, [start], []
    for hop in range(1, depth + 1):
        reached: dict[str, graph.Reached] = {}
        for begin, end in ends:
            for i in range(0, len(frontier), 500):
                query = (select(TwinLink, Twin).join(Twin, Twin.id == end)
                         .where(begin.in_(frontier[i:i + 500]), condition, visible if visible is not None else true())
                         .order_by(Twin.name, TwinLink.id))
                for link, twin in session.execute(query):
                    if twin.id not in seen and twin.id not in reached:
                        reached[twin.id] = graph.Reached(twin, hop, link)
        found += sorted(reached.values(), key=lambda r: (r.twin.name, r.link.id))
        seen.update(reached)
        frontier = list(reached)
        if not frontier:
            break
    return found


def cte(session: Session, start: str, direction: Direction, depth: int, at: datetime | None,
        visible: ColumnElement[bool] | None) -> list[graph.Reached]:
    """What the engine does: ``graph.traverse``, one recursive CTE."""
    return graph.traverse(session, start, type=TYPE, direction=direction, depth=depth, at=at, visible=visible,
                          limit=10**9)[0]


def answer(found: list[graph.Reached]) -> list[tuple[str, int, int]]:
    return [(r.twin.id, r.depth, r.link.id) for r in found]


def median_ms(repeat: int, fn: Callable[[], object]) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(label: str, settings: Settings, args: argparse.Namespace) -> list[tuple[str, ...]]:
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        outlet, headwater = build(runtime, args.reaches, args.branching, args.versions)
        past = T0 + timedelta(days=2, hours=12)
        cases = [("downstream, 3 hops", headwater, Direction.OUT, 3, None),
                 ("downstream, 30 hops", headwater, Direction.OUT, 30, None),
                 ("downstream, 30 hops, past", headwater, Direction.OUT, 30, past),
                 ("upstream, 3 hops", outlet, Direction.IN, 3, None),
                 ("upstream, 8 hops", outlet, Direction.IN, 8, None),
                 ("upstream, 8 hops, past", outlet, Direction.IN, 8, past)]
        out = []
        for (name, start, direction, depth, at), reader in itertools.product(cases, ("admin", "user")):
            visible = relationships.visible_to(UMA if reader == "user" else SYSTEM)
            with runtime.db.session(readonly=True) as session:
                want = answer(bfs(session, start, direction, depth, at, visible))
                if answer(cte(session, start, direction, depth, at, visible)) != want:
                    raise SystemExit(f"{label} {name}: the CTE and BFS answers differ")
                b = median_ms(args.repeat, lambda: bfs(session, start, direction, depth, at, visible))  # noqa: B023
                c = median_ms(args.repeat, lambda: cte(session, start, direction, depth, at, visible))  # noqa: B023
                session.expunge_all()
            out.append((label, f"{name} ({reader})", str(len(want)), f"{b:.2f}", f"{c:.2f}", f"{b / c:.2f}"))
            print(" | ".join(out[-1]), flush=True)
        return out
    finally:
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reaches", type=int, default=20_000)
    parser.add_argument("--branching", type=int, default=3)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print("backend | read (reader) | twins found | BFS ms | CTE ms | BFS / CTE")
    with tempfile.TemporaryDirectory() as tmp:
        measure("sqlite", Settings(data_dir=Path(tmp) / "sqlite"), args)
        admin_url = postgres_url()
        if admin_url is None:
            print("postgresql: no server answered; set TWIN_BENCH_POSTGRES_URL to include it")
            return
        url, drop = fresh_pg_database(admin_url)
        try:
            sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            measure("postgresql", Settings(data_dir=Path(tmp) / "pg", database_url=sa_url), args)
        finally:
            drop()


if __name__ == "__main__":
    main()
