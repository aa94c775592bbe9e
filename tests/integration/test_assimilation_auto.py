"""Assimilation that runs by itself (``assimilation.run``) on a real engine: records sent to a twin's stream
become analysis revisions with no further call, two loops racing over the same records run each cycle once
(the claim in the store), a schedule runs its tick, and a failing pass is said on the twin's schedule and in
the audit log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from helpers import Engine, make_app
from twinengine.api.app import create_app
from twinengine.auth.models import AuditEvent
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.daemons.assimilation import AssimilationLoop
from twinengine.runtime import Runtime
from twinengine.store.base import utcnow
from twinengine.twin_assimilation import auto
from twinengine.twin_assimilation.models import AssimilationSchedule
from twinengine.twin_assimilation.service import Engines
from twinengine.twins.schemas import PropertyWrite

START = datetime(2026, 3, 1, tzinfo=UTC)


def _tank(root: Path, run: dict[str, Any] | None) -> Path:
    """A tank whose level is observed directly (no operator code); the model keeps the level as it is."""
    assimilation: dict[str, Any] = {
        "state": ["h"], "spread": 1.0, "step": {"entrypoint": "tank.model:step", "dt": "1h"},
        "observations": {"level": {"observes": "h", "error": 0.1}}, "members": 10}
    if run is not None:
        assimilation["run"] = run
    return make_app(root, name="tank", manifest={
        "state": {"h": {"type": "number", "unit": "m", "uncertainty": ["std"]}},
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}},
        "assimilation": assimilation},
        files={"tank/model.py": """
            def step(state, parameters, forcing, dt):
                return dict(state)
        """})


def _records(first: int, count: int) -> list[dict[str, Any]]:
    return [{"time": (START + timedelta(hours=k)).isoformat(), "level": 2.0 + 0.01 * k}
            for k in range(first, first + count)]


def _wait_for(what: Any, timeout: float = 60.0) -> Any:
    """Poll ``what`` until it returns something true (the loop runs on its own thread); None after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.1)
    return None


def _tank_twin(client: Client, name: str = "tank") -> None:
    client.create_twin("tank", name, {"station": "T1"})
    client.write_state(name, reported={"h": PropertyWrite(value=0.0, timestamp=START)})


def test_records_sent_to_the_stream_become_analyses_with_no_further_call(engine: Engine, tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(_tank(tmp_path, {"on": "arrival"}))
    uma = engine.as_role("uma", "user")
    _tank_twin(uma)
    uma.streams.append("tank", "readings", _records(1, 5))
    page = _wait_for(lambda: (p := uma.assimilation.list("tank")).total >= 5 and p)
    assert page is not None, "no cycles ran after the records arrived"
    assert sorted(c.number for c in page.items) == [1, 2, 3, 4, 5]
    # a second batch: one more pass, its cycles follow on
    uma.streams.append("tank", "readings", _records(6, 3))
    page = _wait_for(lambda: (p := uma.assimilation.list("tank")).total >= 8 and p)
    assert page is not None and page.items[0].number == 8
    state = uma.get_state("tank").reported["h"]
    assert state.revision == page.items[0].revision and state.value == pytest.approx(2.08, abs=0.05)

    def released() -> AssimilationSchedule | None:
        """The pass commits each cycle as it goes and lets go of its claim after the last one, in a commit of
        its own: the eighth analysis can be read before the claim is released."""
        with engine.runtime.db.session(readonly=True) as session:
            row = session.scalar(select(AssimilationSchedule))
            if row is not None and row.claimed_by is None and row.seen_end == 8:
                session.expunge(row)
                return row
            return None

    row = _wait_for(released)
    assert row is not None, "the pass that ran the eighth cycle never released its claim"
    assert row.run_on == "arrival" and row.owner == "uma" and row.failures == 0
    with engine.runtime.db.session(readonly=True) as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "assimilation-auto")))
    assert {e.outcome for e in events} == {"success"} and sum(e.detail["cycles"] for e in events) == 8


def test_an_app_without_run_and_a_fork_get_no_schedule(engine: Engine, tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(_tank(tmp_path, None))
    uma = engine.as_role("uma", "user")
    _tank_twin(uma)
    uma.streams.append("tank", "readings", _records(1, 2))
    with engine.runtime.db.session(readonly=True) as session:
        assert session.scalar(select(AssimilationSchedule)) is None
    assert uma.assimilation.list("tank").total == 0  # on request only
    assert uma.assimilation.run("tank", cycles=10).pending == 0


def test_a_failing_pass_is_said_on_the_schedule_and_in_the_audit_log(engine: Engine, tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(_tank(tmp_path, {"on": "arrival"}))
    uma = engine.as_role("uma", "user")
    uma.create_twin("tank", "tank", {"station": "T1"})  # no reported level: the first ensemble cannot start
    uma.streams.append("tank", "readings", _records(1, 2))

    def failed() -> AssimilationSchedule | None:
        with engine.runtime.db.session(readonly=True) as session:
            row = session.scalar(select(AssimilationSchedule))
            if row is not None and row.failures:
                session.expunge(row)
                return row
            return None

    row = _wait_for(failed)
    assert row is not None and row.last_error is not None and "state.h" in row.last_error
    assert row.next_due_at is not None and row.next_due_at > row.last_error_at  # retried after a backoff
    assert uma.assimilation.list("tank").total == 0
    with engine.runtime.db.session(readonly=True) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "assimilation-auto"))
    assert event is not None and event.outcome == "failed" and event.target == "twin tank"


@pytest.fixture
def quiet(settings: Settings) -> Iterator[Engine]:
    """An engine whose elected loops do not run (no lifespan): the test drives the assimilation loops."""
    runtime = Runtime.from_settings(settings)
    runtime.start()
    app = create_app(runtime=runtime)
    try:
        yield Engine(runtime=runtime, app=app, http=TestClient(app), admin_token="")
    finally:
        runtime.close()


def _loop(engine: Engine, worker: str) -> AssimilationLoop:
    runtime = engine.runtime
    return AssimilationLoop(runtime.db, lambda: runtime.streams,
                            lambda: Engines(hub=runtime.streams, code=runtime.app_code), worker=worker)


def test_two_loops_racing_over_the_same_records_run_each_cycle_once(quiet: Engine, tmp_path: Path) -> None:
    quiet.as_role("ada", "developer").publish_app(_tank(tmp_path, {"on": "arrival"}))
    uma = quiet.as_role("uma", "user")
    _tank_twin(uma)
    uma.streams.append("tank", "readings", _records(1, 6))
    loops = [_loop(quiet, "engine-a"), _loop(quiet, "engine-b")]
    barrier = threading.Barrier(len(loops))
    ran: list[int] = []

    def race(loop: AssimilationLoop) -> None:
        barrier.wait()
        ran.append(loop.run_once())

    threads = [threading.Thread(target=race, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    passes = [p for loop in loops for p in loop.passes]
    assert sum(ran) == 6 and all(p.error is None for p in passes)
    assert sorted(c.number for c in uma.assimilation.list("tank").items) == [1, 2, 3, 4, 5, 6]
    # the loop that lost the race looks again once there is news, and finds the cycles done
    assert sum(loop.run_once() for loop in loops) == 0
    uma.streams.append("tank", "readings", _records(7, 2))
    assert sum(loop.run_once() for loop in loops) == 2
    assert uma.assimilation.list("tank").total == 8


def test_a_claim_held_by_another_engine_keeps_this_one_out(quiet: Engine, tmp_path: Path) -> None:
    quiet.as_role("ada", "developer").publish_app(_tank(tmp_path, {"on": "arrival"}))
    uma = quiet.as_role("uma", "user")
    _tank_twin(uma)
    uma.streams.append("tank", "readings", _records(1, 3))
    runtime = quiet.runtime
    with runtime.db.session() as session:
        twin_id = session.scalars(select(AssimilationSchedule.twin_id)).one()
        assert auto._claim(session, twin_id, "engine-a", utcnow(), due=True)
    loop = _loop(quiet, "engine-b")
    assert loop.run_once() == 0 and loop.passes == [] and twin_id in loop._waiting
    with runtime.db.session() as session:  # engine-a died: its lease ran out
        row = session.get(AssimilationSchedule, twin_id)
        assert row is not None
        row.claimed_until = utcnow() - timedelta(seconds=1)
    assert loop.run_once() == 3


def test_a_schedule_runs_the_pending_cycles_on_its_tick(quiet: Engine, tmp_path: Path) -> None:
    quiet.as_role("ada", "developer").publish_app(_tank(tmp_path, {"on": "schedule", "every": "1h"}))
    uma = quiet.as_role("uma", "user")
    _tank_twin(uma)
    uma.streams.append("tank", "readings", _records(1, 4))
    loop = _loop(quiet, "engine-a")
    assert loop.run_once() == 4  # due at once on creation
    uma.streams.append("tank", "readings", _records(5, 2))
    assert loop.run_once() == 0  # an arrival does not run a schedule: its next tick is an hour away
    with quiet.runtime.db.session() as session:
        row = session.scalars(select(AssimilationSchedule)).one()
        assert row.run_on == "schedule" and row.next_due_at is not None
        assert row.last_run_at is not None and row.next_due_at - row.last_run_at == timedelta(hours=1)
        row.next_due_at = utcnow()
    assert loop.run_once() == 2


def test_a_schedule_needs_its_interval(engine: Engine, tmp_path: Path) -> None:
    from twinengine.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="every"):
        engine.as_role("ada", "developer").publish_app(_tank(tmp_path, {"on": "schedule"}))


def test_a_user_sets_the_twin_s_own_schedule(quiet: Engine, tmp_path: Path) -> None:
    """An app without ``run``: its user turns arrival on for one twin, then off; bad input names the field."""
    from twinengine.errors import NotFound, PermissionDenied, ValidationFailed

    quiet.as_role("ada", "developer").publish_app(_tank(tmp_path, None))
    uma = quiet.as_role("uma", "user")
    _tank_twin(uma)
    with pytest.raises(NotFound, match="on request only"):
        uma.assimilation.schedule("tank")
    with pytest.raises(ValidationFailed, match="every"):
        uma.assimilation.set_schedule("tank", "schedule")
    with pytest.raises(ValidationFailed, match="every"):
        uma.assimilation.set_schedule("tank", "arrival", every="soon")
    got = uma.assimilation.set_schedule("tank", "arrival")
    assert got.on == "arrival" and got.source == "twin" and got.owner == "uma" and not got.running
    uma.streams.append("tank", "readings", _records(1, 3))
    loop = _loop(quiet, "engine-a")
    assert loop.run_once() == 3
    shown = uma.assimilation.schedule("tank")
    assert shown.last_cycles == 3 and shown.failures == 0 and shown.seen_end == 3
    assert uma.assimilation.set_schedule("tank", "off").on == "off"
    uma.streams.append("tank", "readings", _records(4, 2))
    assert loop.run_once() == 0
    other = quiet.as_role("eve", "user")
    with pytest.raises((NotFound, PermissionDenied)):
        other.assimilation.set_schedule("tank", "arrival")
    assert uma.assimilation.schedule("tank").owner == "uma"
