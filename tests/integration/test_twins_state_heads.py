"""The derived state (heads, and reads "as of" through them) against a brute-force recomputation from the log.

Random sequences of writes (several properties, reported and desired, valid times that tie and arrive out
of order) and forks run through the real service on both stores; after each sequence every read the engine
answers must equal what the log alone says. Also: migration 0008 backfills the heads of an existing log.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from helpers import RIVER_REACH
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.errors import PermissionDenied
from twinengine.runtime import Runtime
from twinengine.store import migrate
from twinengine.twins import service, state
from twinengine.twins.models import StateHead, StateValue, Twin
from twinengine.twins.schemas import PropertyValue, PropertyWrite, StateKind

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores

T0 = datetime(2026, 5, 1, tzinfo=UTC)
UMA = Principal(name="uma", role=Role.USER)
PROPERTIES = ("discharge", "rain", "storage")  # none with checks: reads add nothing the log lacks
Key = tuple[str, StateKind]
Snapshot = dict[Key, PropertyValue]


def start(settings: Settings) -> Runtime:
    runtime = Runtime.from_settings(settings)
    runtime.start()
    return runtime


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = start(settings)
    with runtime.db.session() as session:
        publish(session, runtime.blobs, principal=SYSTEM, archive=pack(RIVER_REACH), max_archive_bytes=10**8,
                max_unpacked_bytes=10**8, steps=runtime.publish_steps)
    try:
        yield runtime
    finally:
        runtime.close()


# -- the brute force: everything recomputed from the log's rows alone -------------------------------------

@dataclass(frozen=True)
class Logged:
    key: Key
    value: PropertyValue


def read_log(session: Session, twin_id: str) -> list[Logged]:
    rows = session.execute(select(StateValue).where(StateValue.twin_id == twin_id)).scalars()
    return [Logged((r.property, StateKind(r.kind)),
                   PropertyValue(value=r.value, unit=r.unit, timestamp=r.timestamp, revision=r.revision))
            for r in rows]


def log_at_revision(log: list[Logged], revision: int) -> Snapshot:
    found: Snapshot = {}
    for entry in log:
        if entry.value.revision <= revision and (entry.key not in found
                                                 or entry.value.revision > found[entry.key].revision):
            found[entry.key] = entry.value
    return found


def log_at_time(log: list[Logged], at: datetime) -> Snapshot:
    found: Snapshot = {}
    for entry in log:
        best = found.get(entry.key)
        if entry.value.timestamp <= at and (
                best is None or (entry.value.timestamp, entry.value.revision) > (best.timestamp, best.revision)):
            found[entry.key] = entry.value
    return found


def log_diff(before: Snapshot, after: Snapshot) -> list[tuple[str, StateKind, str]]:
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None or new is None:
            changes.append((*key, "added" if old is None else "removed"))
        elif (old.value, old.unit, old.timestamp) != (new.value, new.unit, new.timestamp):
            changes.append((*key, "changed"))
    return changes


def split(snapshot: Snapshot) -> tuple[dict[str, PropertyValue], dict[str, PropertyValue]]:
    return ({p: v for (p, k), v in snapshot.items() if k is StateKind.REPORTED},
            {p: v for (p, k), v in snapshot.items() if k is StateKind.DESIRED})


def stored_heads(session: Session, twin_id: str) -> Snapshot:
    """The heads as stored; each one's numeric copy (``num_value``) must be its value if that is a number."""
    rows = list(session.execute(select(StateHead).where(StateHead.twin_id == twin_id)).scalars())
    for r in rows:
        assert r.num_value == (float(r.value) if type(r.value) in (int, float) else None), (r.property, r.value)
    return {(r.property, StateKind(r.kind)): PropertyValue(value=r.value, unit=r.unit, timestamp=r.timestamp,
                                                           revision=r.revision) for r in rows}


def assert_reads_match_log(runtime: Runtime, name: str) -> int:
    """Every read the engine answers for twin ``name`` equals the log's; returns the number of revisions."""
    with runtime.db.session(readonly=True) as session:
        twin = session.scalars(select(Twin).where(Twin.name == name)).one()
        log = read_log(session, twin.id)
        head = twin.head_revision
        assert stored_heads(session, twin.id) == log_at_revision(log, head)
        now = service.read_state(session, principal=UMA, ref=name)
        assert now.revision == head and (now.reported, now.desired) == split(log_at_revision(log, head))
        by_id = service.read_state(session, principal=UMA, ref=twin.id)
        assert (by_id.revision, by_id.reported, by_id.desired) == (now.revision, now.reported, now.desired)
        for revision in range(head + 1):
            got = service.read_state(session, principal=UMA, ref=name, revision=revision)
            assert (got.reported, got.desired) == split(log_at_revision(log, revision)), f"revision {revision}"
        stamps = {entry.value.timestamp for entry in log}
        for at in sorted(stamps | {s + timedelta(minutes=30) for s in stamps} | {T0 - timedelta(hours=1)}):
            got = service.read_state(session, principal=UMA, ref=name, at=at)
            assert (got.reported, got.desired) == split(log_at_time(log, at)), f"at {at}"
        pairs = {(a, b) for a in range(head + 1) for b in {0, min(a + 1, head), head}}
        for a, b in sorted(pairs | {(b, a) for a, b in pairs}):
            got_diff = service.diff_state(session, principal=UMA, ref=name, from_revision=a, to_revision=b)
            assert [(c.property, c.kind, c.change) for c in got_diff.changes] == log_diff(
                log_at_revision(log, a), log_at_revision(log, b)), f"diff {a}..{b}"
    return head


# -- random histories ---------------------------------------------------------------------------------------

values = st.sampled_from([0.0, 1.0, 2.5])  # few values, so equal values recur across revisions
hours = st.integers(min_value=0, max_value=5)  # few valid times: ties and late arrivals
write = st.dictionaries(st.tuples(st.sampled_from(PROPERTIES), st.sampled_from(list(StateKind))),
                        st.tuples(values, hours), min_size=1, max_size=4)
step = st.one_of(st.tuples(st.just("write"), st.integers(0, 3), write),
                 st.tuples(st.just("fork"), st.integers(0, 3), st.floats(0, 1)))
_names = itertools.count()


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=14))
def test_every_read_equals_a_recomputation_from_the_log(runtime: Runtime, steps: list[tuple[Any, ...]]) -> None:
    twins = [f"h{next(_names)}"]
    with runtime.db.session() as session:
        service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name=twins[0],
                            parameters={"station": "RR-01"})
    for what, which, arg in steps:
        name = twins[which % len(twins)]
        with runtime.db.session() as session:
            if what == "write":
                writes: dict[StateKind, dict[str, PropertyWrite]] = {kind: {} for kind in StateKind}
                for (prop, kind), (value, hour) in arg.items():
                    writes[kind][prop] = PropertyWrite(value=value, timestamp=T0 + timedelta(hours=hour))
                service.write_state(session, principal=UMA, ref=name, reported=writes[StateKind.REPORTED],
                                    desired=writes[StateKind.DESIRED])
            else:
                origin = service.get_twin(session, principal=UMA, ref=name)
                fork = f"h{next(_names)}"
                service.fork_twin(session, principal=UMA, ref=name, name=fork,
                                  at_revision=round(arg * origin.head_revision), parameters=None)
                twins.append(fork)
    for name in twins:
        assert_reads_match_log(runtime, name)


def test_a_fork_starts_from_the_origins_state_and_diverges_alone(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="origin",
                            parameters={"station": "RR-01"})
    for discharge in (1.0, 2.0, 3.0):
        with runtime.db.session() as session:
            service.write_state(session, principal=UMA, ref="origin",
                                reported={"discharge": PropertyWrite(value=discharge)}, desired={})
    with runtime.db.session() as session:
        service.fork_twin(session, principal=UMA, ref="origin", name="what-if", at_revision=2, parameters=None)
        service.write_state(session, principal=UMA, ref="what-if", reported={"rain": PropertyWrite(value=4.0)},
                            desired={})
    with runtime.db.session(readonly=True) as session:
        fork = service.read_state(session, principal=UMA, ref="what-if")
        origin = service.read_state(session, principal=UMA, ref="origin")
    assert fork.revision == 2 and fork.reported["discharge"].value == 2.0 and fork.reported["rain"].value == 4.0
    assert origin.revision == 3 and origin.reported["discharge"].value == 3.0 and "rain" not in origin.reported
    assert assert_reads_match_log(runtime, "what-if") == 2


@pytest.mark.slow
def test_the_migration_backfills_heads_from_an_existing_log(settings: Settings, runtime: Runtime) -> None:
    for name in ("old-a", "old-b"):
        with runtime.db.session() as session:
            service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name=name,
                                parameters={"station": "RR-01"})
        for i in range(5):
            with runtime.db.session() as session:
                service.write_state(session, principal=UMA, ref=name,
                                    reported={PROPERTIES[i % 3]: PropertyWrite(value=float(i))},
                                    desired={"discharge": PropertyWrite(value=float(i))} if i % 2 else {})
    runtime.db.dispose()  # no pooled connection in the way of the schema change
    command.downgrade(migrate.alembic_config(settings.db_url), "0007")  # the store as it was before the heads
    again = start(settings)  # migrates to head on start: the backfill runs here
    try:
        with again.db.session(readonly=True) as session:
            assert migrate.current_revision(again.db) == migrate.head_revision(again.db)
            for name in ("old-a", "old-b"):
                twin = session.scalars(select(Twin).where(Twin.name == name)).one()
                heads = stored_heads(session, twin.id)
                assert len(heads) == 4 and heads == log_at_revision(read_log(session, twin.id), 5)
        for name in ("old-a", "old-b"):
            assert assert_reads_match_log(again, name) == 5
    finally:
        again.close()


def test_heads_of_a_deleted_twin_go_with_it(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        twin = service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="gone",
                                   parameters={"station": "RR-01"})
        service.write_state(session, principal=UMA, ref="gone", reported={"discharge": PropertyWrite(value=1.0)},
                            desired={})
        twin_id = twin.id
    with runtime.db.session() as session:
        assert len(state.heads(session, twin_id)) == 1
        service.delete_twin(session, principal=UMA, ref="gone")
    with runtime.db.session(readonly=True) as session:
        assert state.heads(session, twin_id) == {}


def test_the_current_state_is_read_with_its_twin_in_one_statement(runtime: Runtime) -> None:
    """One round trip whatever the number of properties; the heads belong to the head revision read beside
    them. A twin without values reads empty, and a stranger learns nothing from it."""
    with runtime.db.session() as session:
        quiet = service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="quiet",
                                    parameters={"station": "RR-01"})
        service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="busy",
                            parameters={"station": "RR-01"})
        for value in (1.0, 2.0):
            service.write_state(session, principal=UMA, ref="busy", desired={"alert_threshold": PropertyWrite(
                value=value)}, reported={p: PropertyWrite(value=value) for p in PROPERTIES})
    seen: list[str] = []
    me = threading.get_ident()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.get_ident() == me and not statement.lstrip().upper().startswith("BEGIN"):
            seen.append(statement)

    with runtime.db.session(readonly=True) as session:
        service.read_state(session, principal=UMA, ref="busy")  # the manifest is parsed and cached
        event.listen(runtime.db.engine, "before_cursor_execute", count)
        try:
            busy = service.read_state(session, principal=UMA, ref="busy")
            empty = service.read_state(session, principal=UMA, ref=quiet.id)
        finally:
            event.remove(runtime.db.engine, "before_cursor_execute", count)
        with pytest.raises(PermissionDenied):
            service.read_state(session, principal=Principal(name="eve", role=Role.USER), ref="busy")
    assert len(seen) == 2, seen  # one each
    assert busy.revision == 2 and {p: v.value for p, v in busy.reported.items()} == dict.fromkeys(PROPERTIES, 2.0)
    assert busy.desired["alert_threshold"].value == 2.0
    assert (empty.revision, empty.reported, empty.desired) == (0, {}, {})


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_state_reads_are_planned_once_on_postgresql(runtime: Runtime) -> None:
    """psycopg prepares a statement after its fifth run; PostgreSQL then keeps one generic plan for it only
    when that plan costs what the plans made with the values do. A LIMIT left as a bound value made every
    read "as of" a revision or a time cost more as a generic plan, so each run was planned anew."""
    revisions = 1500  # a few hundred were not enough for the bad plans
    with runtime.db.session() as session:
        twin = service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="busy",
                                   parameters={"station": "RR-01"})
        for i in range(revisions):
            state.append_revision(session, twin, [state.NewValue(PROPERTIES[i % 3], StateKind.REPORTED, float(i),
                                                                 None, T0 + timedelta(minutes=i))],
                                  author="uma", message=None)
    with runtime.db.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")  # the statistics autovacuum keeps (the bad plans came with them)
        session = Session(bind=connection)
        for i in range(12):  # each read with other values, as readers send them
            service.read_state(session, principal=UMA, ref="busy")
            service.read_state(session, principal=UMA, ref="busy", revision=1 + i * 97)
            service.read_state(session, principal=UMA, ref="busy", at=T0 + timedelta(minutes=i * 97, seconds=30))
            service.diff_state(session, principal=UMA, ref="busy", from_revision=i * 50, to_revision=revisions - i)
        plans = connection.exec_driver_sql(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE position('state_heads' in statement) > 0").all()
        session.close()
    assert len(plans) >= 3, plans  # current, as of a revision, as of a time (the diff reads as of revisions)
    for statement, generic, custom in plans:
        assert generic > 0 and custom <= 5, (generic, custom, statement[:300])
