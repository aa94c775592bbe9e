"""Retraining policies follow change counters and events: an idle pass of the loop reads the same few things
whatever the number of policies, and a policy is looked at when its trigger may have fired (changed, its
schedule due, a sealed buffer fill, new stream records, a state write, or it was busy last time)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import select

from helpers import RIVER_REACH, Engine, statements
from twinengine.auth.principal import Principal, Role
from twinengine.ml import retrain
from twinengine.ml import service as ml_service
from twinengine.ml.models import RetrainPolicy, TrainingRun
from twinengine.ml.policy_watch import PolicyWatch
from twinengine.ml.schemas import PolicyWrite
from twinengine.store.base import utcnow
from twinengine.streams.models import BufferFill, RetrainBuffer
from twinengine.twins import service
from twinengine.twins.schemas import PropertyWrite

# what a pass of schedule and buffer triggers needs of the lifecycle: no quota holds anything
NO_LIFECYCLE = cast(Any, SimpleNamespace(hold=None))

UMA = Principal(name="uma", role=Role.USER)
MODEL = "runoff_correction"


@pytest.fixture
def published(engine: Engine) -> Engine:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    return engine


def twins_with_policies(engine: Engine, names: list[str], **policy: Any) -> list[str]:
    ids = []
    with engine.runtime.db.session() as session:
        for name in names:
            ids.append(service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name=name,
                                           parameters={"station": "RR-01"}).id)
            ml_service.set_policy(session, principal=UMA, twin_ref=name, model=MODEL, body=PolicyWrite(**policy))
    return ids


def due(engine: Engine, watch: PolicyWatch, *, later: timedelta = timedelta(0)) -> set[tuple[str, str]]:
    with engine.runtime.db.session(readonly=True) as session:
        return watch.due(session, lambda: engine.runtime.streams, utcnow() + later)


def test_an_idle_pass_reads_the_same_few_things_for_any_number_of_policies(published: Engine) -> None:
    watch = PolicyWatch()
    idle = []
    for n in (5, 40):
        created = twins_with_policies(published, [f"reach-{i:03d}" for i in range(len(watch.known), n)],
                                      every_seconds=3600)
        assert {t for t, _ in due(published, watch)} >= set(created)  # new: each looked at once
        assert len(watch.known) == n
        with statements(published) as seen:
            assert due(published, watch) == set()
        idle.append(len(seen))
    assert idle[0] == idle[1] and idle[0] <= 2  # the change counters, whatever the number of policies
    assert not any("ml_retrain_policies" in s for s in seen)


def test_a_policy_is_looked_at_when_its_trigger_may_have_fired(published: Engine) -> None:
    scheduled, drifting, skilled, buffered = twins_with_policies(published, ["a"], every_seconds=600) + \
        twins_with_policies(published, ["b"], drift={"method": "ks"}, stream="gauges") + \
        twins_with_policies(published, ["c"], skill={"property": "level", "metric": "nse", "lead": "1h",
                                                     "below": 0.8}) + \
        twins_with_policies(published, ["d"], buffer="fills")
    watch = PolicyWatch()
    assert due(published, watch) == {(t, MODEL) for t in (scheduled, drifting, skilled, buffered)}
    assert due(published, watch) == set()

    with published.runtime.db.session() as session:  # the scheduled policy's first run
        assert retrain.run_once(NO_LIFECYCLE, session, {(scheduled, MODEL)}) == 1
    assert due(published, watch) == {(scheduled, MODEL)}  # it changed (last triggered): looked at once
    assert due(published, watch, later=timedelta(seconds=599)) == set()
    assert due(published, watch, later=timedelta(seconds=601)) == {(scheduled, MODEL)}  # its schedule came due
    uma = published.as_role("uma", "user")
    uma.streams.append("b", "gauges", [{"time": "2026-01-01T00:00:00Z", "station": "RR-01", "rain": 0.1, "level": 1.0}])
    assert due(published, watch) == {(drifting, MODEL)}  # new records: a drift verdict may change
    with published.runtime.db.session() as session:
        service.write_state(session, principal=UMA, ref="c", reported={"level": PropertyWrite(value=1.0)},
                            desired={})
    assert due(published, watch) == {(skilled, MODEL)}  # the twin reported: the skill rule is judged again
    with published.runtime.db.session() as session:
        buffer = RetrainBuffer(twin_id=buffered, name="fills", stream="gauges", policy="count", records=1,
                               created_by="uma")
        session.add(buffer)
        session.flush()
        session.add(BufferFill(buffer_id=buffer.id, twin_id=buffered, stream="gauges", start_offset=0, end_offset=1,
                               reason="count"))
    assert due(published, watch) == {(buffered, MODEL)}  # a sealed fill waits for it
    with published.runtime.db.session() as session:  # as the policy's visit does
        for fill in session.scalars(select(BufferFill)):
            fill.status = "consumed"
    assert due(published, watch) == set()
    watch.deferred({(buffered, MODEL)})
    assert due(published, watch) == {(buffered, MODEL)}  # its model was training: looked at again

    with published.runtime.db.session() as session:
        ml_service.set_policy(session, principal=UMA, twin_ref="a", model=MODEL,
                              body=PolicyWrite(every_seconds=600, enabled=False))
    assert due(published, watch) == set() and (scheduled, MODEL) not in watch.known  # disabled: forgotten
    with published.runtime.db.session() as session:
        ml_service.set_policy(session, principal=UMA, twin_ref="a", model=MODEL, body=PolicyWrite(every_seconds=60))
    assert due(published, watch) == {(scheduled, MODEL)}  # changed: looked at again


def test_a_pass_visits_only_the_policies_it_is_given(published: Engine) -> None:
    ids = twins_with_policies(published, ["a", "b", "c"], every_seconds=60)  # all three due at once
    with published.runtime.db.session() as session:
        assert retrain.run_once(NO_LIFECYCLE, session, set()) == 0
        busy: set[tuple[str, str]] = set()
        assert retrain.run_once(NO_LIFECYCLE, session, {(ids[1], MODEL)}, busy) == 1
        assert busy == set()
    with published.runtime.db.session() as session:
        queued = session.scalars(select(TrainingRun.twin_id).where(TrainingRun.model == MODEL)).all()
        assert queued == [ids[1]]
        assert retrain.run_once(NO_LIFECYCLE, session, {(ids[1], MODEL)}, busy) == 0
        assert busy == {(ids[1], MODEL)}  # its run is queued: the model counts as training
        triggered = session.scalars(select(RetrainPolicy.twin_id).where(RetrainPolicy.last_triggered_at.is_not(None)))
        assert list(triggered) == [ids[1]]
