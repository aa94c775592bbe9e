"""``twin db rebuild-state``: deliberately corrupted heads are restored from the log, on both stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, insert, select, update
from typer.testing import CliRunner

from helpers import RIVER_REACH
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.cli.main import app as cli_app
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.twins import service, state
from twinengine.twins.models import StateHead, StateValue, Twin
from twinengine.twins.schemas import PropertyValue, PropertyWrite, StateKind

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores

UMA = Principal(name="uma", role=Role.USER)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(settings)
    runtime.start()
    with runtime.db.session() as session:
        publish(session, runtime.blobs, principal=SYSTEM, archive=pack(RIVER_REACH), max_archive_bytes=10**8,
                max_unpacked_bytes=10**8, steps=runtime.publish_steps)
    for name in ("reach-a", "reach-b"):
        with runtime.db.session() as session:
            service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name=name,
                                parameters={"station": "RR-01"})
        for i in range(4):
            with runtime.db.session() as session:
                service.write_state(session, principal=UMA, ref=name,
                                    reported={"level": PropertyWrite(value=1.0 + i), "rain": PropertyWrite(value=0.5)},
                                    desired={"alert_threshold": PropertyWrite(value=2.0)} if i == 2 else {})
    try:
        yield runtime
    finally:
        runtime.close()


def twin_id(runtime: Runtime, name: str) -> str:
    with runtime.db.session(readonly=True) as session:
        return session.scalars(select(Twin.id).where(Twin.name == name)).one()


def corrupt(runtime: Runtime, name: str) -> None:
    """Lose one head, falsify another, and invent a third."""
    tid = twin_id(runtime, name)
    with runtime.db.session() as session:
        session.execute(delete(StateHead).where(StateHead.twin_id == tid, StateHead.property == "rain"))
        session.execute(update(StateHead).where(StateHead.twin_id == tid, StateHead.property == "level")
                        .values(value=99.0, revision=1))
        session.execute(insert(StateHead).values(twin_id=tid, property="alert", kind="reported", revision=3,
                                                 value=True, unit=None, timestamp=datetime(2020, 1, 1, tzinfo=UTC)))


def heads_match_log(runtime: Runtime, name: str) -> bool:
    """The heads equal the log's newest values, and each numeric copy (``num_value``) its head's value."""
    tid = twin_id(runtime, name)
    with runtime.db.session(readonly=True) as session:
        stored = state.heads(session, tid)
        copies = {(r.property, StateKind(r.kind)): r.num_value
                  for r in session.scalars(select(StateHead).where(StateHead.twin_id == tid))}
        from_log: state.Snapshot = {}
        for row in session.scalars(select(StateValue).where(StateValue.twin_id == tid).order_by(StateValue.revision)):
            from_log[(row.property, StateKind(row.kind))] = PropertyValue(
                value=row.value, unit=row.unit, timestamp=row.timestamp, revision=row.revision)  # newest wins
    numbers = {key: float(v.value) if type(v.value) in (int, float) else None for key, v in stored.items()}
    return stored == from_log and len(stored) == 3 and copies == numbers


def rebuild(settings: Settings, *args: str) -> tuple[int, str]:
    env = {"TWIN_DATABASE_URL": settings.database_url} if settings.database_url else {}
    result = CliRunner().invoke(cli_app, ["--json", "db", "rebuild-state", "--data-dir", str(settings.data_dir),
                                          *args], env=env)
    return result.exit_code, result.output


def test_rebuild_restores_corrupted_heads_from_the_log(settings: Settings, runtime: Runtime) -> None:
    assert heads_match_log(runtime, "reach-a") and heads_match_log(runtime, "reach-b")
    corrupt(runtime, "reach-a")
    corrupt(runtime, "reach-b")
    assert not heads_match_log(runtime, "reach-a")
    with runtime.db.session(readonly=True) as session:
        assert service.read_state(session, principal=UMA, ref="reach-a").reported["level"].value == 99.0

    code, output = rebuild(settings, "--twin", "reach-a")
    assert code == 0, output
    assert json.loads(output) == {"twins": 1, "revisions": 4, "drifted": ["reach-a"]}
    assert heads_match_log(runtime, "reach-a") and not heads_match_log(runtime, "reach-b")

    code, output = rebuild(settings)
    assert code == 0 and json.loads(output) == {"twins": 2, "revisions": 8, "drifted": ["reach-b"]}
    assert heads_match_log(runtime, "reach-a") and heads_match_log(runtime, "reach-b")
    with runtime.db.session(readonly=True) as session:
        now = service.read_state(session, principal=UMA, ref="reach-b")
    assert now.reported["level"].value == 4.0 and now.reported["rain"].value == 0.5 and "alert" not in now.reported

    code, output = rebuild(settings)
    assert code == 0 and json.loads(output)["drifted"] == []

    tid = twin_id(runtime, "reach-a")  # a numeric copy out of step with its value is drift too
    with runtime.db.session() as session:
        session.execute(update(StateHead).where(StateHead.twin_id == tid, StateHead.property == "rain")
                        .values(num_value=7.0))
    assert not heads_match_log(runtime, "reach-a")
    code, output = rebuild(settings)
    assert code == 0 and json.loads(output)["drifted"] == ["reach-a"] and heads_match_log(runtime, "reach-a")


def test_rebuild_of_an_unknown_twin_is_a_clean_error(settings: Settings, runtime: Runtime) -> None:
    code, output = rebuild(settings, "--twin", "no-such-twin")
    assert code == 1 and "no-such-twin" in output and "Traceback" not in output
