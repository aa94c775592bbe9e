"""A stream window trigger on a stream starts one run per full window of records, binding the window's
offsets to the run's parameters; however many scheduler passes see it, a window starts exactly one run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import MINIMAL_STATE, make_app
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.daemons import workflows_triggers
from twinengine.errors import ValidationFailed
from twinengine.runtime import Runtime
from twinengine.streams import records
from twinengine.streams.hub import stream_key
from twinengine.twins import service as twins
from twinengine.workflows import triggers
from twinengine.workflows.models import TriggerEvent, WorkflowRun
from twinengine.workflows.schemas import TriggerCreate

UMA = Principal("uma", Role.USER)
STREAMS = {"readings": {"time_field": "time", "fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}}
GRAPH = ('{"process_graph": {"sum": {"process_id": "add", "arguments": {"x": {"from_parameter": "first"}, '
         '"y": {"from_parameter": "n"}}, "result": true}}, "parameters": [{"name": "first", "schema": '
         '{"type": "number"}}, {"name": "n", "schema": {"type": "number"}}]}')


@pytest.fixture
def runtime(tmp_path: Path, database_url: str | None) -> Iterator[Runtime]:
    rt = Runtime.from_settings(Settings(data_dir=tmp_path / "data", database_url=database_url))
    rt.start()
    try:
        yield rt
    finally:
        rt.close()


def test_one_run_per_window_of_records(runtime: Runtime, tmp_path: Path) -> None:
    app = make_app(tmp_path, name="win-app", manifest={"streams": STREAMS, "state": MINIMAL_STATE,
                                                        "workflows": {"summarise": {"process_graph": "g.json"}}},
                   files={"g.json": GRAPH})
    with runtime.db.session() as session:
        publish(session, runtime.blobs, principal=SYSTEM, archive=pack(app), max_archive_bytes=10**8,
                max_unpacked_bytes=10**8, steps=runtime.publish_steps)
        twin = twins.create_twin(session, principal=UMA, app="win-app@1.0.0", name="w", parameters={"station": "S1"})
        twin_id = twin.id
        with pytest.raises(ValidationFailed) as bad:
            triggers.create_trigger(session, principal=UMA, twin_ref=twin_id, body=TriggerCreate(
                name="bad", kind="stream_window", workflow="summarise", stream="nope", count=8))
        assert bad.value.details[0]["loc"] == "stream"
        trigger, _ = triggers.create_trigger(session, principal=UMA, twin_ref=twin_id, body=TriggerCreate(
            name="every_8", kind="stream_window", workflow="summarise", stream="readings", count=8,
            bind={"first": "first_offset", "n": "count"}))
        trigger_id = trigger.id
    workflows_triggers.run_once(runtime.workflows)  # the first pass: the stream's end so far is history (empty)
    with runtime.db.session(readonly=True) as session:
        declared = twins.manifest_for(session, twins.get_twin(session, principal=UMA, ref=twin_id)).streams["readings"]
    rows = [{"time": f"2026-03-01T00:{i:02d}:00Z", "level": float(i)} for i in range(20)]
    runtime.streams.append(stream_key(twin_id, "readings"), records.check_records(declared, rows), time_field="time")
    for _ in range(3):  # the engine's own loop may pass too: one run per window all the same
        workflows_triggers.run_once(runtime.workflows)
    with runtime.db.session(readonly=True) as session:
        events = list(session.scalars(select(TriggerEvent).where(TriggerEvent.trigger_id == trigger_id)
                                      .order_by(TriggerEvent.event_key)))
        started = list(session.scalars(select(WorkflowRun).where(WorkflowRun.trigger_id == trigger_id)))
    assert [e.event_key for e in events] == ["window:readings:0-7", "window:readings:8-15"]  # 16..19 waits
    assert len(started) == 2
    assert sorted((r.parameters["first"], r.parameters["n"]) for r in started) == [(0, 8), (8, 8)]
