"""Store queries of hot paths leave no reference cycles behind for the garbage collector.

A collection of the young generation stops every thread, the event loop that answers ``/health`` included;
under load the cyclic garbage of the requests decides how often and how long. An ORM alias built per call
(``aliased(Did)``: a copy of the table with its columns and their collections) was such garbage, several
hundred objects per STAC search, EDR query and arrivals poll: these paths build theirs once. A workflow run
built a W3C PROV document at its end (about 200 objects of cycles) and left its context and the runner's
hooks holding each other: it keeps the document's facts instead, and lets go of the hooks. Each path is
called with the collector off, then one collection counts what was unreachable; five rounds of that,
and the least of them is the path's.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

from helpers import Engine
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.lake.collections import LakeCollections
from twinengine.lake.grants import Readers
from twinengine.lake.models import Did
from twinengine.lake.stac.search import Search, find_datasets
from twinengine.lake.stac.service import _extent
from twinengine.workflows import service
from twinengine.workflows.lake_arrivals import LakeArrivals
from twinengine.workflows.runner import claim, execute
from twinengine.workflows.sync import hold

# ci_only: each hot path again on PostgreSQL
# the store itself, its concurrency, or engines in several processes: both stores
pytestmark = [pytest.mark.every_store, pytest.mark.ci_only(backend="postgresql")]

CALLS = 20
ROUNDS = 5
BOUND = 50  # unreachable objects per call: an alias per call left 430 to 840, a run 222; an IN list about 10


def cyclic_garbage_per_call(call: Callable[[], Any]) -> float:
    """The least over rounds of ``CALLS`` calls: the collector counts the whole process's garbage, and a
    thread of an earlier test may let go of its objects during a round (after the S3 tests, the fsspec
    loop closing an S3 client: about 100,000 objects of botocore's models; a loop of an engine still
    stopping), or the process's shared cache of compiled statements (``store.statements``) drop its least
    used. Others only ever add to a round; the path's own garbage comes in every round, so the least round
    still holds all of it."""
    call()  # statement caches warm
    gc.collect()
    gc.freeze()  # what lives now is out of the rounds' way: each collection walks what the calls made, not the
    # whole heap of a test process (a minute per test late in a run); a frozen object stays frozen, as
    # conftest's ``pytest_collection_finish`` leaves what collection built
    rounds = []
    for _ in range(ROUNDS):
        gc.collect()
        gc.disable()
        try:
            for _ in range(CALLS):
                call()
            rounds.append(gc.collect() / CALLS)
        finally:
            gc.enable()
    return min(rounds)


@pytest.fixture
def paths(engine: Engine) -> dict[str, Callable[[], Any]]:
    db = engine.runtime.db
    collections = LakeCollections(db, engine.runtime.lake)
    arrivals = LakeArrivals(db)

    def search() -> None:
        with db.session(readonly=True) as session:
            find_datasets(session, Search(collections=["rain"]), {"rain": Did(id=1)})

    def extent() -> None:
        with db.session(readonly=True) as session:
            _extent(session, Did(id=1), Readers(session, SYSTEM))  # the admins' path: one SQL aggregate

    return {"STAC search": search, "STAC collection extent": extent, "gridded collections": collections.ids,
            "files of a collection": lambda: collections._files_of("wx.rain"),
            "lake arrivals": lambda: arrivals.since(None)}


def test_hot_store_paths_leave_no_cycles(paths: dict[str, Callable[[], Any]]) -> None:
    found = {name: cyclic_garbage_per_call(call) for name, call in paths.items()}
    assert all(per_call < BOUND for per_call in found.values()), found


def test_a_workflow_run_leaves_no_cycles(engine: Engine) -> None:
    runtime = engine.runtime
    admin = Principal(name="admin", role=Role.ADMIN, issuer="internal")
    graph = {"process_graph": {"sum": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}}}

    def run() -> None:
        with runtime.db.session() as session:
            run = service.submit(session, runtime.workflows, principal=admin, process=graph, kind="sync")
            hold(runtime.workflows, run)  # as a sync request does: the engine's own workflow loop cannot take it
            run_id = run.id
        assert claim(runtime.workflows, run_id, held_by=runtime.workflows.worker_id)
        assert execute(runtime.workflows, run_id) == "finished"

    assert cyclic_garbage_per_call(run) < BOUND
