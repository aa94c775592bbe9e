"""Background loops follow change counters: an idle refresh is one small query whatever the number of twins,
and a new twin, a deleted twin or a new binding is picked up by loading only what changed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from helpers import RIVER_REACH, Engine, statements
from twinengine.auth.principal import Principal, Role
from twinengine.daemons import workflows_triggers
from twinengine.daemons.streams_functions import FunctionWorker
from twinengine.daemons.streams_mqtt import MqttBridge
from twinengine.store import changes
from twinengine.store.base import utcnow
from twinengine.twins import service

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores

UMA = Principal(name="uma", role=Role.USER)


def create(engine: Engine, names: list[str]) -> None:
    with engine.runtime.db.session() as session:
        for name in names:
            service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name=name,
                                parameters={"station": "RR-01"})


@pytest.fixture
def worker(engine: Engine) -> Iterator[FunctionWorker]:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    worker = FunctionWorker(engine.runtime)
    yield worker
    worker.pool.shutdown(wait=False)


def refresh(engine: Engine, worker: FunctionWorker) -> list[str]:
    with statements(engine) as seen, engine.runtime.db.session(readonly=True) as session:
        worker.refresh(session)
    return seen


def test_an_idle_refresh_costs_the_same_few_queries_for_any_number_of_twins(engine: Engine,
                                                                             worker: FunctionWorker) -> None:
    idle = []
    for n in (5, 40):
        create(engine, [f"reach-{i:03d}" for i in range(len(worker.consumers), n)])
        refresh(engine, worker)
        assert len(worker.consumers) == n  # one gauge_to_state consumer per twin
        idle.append(len(refresh(engine, worker)))
    assert idle[0] == idle[1] and idle[0] <= 3  # the counters read, whatever the fleet


def test_a_new_or_deleted_twin_is_picked_up_by_loading_only_it(engine: Engine, worker: FunctionWorker) -> None:
    create(engine, [f"reach-{i:03d}" for i in range(30)])
    refresh(engine, worker)
    create(engine, ["newcomer"])
    seen = refresh(engine, worker)
    assert any(c.twin_name == "newcomer" for c in worker.consumers.values())
    twin_reads = [s for s in seen if "FROM twins" in s]
    assert twin_reads and all("WHERE" in s and "twins.id IN" in s for s in twin_reads)  # by id, never all
    with engine.runtime.db.session() as session:
        service.delete_twin(session, principal=UMA, ref="reach-007")
    refresh(engine, worker)
    assert {c.twin_name for c in worker.consumers.values()} == {f"reach-{i:03d}" for i in range(30)
                                                                if i != 7} | {"newcomer"}


def test_a_bulk_change_makes_readers_reload_everything(engine: Engine, worker: FunctionWorker) -> None:
    create(engine, ["reach-a"])
    refresh(engine, worker)
    worker.consumers.clear()  # as if they had been lost: only a reload finds them again
    with engine.runtime.db.session() as session:
        changes.bump(session, "twins")
    refresh(engine, worker)
    assert {c.twin_name for c in worker.consumers.values()} == {"reach-a"}


def test_the_mqtt_bridge_reads_bindings_only_after_a_change(engine: Engine, worker: FunctionWorker) -> None:
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    bridge = MqttBridge(engine.runtime, "mqtt://127.0.0.1:1883")  # not connected: only the bindings are read
    assert bridge.run_once() == 0
    with statements(engine) as idle:
        assert bridge.run_once() == 0
    assert len(idle) <= 2 and not any("stream_bindings" in s for s in idle)
    uma.streams.bind_mqtt("reach", "gauges", "sites/rr-01/gauges")
    assert bridge.run_once() == 1 and "sites/rr-01/gauges" in bridge.targets


def test_the_trigger_scheduler_asks_only_for_what_may_be_due(engine: Engine, worker: FunctionWorker) -> None:
    create(engine, [f"reach-{i:03d}" for i in range(12)])  # each gets the app's dataset trigger
    workflows = engine.runtime.workflows
    watch = workflows_triggers.Watch()
    with engine.runtime.db.session() as session:
        assert len(workflows_triggers._due(session, workflows, None, utcnow())) == 12  # a one-shot pass: all
    with engine.runtime.db.session() as session:
        assert workflows_triggers._due(session, workflows, watch, utcnow()) == []  # no arrival: none
    with engine.runtime.db.session() as session, statements(engine) as seen:
        assert workflows_triggers._due(session, workflows, watch, utcnow()) == []
    assert not any("FROM workflow_triggers" in s and "WHERE workflow_triggers.enabled" in s
                   and "kind" not in s for s in seen)
    assert workflows_triggers.sweep(workflows) == 0  # every twin has its triggers: nothing to load


def test_an_idle_trigger_pass_takes_no_write_transaction(engine: Engine, worker: FunctionWorker) -> None:
    create(engine, [f"reach-{i:03d}" for i in range(3)])
    workflows = engine.runtime.workflows
    watch = workflows_triggers.Watch()
    workflows_triggers.run_once(workflows, watch)
    writes: list[int] = []
    me = threading.get_ident()

    def began(*_args: Any) -> None:  # read-only units of work come from another session factory
        if threading.get_ident() == me:
            writes.append(1)

    event.listen(engine.runtime.db.sessions, "after_begin", began)
    try:
        assert workflows_triggers.run_once(workflows, watch) == 0
    finally:
        event.remove(engine.runtime.db.sessions, "after_begin", began)
    assert writes == []  # nothing was due: a read-only look, no write lock taken


def test_a_full_reload_reads_no_manifest_per_twin_and_looks_only_at_streams_with_records(
        engine: Engine, worker: FunctionWorker) -> None:
    create(engine, [f"reach-{i:03d}" for i in range(30)])
    engine.as_role("uma", "user").streams.append("reach-007", "gauges", [
        {"time": "2026-01-01T00:00:00Z", "station": "RR-01", "rain": 0.1, "level": 1.0}])
    seen = refresh(engine, worker)  # the first look: every twin
    assert len(worker.consumers) == 30
    assert not any("FROM app_versions" in s and "twins" not in s for s in seen)  # manifests by checksum, cached
    reach_007 = next(i for i, c in worker.consumers.items() if c.twin_name == "reach-007")
    assert worker._waiting == {reach_007}  # the one stream that holds records, not every twin's
    worker.run_once()
    worker.drain()
    assert worker.consumers[reach_007].offset == 1  # its record was taken
