"""State writes through the store's one writer (SQLite): concurrent requests land gap-free, each with its own
revision; a write refused inside a group fails alone with the answer it has alone and leaves nothing; no
caller is answered before the group's commit (a failed commit fails them all, none of it visible, none of it
announced); and the writer's thread ends with the runtime."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from helpers import RIVER_REACH, Engine
from twinengine.auth.models import AuditEvent
from twinengine.auth.principal import Principal, Role
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.store.writer import THREAD_NAME, StoreWriter
from twinengine.twins.log_writes import REVISIONS_KEY
from twinengine.twins.models import StateHead, Twin
from twinengine.twins.schemas import PropertyWrite
from twinengine.twins.write_group import StateWriteCall, write_one, write_together

UMA = Principal(name="uma", role=Role.USER)
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a server database has no writer


@pytest.fixture
def twins(engine: Engine) -> list[str]:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    uma = engine.as_role("uma", "user")
    names = [uma.create_twin("river-reach@0.1.0", f"reach-{i}", {"station": "RR-01"}).name for i in range(3)]
    engine.as_role("eve", "user").create_twin("river-reach@0.1.0", "eves", {"station": "RR-02"})
    return names


def writer_of(engine: Engine) -> StoreWriter:
    writer = engine.runtime.db.writer
    assert writer is not None
    return writer


def held(writer: StoreWriter) -> threading.Event:
    """Keep the writer busy until the returned event is set: what is handed in meanwhile is one group."""
    started, release = threading.Event(), threading.Event()

    def hold(_session: Session) -> None:
        started.set()
        assert release.wait(30)

    writer.submit(hold)
    assert started.wait(10)
    return release


def patch(engine: Engine, token: str, twin: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = engine.http.patch(f"/api/v1/twins/{twin}/state", json=body, headers=engine.headers(token))
    return response.status_code, response.json()


@pytest.mark.every_store  # on PostgreSQL each write commits on a worker thread, as before
def test_concurrent_writes_land_gap_free_each_with_its_own_revision(engine: Engine, twins: list[str]) -> None:
    token = engine.token("uma", "user")
    calls = [(twins[i % 2], i) for i in range(120)]
    with ThreadPoolExecutor(24) as pool:  # more callers than the writer has threads (one)
        answers = list(pool.map(lambda c: patch(engine, token, c[0], {"reported": {"level": {"value": c[1]}}}),
                                calls))
    assert {status for status, _ in answers} == {200}
    for twin in twins[:2]:
        numbers = sorted(body["revision"] for (name, _), (_, body) in zip(calls, answers, strict=True)
                         if name == twin)
        assert numbers == list(range(1, 61))  # every caller its own number, none missing
    uma = engine.as_role("uma", "user")
    for (twin, value), (_, body) in zip(calls, answers, strict=True):  # each number is that caller's revision
        if value % 17 == 0:
            assert uma.get_revision(twin, body["revision"]).changes[0].value == value
    with engine.runtime.db.session(readonly=True) as session:
        actions = Counter(session.scalars(select(AuditEvent.action).where(AuditEvent.actor == "uma")))
    assert actions["twins-state_write"] == 120  # each write's audit row, in its transaction


@sqlite_only
def test_a_refused_write_fails_alone_with_its_own_answer_and_leaves_nothing(engine: Engine,
                                                                            twins: list[str]) -> None:
    token = engine.token("uma", "user")
    reach_0 = engine.as_role("uma", "user").get_twin("reach-0").id
    requests = [(reach_0, {"reported": {"level": {"value": 1.0}}}),  # by id; the other writes to it by name
                ("reach-1", {"reported": {"level": {"value": "high"}}}),  # 422: not a number
                ("no-such-twin", {"reported": {"level": {"value": 1.0}}}),  # 404
                ("eves", {"reported": {"level": {"value": 1.0}}}),  # not hers
                ("reach-1", {"reported": {"rain": {"value": -1.0}}, "desired": {"alert_threshold": {"value": 2}}}),
                ("reach-0", {"reported": {"level": {"value": 2.0}}, "message": "second"})]
    writer = writer_of(engine)
    release = held(writer)
    with ThreadPoolExecutor(len(requests)) as pool:
        futures = [pool.submit(patch, engine, token, twin, body) for twin, body in requests]
        while writer.waiting < len(requests):
            threading.Event().wait(0.01)
        release.set()
        grouped = [future.result(30) for future in futures]
    alone = [patch(engine, token, twin, body) for twin, body in requests[1:5]]
    assert [status for status, _ in grouped[1:5]] == [status for status, _ in alone] == [422, 404, 403, 422]
    assert [body for _, body in grouped[1:5]] == [body for _, body in alone]  # the same error, word for word
    # the two writes to reach-0 race to the writer from their threads: each gets a revision of its own
    assert [status for status, _ in (grouped[0], grouped[5])] == [200, 200]
    assert sorted(body["revision"] for _, body in (grouped[0], grouped[5])) == [1, 2]
    assert grouped[5][1]["message"] == "second"
    with engine.runtime.db.session(readonly=True) as session:
        heads = session.scalars(select(StateHead.twin_id).join(Twin, Twin.id == StateHead.twin_id)
                                .where(Twin.name.in_(["reach-1", "eves"]))).all()
        assert heads == []  # the refused writes left nothing: no value, no head
        assert session.scalar(select(Twin.head_revision).where(Twin.name == "reach-1")) == 0
        outcomes = Counter((outcome, status) for outcome, status in session.execute(
            select(AuditEvent.outcome, AuditEvent.status).where(AuditEvent.action == "twins-state_write")))
    assert outcomes[("success", 200)] == 2 and sum(outcomes.values()) == 2 + 2 * 4  # one row per request


@sqlite_only
def test_no_write_is_answered_before_its_commit_and_a_failed_commit_fails_the_group(engine: Engine,
                                                                                    twins: list[str]) -> None:
    writer = writer_of(engine)
    db = engine.runtime.db
    announced: list[str] = []
    notify = engine.runtime.notifier.notify
    engine.runtime.notifier.notify = lambda topic: (announced.append(topic), notify(topic))[1]  # type: ignore[method-assign]
    calls = [StateWriteCall(UMA, twin, {"level": PropertyWrite(value=1.0)}, {}) for twin in twins]
    done_at_commit: list[list[bool]] = []
    futures: list[Any] = []

    def fail_commit(session: Session) -> None:
        if session.in_nested_transaction() or REVISIONS_KEY not in session.info:
            return
        done_at_commit.append([f.done() for f in futures])
        raise OSError("disk full")

    release = held(writer)
    futures += [writer.submit(lambda s, c=call: write_one(s, c), together=write_together, item=call)
                for call in calls]
    event.listen(db.sessions, "before_commit", fail_commit)
    try:
        release.set()
        for future in futures:
            with pytest.raises(OSError, match="disk full"):
                future.result(30)
    finally:
        event.remove(db.sessions, "before_commit", fail_commit)
    assert done_at_commit == [[False] * len(calls)]
    with db.session(readonly=True) as session:
        assert session.scalars(select(Twin.head_revision).where(Twin.name.in_(twins))).all() == [0] * len(twins)
        assert session.scalars(select(StateHead.twin_id)).all() == []
    assert not [topic for topic in announced if topic.startswith("state:")]

    futures = [writer.submit(lambda s, c=call: write_one(s, c), together=write_together, item=call)
               for call in calls]
    assert [f.result(30).revision for f in futures] == [1, 1, 1]
    assert len([topic for topic in announced if topic.startswith("state:")]) == len(calls)  # after the commit


@sqlite_only
def test_the_writer_ends_with_the_runtime(engine: Engine, twins: list[str], settings: Settings) -> None:
    runtime = Runtime.from_settings(settings)
    try:
        writer = runtime.db.writer
        assert writer is not None
        call = StateWriteCall(UMA, twins[0], {"level": PropertyWrite(value=1.0)}, {})
        assert writer.submit(lambda s: write_one(s, call)).result(30).revision == 1
        assert [t for t in threading.enumerate() if t.name == THREAD_NAME]
    finally:
        runtime.close()
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]
