"""Parameter conditions and groups served by the parameter index answer what reading each twin's JSON
answers, on both stores: over a generated fleet whose parameters are integers, floats, booleans, text
(short, long, numeric-looking), null, objects, lists or missing, every condition's twins equal both a
brute-force evaluation in Python and the JSON path (``fleet_filters._compare``), and groups by a parameter
equal the JSON path's labels; migration 0015 backfills twins created before it."""

from __future__ import annotations

import operator
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text

from helpers import make_app
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.store import migrate
from twinengine.twins import fleet, service
from twinengine.twins.fleet_filters import Json, _compare, parse
from twinengine.twins.models import Twin, TwinParameter
from twinengine.twins.parameter_index import COLUMNS, rows_sql
from twinengine.twins.schemas import PropertyWrite

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores

UMA = Principal(name="uma", role=Role.USER)
LONG_NAME = "p" * 70  # longer than the index holds: read from the JSON
NAMES = ("a", "b", "flag", "s", LONG_NAME)
_OPS: dict[str, Callable[[Any, Any], bool]] = {"=": operator.eq, "!=": operator.ne, "<": operator.lt,
                                               "<=": operator.le, ">": operator.gt, ">=": operator.ge}
CONDITIONS = [f"{name}{op}{value}" for name in ("a", "b", "s", "nope", LONG_NAME)
              for op in _OPS for value in ("100", "2", "-1.5", "0", "mm", "'100'", "'abc'")]
CONDITIONS += [f"{name}{op}{value}" for name in NAMES for op in ("=", "!=") for value in ("true", "false", "'true'")]


def parameter_value(rng: random.Random) -> Any:
    """One parameter: any JSON type, numbers that look alike as int and float, text that looks like a
    number or a boolean, text longer than the index holds; ``...`` for none."""
    return rng.choice([
        lambda: rng.randint(-3, 300), lambda: round(rng.uniform(-3, 300), 2), lambda: float(rng.randint(0, 3)),
        lambda: 100, lambda: 2.0, lambda: True, lambda: False, lambda: "100", lambda: "true",
        lambda: "".join(rng.choice("abmnz") for _ in range(rng.randint(1, 3))),
        lambda: "m" * 250 + rng.choice("az"), lambda: None, lambda: {"v": 1}, lambda: [1, 2], lambda: ...,
    ])()


def expected(parameters: dict[str, Any], condition: str) -> bool:
    """The condition evaluated in Python, by the grammar's rules (``fleet_filters``'s docstring)."""
    cond = parse(condition, "parameter", state=False)
    if cond.name not in parameters:
        return False
    value = parameters[cond.name]
    if isinstance(cond.value, bool):
        same = isinstance(value, bool) and value == cond.value
        return same if cond.op == "=" else not same
    if isinstance(cond.value, float):
        return type(value) in (int, float) and _OPS[cond.op](value, cond.value)
    return isinstance(value, str) and _OPS[cond.op](value, cond.value)


@pytest.fixture
def fleet_runtime(settings: Settings, tmp_path: Path) -> Iterator[tuple[Runtime, dict[str, dict[str, Any]]]]:
    """Sixty twins of an app that takes any parameters, each with a reported level."""
    app = make_app(tmp_path, name="open-app", manifest={"parameters": {"type": "object"}})
    runtime = Runtime.from_settings(settings)
    runtime.start()
    rng = random.Random(15)
    made: dict[str, dict[str, Any]] = {}
    with runtime.db.session() as session:
        publish(session, runtime.blobs, principal=SYSTEM, archive=pack(app), max_archive_bytes=10**8,
                max_unpacked_bytes=10**8, steps=runtime.publish_steps)
        for i in range(60):
            parameters = {name: v for name in NAMES if (v := parameter_value(rng)) is not ...}
            name = f"tw-{i:02d}"
            if i % 10 == 9:  # a fork, indexed by the fork's path
                service.fork_twin(session, principal=UMA, ref="tw-00", name=name, at_revision=None,
                                  parameters=parameters)
                parameters = {**made["tw-00"], **parameters}
            else:
                service.create_twin(session, principal=UMA, app="open-app@1.0.0", name=name, parameters=parameters)
            service.write_state(session, principal=UMA, ref=name, desired={},
                                reported={"level": PropertyWrite(value=float(i % 7))})
            made[name] = parameters
    try:
        yield runtime, made
    finally:
        runtime.close()


def matching(runtime: Runtime, condition: str) -> tuple[list[str], list[str], int]:
    """(names by the index, names by the JSON path, count of an aggregate filtered by the condition)."""
    filt = fleet.parse_filter(parameter=[condition])
    with runtime.db.session(readonly=True) as session:
        page, _ = fleet.list_fleet(session, principal=UMA, filt=filt, limit=1000)
        cond = filt.parameters[0]
        by_json = session.scalars(select(Twin.name).where(
            _compare(Json(session.get_bind().dialect.name), Twin.parameters, cond.name, cond)).order_by(Twin.name))
        groups = fleet.aggregate(session, principal=UMA, filt=filt, prop="level")
    return [t.name for t in page], list(by_json), sum(g.count for g in groups)


def test_conditions_answer_what_the_json_and_python_answer(fleet_runtime: tuple[Runtime, dict[str, Any]]) -> None:
    runtime, made = fleet_runtime
    hits = 0
    for condition in CONDITIONS:
        by_index, by_json, counted = matching(runtime, condition)
        wanted = sorted(name for name, parameters in made.items() if expected(parameters, condition))
        assert by_index == by_json == wanted, condition
        assert counted == len(wanted), condition
        hits += bool(wanted)
    assert hits > len(CONDITIONS) // 2  # the fleet exercises most conditions
    both = fleet.parse_filter(parameter=["a>=0", "flag!=true", "s!='abc'"])  # conditions combine (all hold)
    with runtime.db.session(readonly=True) as session:
        page, _ = fleet.list_fleet(session, principal=UMA, filt=both, limit=1000)
    assert [t.name for t in page] == sorted(n for n, p in made.items()
                                            if all(expected(p, c) for c in ("a>=0", "flag!=true", "s!='abc'")))


@pytest.mark.parametrize("quantiles", [(), (0.5,)])  # SQL, and on SQLite numpy
def test_groups_by_a_parameter_are_the_json_labels(fleet_runtime: tuple[Runtime, dict[str, Any]],
                                                   quantiles: tuple[float, ...]) -> None:
    runtime, _ = fleet_runtime
    with runtime.db.session(readonly=True) as session:
        json_ = Json(session.get_bind().dialect.name)
        for name in (*NAMES, "nope"):
            groups = fleet.aggregate(session, principal=UMA, filt=fleet.FleetFilter(), prop="level",
                                     by=f"parameter:{name}", quantiles=quantiles)
            label = json_.label(Twin.parameters, name)
            by_json = {None if k is None else str(k): n for k, n in session.execute(
                select(label, func.count()).select_from(Twin).group_by(label))}
            assert {g.key: g.count for g in groups} == by_json, name
            ordered = session.scalars(select(label).group_by(label).order_by(label))  # numpy orders as SQLite
            assert [g.key for g in groups] == [None if k is None else str(k) for k in ordered], name
    assert len(by_json) == 1  # "nope": one group, NULL


def stored_rows(runtime: Runtime) -> set[tuple[Any, ...]]:
    with runtime.db.session(readonly=True) as session:
        return {tuple(r) for r in session.execute(text(f"SELECT {COLUMNS} FROM twin_parameters"))}


def fresh_rows(runtime: Runtime) -> set[tuple[Any, ...]]:
    with runtime.db.session(readonly=True) as session:
        return {tuple(r) for r in session.execute(text(rows_sql(session.get_bind().dialect.name)))}


@pytest.mark.slow
def test_the_migration_backfills_twins_made_before_it(settings: Settings,
                                                      fleet_runtime: tuple[Runtime, dict[str, Any]]) -> None:
    runtime, made = fleet_runtime
    before = stored_rows(runtime)
    assert before == fresh_rows(runtime) and len(before) > 150
    runtime.db.dispose()
    command.downgrade(migrate.alembic_config(settings.db_url), "0014")  # text rows only, as before 0015
    with runtime.db.engine.begin() as conn:  # a twin created at 0014, copied from tw-01 by plain SQL
        assert conn.scalar(text("SELECT count(*) FROM twin_parameters WHERE value IS NULL")) == 0
        existing = {column["name"] for column in inspect(conn).get_columns("twins")}  # as of 0014
        columns = [c.name for c in Twin.__table__.columns
                   if c.name not in ("id", "name", "parameters") and c.name in existing]
        listed = ", ".join(columns)
        parameters = "CAST(:parameters AS jsonb)" if conn.dialect.name == "postgresql" else ":parameters"
        conn.execute(text(f"INSERT INTO twins (id, name, parameters, {listed}) "
                          f"SELECT 'tw-old', 'tw-old', {parameters}, {listed} FROM twins WHERE name = 'tw-01'"),
                     {"parameters": '{"a": 150, "flag": true, "s": "old"}'})
    runtime.db.dispose()
    again = Runtime.from_settings(settings)
    again.start()  # migrates to head: 0015 rebuilds the index from the JSON
    try:
        assert migrate.current_revision(again.db) == migrate.head_revision(again.db)
        assert stored_rows(again) == fresh_rows(again) and before < stored_rows(again)
        with again.db.session(readonly=True) as session:
            old = {r.name: (r.kind, r.value, r.num_value) for r in session.scalars(
                select(TwinParameter).where(TwinParameter.twin_id == "tw-old"))}
        assert old == {"a": ("number", None, 150.0), "flag": ("boolean", None, 1.0), "s": ("string", "old", None)}
        made = {**made, "tw-old": {"a": 150, "flag": True, "s": "old"}}
        for condition in ("a>100", "flag=true", "flag!=false", "s='old'", "a<=2"):
            by_index, by_json, _ = matching(again, condition)
            assert by_index == by_json == sorted(n for n, p in made.items() if expected(p, condition)), condition
    finally:
        again.close()
