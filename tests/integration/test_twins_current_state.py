"""The current state read on a DBAPI connection (``twins.current_state``; on PostgreSQL on the event loop)
answers exactly what the unit-of-work path answers, to every caller, on SQLite and PostgreSQL, and hands back
the reads it cannot answer alone."""

from __future__ import annotations

import json
from collections import namedtuple
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text, update

from helpers import RIVER_REACH, Engine
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog import service as catalog
from twinengine.errors import PermissionDenied, TwinNotFound
from twinengine.twins import service, state
from twinengine.twins.current_state import CurrentStateReader
from twinengine.twins.models import Twin
from twinengine.twins.schemas import TwinState

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores

UMA = Principal(name="uma", role=Role.USER)


def _comparable(body: bytes | dict[str, Any]) -> dict[str, Any]:
    """The answer without ``stale_as_of`` (each read says when it looked)."""
    answer = json.loads(body) if isinstance(body, bytes) else body
    answer.pop("stale_as_of", None)
    return answer


@pytest.fixture
def twins(engine: Engine) -> dict[str, str]:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    uma = engine.as_role("uma", "user")
    engine.token("bob", "user")  # the identity a grant names
    made = {name: uma.create_twin("river-reach@0.1.0", name, {"station": "RR-01"}).id for name in ("reach", "empty")}
    uma.grant("reach", "bob", "read")
    headers = engine.headers(engine.token("uma", "user"))
    for hour in range(3):
        written = engine.http.patch("/api/v1/twins/reach/state", headers=headers, json={
            "reported": {"level": {"value": 1.5 + hour, "timestamp": f"2026-03-01T0{hour}:00:00Z"},
                         "forecast_peak_level": {"value": 2.0 + hour, "uncertainty": {"std": 0.1 * (hour + 1)}},
                         "alert": {"value": hour == 2}},
            "desired": {"alert_threshold": {"value": 3.0}}})
        assert written.status_code == 200, written.text
    written = engine.http.patch("/api/v1/twins/reach/state", headers=headers,
                                json={"reported": {"discharge": {"value": 12.5, "unit": "m3 s-1"}}})
    assert written.status_code == 200, written.text
    return made


def read_in_session(engine: Engine, principal: Principal, ref: str) -> TwinState:
    """The same read through a unit of work, as every other state read is answered."""
    with engine.runtime.db.session(readonly=True) as session:
        return service.read_state(session, principal=principal, ref=ref)


def _read(engine: Engine, principal: Principal, ref: str) -> bytes | None:
    reader: CurrentStateReader = engine.app.state.current_state
    return engine.http.portal.call(reader.read, principal, ref)  # type: ignore[union-attr]


def test_the_reader_answers_what_the_unit_of_work_answers(engine: Engine, twins: dict[str, str]) -> None:
    bob = Principal(name="bob", role=Role.USER)
    for principal, ref in [(UMA, "reach"), (UMA, twins["reach"]), (SYSTEM, "reach"), (bob, "reach"),
                           (UMA, "empty"), (UMA, twins["empty"])]:
        body = _read(engine, principal, ref)
        assert body is not None, (principal.name, ref)
        expected = read_in_session(engine, principal, ref).model_dump(mode="json", by_alias=True)
        assert _comparable(body) == _comparable(expected), (principal.name, ref)
    answer = _comparable(_read(engine, UMA, "reach") or b"")
    assert answer["revision"] == 4 and answer["reported"]["level"]["value"] == 3.5
    assert answer["reported"]["forecast_peak_level"]["uncertainty"]["std"] == pytest.approx(0.3)
    assert answer["delta"] == {"alert_threshold": 3.0}  # desired, not reported
    assert answer["stale"] == ["level"]  # a gap check on level: its last value is from March

    # and over HTTP, as the route answers it
    over_http = engine.http.get("/api/v1/twins/reach/state", headers=engine.headers(engine.token("uma", "user")))
    assert over_http.status_code == 200 and _comparable(over_http.content) == answer


def test_a_second_reader_on_a_store_of_its_own_shares_the_compiled_statements(engine: Engine,
                                                                              twins: dict[str, str]) -> None:
    """Compiled once per process and kind of store: another engine's reader (a new Database, as each engine
    opened in this process has) answers the same from the same statements."""
    from twinengine.store.engine import Database

    first: CurrentStateReader = engine.app.state.current_state
    other_db = Database(engine.runtime.settings.db_url)
    try:
        second = CurrentStateReader(other_db)
        assert second._by_id is first._by_id and second._by_name is first._by_name
        for ref in ("reach", twins["reach"]):
            assert _comparable(engine.http.portal.call(second.read, UMA, ref) or b"") \
                == _comparable(_read(engine, UMA, ref) or b"")
        engine.http.portal.call(second.close)  # type: ignore[union-attr]
    finally:
        other_db.dispose()


def test_the_reader_refuses_whom_the_unit_of_work_refuses(engine: Engine, twins: dict[str, str]) -> None:
    eve = Principal(name="eve", role=Role.USER)
    for ref in ("reach", twins["reach"]):
        with pytest.raises(PermissionDenied):
            read_in_session(engine, eve, ref)
        with pytest.raises(PermissionDenied):
            _read(engine, eve, ref)
    for ref in ("nowhere", "tw-000000000000"):
        with pytest.raises(TwinNotFound):
            _read(engine, UMA, ref)
    token = engine.token("eve", "user")
    assert engine.http.get("/api/v1/twins/reach/state", headers=engine.headers(token)).status_code == 403
    assert engine.http.get("/api/v1/twins/nowhere/state", headers=engine.headers(token)).status_code == 404


def test_what_the_reader_hands_back_the_unit_of_work_answers(engine: Engine, twins: dict[str, str]) -> None:
    token = engine.token("uma", "user")
    expected = _comparable(_read(engine, UMA, "reach") or b"")
    catalog._MANIFESTS.clear()  # a manifest not in the cache: read with the twin's app version
    assert _read(engine, UMA, "reach") is None
    answer = engine.http.get("/api/v1/twins/reach/state", headers=engine.headers(token))
    assert answer.status_code == 200 and _comparable(answer.content) == expected
    assert _read(engine, UMA, "reach") is not None  # the unit of work filled the cache

    # A head newer than the twin's head revision (a write committed between the two reads of the statement):
    # its value at the head revision takes a second statement, so the reader hands the read back.
    with engine.runtime.db.session() as session:
        session.execute(update(Twin).where(Twin.name == "reach").values(head_revision=2))
    assert _read(engine, UMA, "reach") is None
    answer = engine.http.get("/api/v1/twins/reach/state", headers=engine.headers(token))
    assert answer.status_code == 200
    assert answer.json()["revision"] == 2 and answer.json()["reported"]["level"]["value"] == 2.5


def test_heads_answer_alone_unless_one_is_newer_and_has_an_older_value() -> None:
    head = namedtuple("head", "property kind revision value unit timestamp pick")
    now = datetime.now(UTC)
    at_2 = head("level", "reported", 2, 2.5, "m", now, None)
    newer = head("alert", "reported", 3, True, None, now, None)  # first written after revision 2
    assert set(state.heads_snapshot([at_2, newer], 2) or {}) == {("level", state.StateKind.REPORTED)}
    older_value = head("alert", "reported", 3, True, None, now, 17)  # revision 1 has a value: read it
    assert state.heads_snapshot([at_2, older_value], 2) is None
    assert state.heads_snapshot([head(None, None, None, None, None, None, None)], 0) == {}  # no heads


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_read_on_a_broken_connection_is_answered_and_the_pool_recovers(engine: Engine,
                                                                           twins: dict[str, str]) -> None:
    """The server ends the reader's connections (a restart, an idle limit): the read in flight is answered
    by the unit of work, and the pool replaces the connection for the next ones."""
    token = engine.token("uma", "user")
    expected = _comparable(_read(engine, UMA, "reach") or b"")
    with engine.runtime.db.session() as session:
        ended = session.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # this test's only
                                     "WHERE datname = current_database() "
                                     "AND application_name = 'twinengine-current-state'")).all()
    assert ended, "the reader's pool had no connection to end"
    for _ in range(3):
        answer = engine.http.get("/api/v1/twins/reach/state", headers=engine.headers(token))
        assert answer.status_code == 200 and _comparable(answer.content) == expected
    assert _read(engine, UMA, "reach") is not None
