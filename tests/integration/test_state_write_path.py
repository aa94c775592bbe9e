"""How a state write reaches the store (SQLite and PostgreSQL): values come back exactly as written through
the log, the heads and their numeric copies, and on PostgreSQL a write costs a fixed, small number of
statements (a single write: the twin's row with its app version's checksum, then one statement for the
counter, the revision, its values and the heads; a batch: the same few statements for any number of twins)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select

from helpers import RIVER_REACH, Engine, statements
from twinengine.auth.principal import Principal, Role
from twinengine.errors import TwinNotFound
from twinengine.twins import batch, service
from twinengine.twins.batch_schemas import StateBatchItem
from twinengine.twins.models import StateHead
from twinengine.twins.schemas import PropertyWrite

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores

UMA = Principal(name="uma", role=Role.USER)
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture
def twins(engine: Engine) -> list[str]:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    with engine.runtime.db.session() as session:
        return [service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name=f"reach-{i:02d}",
                                    parameters={"station": "RR-01"}).id for i in range(30)]


def write(engine: Engine, ref: str, **reported: PropertyWrite) -> None:
    with engine.runtime.db.session() as session:
        service.write_state(session, principal=UMA, ref=ref, reported=reported, desired={})


def test_values_come_back_exactly_as_written(engine: Engine, twins: list[str]) -> None:
    written = {"level": PropertyWrite(value=0.1 + 0.2, timestamp=T0), "rain": PropertyWrite(value=2**53 + 1),
               "alert": PropertyWrite(value=True, timestamp=T0 + timedelta(microseconds=1)),
               "forecast_peak_level": PropertyWrite(value=1.25, unit="cm", uncertainty={"std": 5.0}),
               "discharge": PropertyWrite(value=12)}
    write(engine, "reach-00", **written)
    uma = engine.as_role("uma", "user")
    changes = uma.get_revision("reach-00", 1).changes
    assert [c.property for c in changes] == list(written)  # in the order written
    by_name = {c.property: c for c in changes}
    assert by_name["level"].value == 0.1 + 0.2 and by_name["level"].timestamp == T0
    assert by_name["rain"].value == 2**53 + 1 and isinstance(by_name["rain"].value, int)
    assert by_name["alert"].value is True and by_name["alert"].timestamp == T0 + timedelta(microseconds=1)
    peak = by_name["forecast_peak_level"]
    assert peak.value == pytest.approx(0.0125) and peak.uncertainty is not None
    assert peak.uncertainty.std == pytest.approx(0.05)
    state = uma.get_state("reach-00")
    assert {p: v.value for p, v in state.reported.items()} == {c.property: c.value for c in changes}
    with engine.runtime.db.session(readonly=True) as session:
        numbers = {row.property: row.num_value for row in session.execute(
            select(StateHead.property, StateHead.num_value).where(StateHead.twin_id == twins[0]))}
    assert numbers == {"level": 0.1 + 0.2, "rain": float(2**53 + 1), "alert": None,
                       "forecast_peak_level": pytest.approx(0.0125), "discharge": 12.0}


def test_a_single_write_on_postgresql_is_two_statements(engine: Engine, twins: list[str], backend: str) -> None:
    # properties without checks (level's gap check reads the property's latest timestamp: one more seek)
    write(engine, "reach-01", discharge=PropertyWrite(value=1.0))  # the manifest is parsed and cached
    with statements(engine) as seen:
        write(engine, "reach-01", discharge=PropertyWrite(value=2.0), rain=PropertyWrite(value=0.5))
    writes = [s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "SELECT"))]
    if backend == "postgresql":
        assert len(seen) == 2, seen  # the twin (with its app's checksum), then everything written
    else:
        assert len(writes) == 4  # SQLite, in process: counter, revision, values, heads
    assert not any("FROM app_versions" in s and "twins" not in s for s in seen)
    uma = engine.as_role("uma", "user")
    assert uma.get_state("reach-01").revision == 2 and uma.get_state("reach-01").reported["rain"].value == 0.5


def batch_statements(engine: Engine, refs: list[str]) -> list[str]:
    items = [StateBatchItem(twin=ref, reported={"discharge": PropertyWrite(value=float(i))})
             for i in range(3) for ref in refs]
    with statements(engine) as seen, engine.runtime.db.session() as session:
        batch.write_batch(session, principal=UMA, items=items, max_items=1000)
    return seen


def test_a_batch_costs_the_same_statements_for_any_number_of_twins(engine: Engine, twins: list[str],
                                                                   backend: str) -> None:
    batch_statements(engine, twins[:2])
    few, many = batch_statements(engine, twins[:3]), batch_statements(engine, twins)
    uma = engine.as_role("uma", "user")
    assert [uma.get_twin(t).head_revision for t in twins[:3]] == [9, 9, 6]  # gap-free, three per batch
    assert uma.get_state(twins[29]).reported["discharge"].value == 2.0
    if backend == "postgresql":
        assert len(few) == len(many) <= 6, many


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("how", ["one write", "a batch"])
def test_a_write_to_a_twin_deleted_meanwhile_is_not_found(engine: Engine, twins: list[str], how: str) -> None:
    """A write on PostgreSQL reads its twin without locking it, so another request may delete the twin before
    the write moves its revision counter. That was a 500 (no row where one was required); it is a 404 and
    nothing is written. (SQLite takes its write lock before the read: there the twin cannot go meanwhile.)"""
    refs = ["reach-00"] if how == "one write" else ["reach-01", "reach-02"]
    db = engine.runtime.db
    deleted: list[str] = []

    def delete_first(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if not deleted and ("UPDATE twins" in statement or "FOR UPDATE" in statement):
            deleted.append(statement)
            other = threading.Thread(target=delete)  # another request's (a thread's: never nested in this one)
            other.start()
            other.join(60)

    def delete() -> None:
        with db.session() as other:
            service.delete_twin(other, principal=UMA, ref=refs[-1])

    def write() -> None:
        with db.session() as session:
            if how == "one write":
                service.write_state(session, principal=UMA, ref=refs[0], desired={},
                                    reported={"discharge": PropertyWrite(value=1.0)})
            else:
                items = [StateBatchItem(twin=ref, reported={"discharge": PropertyWrite(value=1.0)}) for ref in refs]
                batch.write_batch(session, principal=UMA, items=items, max_items=1000)

    event.listen(db.engine, "before_cursor_execute", delete_first)
    try:
        with pytest.raises(TwinNotFound, match="was deleted while this request wrote to it"):
            write()
    finally:
        event.remove(db.engine, "before_cursor_execute", delete_first)
    assert deleted
    with db.session(readonly=True) as session:
        assert session.scalars(select(StateHead.twin_id).where(StateHead.twin_id.in_(twins[:3]))).all() == []
