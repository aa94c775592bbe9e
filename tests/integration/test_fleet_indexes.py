"""The copies fleet queries read instead of JSON, on both stores: ``state_heads.num_value`` agrees with the
head's value after single writes, batched writes, ``rebuild-state`` and the migration's backfill; the rows of
``twin_parameters`` agree with the twins' parameters after create, fork, delete, ``rebuild-state`` and the
backfill."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, insert, select, update

from helpers import RIVER_REACH
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.store import migrate
from twinengine.twins import batch, fleet, service
from twinengine.twins.batch_schemas import StateBatchItem
from twinengine.twins.models import StateHead, Twin, TwinParameter
from twinengine.twins.rebuild import rebuild_state, twins_to_rebuild
from twinengine.twins.schemas import PropertyWrite

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores

UMA = Principal(name="uma", role=Role.USER)
ENSEMBLE = {"peak_mean": 2.5, "members": [1, 2]}


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
        for name in ("reach-a", "reach-b"):
            service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name=name,
                                parameters={"station": "RR-01"})
    try:
        yield runtime
    finally:
        runtime.close()


def expected(value: Any) -> float | None:
    """What the copy must hold, said independently of the engine: JSON numbers as doubles, nothing else."""
    return float(value) if type(value) in (int, float) else None


def heads(runtime: Runtime, name: str) -> dict[str, tuple[Any, float | None]]:
    """property → (JSON value, num_value) of the twin's reported and desired heads."""
    with runtime.db.session(readonly=True) as session:
        rows = session.execute(select(StateHead.property, StateHead.kind, StateHead.value, StateHead.num_value)
                               .join(Twin, Twin.id == StateHead.twin_id).where(Twin.name == name))
        return {f"{r.kind}.{r.property}": (r.value, r.num_value) for r in rows}


def assert_numbers_agree(runtime: Runtime, name: str) -> dict[str, tuple[Any, float | None]]:
    found = heads(runtime, name)
    assert found, name
    for key, (value, number) in found.items():
        assert number == expected(value) and type(number) in (float, type(None)), (name, key, value, number)
    return found


def write(runtime: Runtime, name: str, **reported: Any) -> None:
    with runtime.db.session() as session:
        service.write_state(session, principal=UMA, ref=name, desired={},
                            reported={k: PropertyWrite(value=v) for k, v in reported.items()})


def fleet_names(runtime: Runtime, condition: str, *, parameter: bool = False) -> list[str]:
    filt = fleet.parse_filter(parameter=[condition]) if parameter else fleet.parse_filter(state=[condition])
    with runtime.db.session(readonly=True) as session:
        rows, _ = fleet.list_fleet(session, principal=UMA, filt=filt)
    return [t.name for t in rows]


def indexed_parameters(runtime: Runtime) -> dict[str, dict[str, tuple[str, str | None, float | None]]]:
    """twin name → the parameter index's rows of it: name → (kind, text, number)."""
    found: dict[str, dict[str, tuple[str, str | None, float | None]]] = {}
    with runtime.db.session(readonly=True) as session:
        for row in session.execute(select(Twin.name.label("twin"), TwinParameter.name, TwinParameter.kind,
                                          TwinParameter.value, TwinParameter.num_value)
                                   .join(Twin, Twin.id == TwinParameter.twin_id)):
            found.setdefault(row.twin, {})[row.name] = (row.kind, row.value, row.num_value)
    return found


def index_row(value: Any) -> tuple[str, str | None, float | None]:
    """What the index must hold of a parameter, said independently of the engine."""
    if isinstance(value, bool):
        return "boolean", None, float(value)
    if isinstance(value, int | float):
        return "number", None, float(value)
    if isinstance(value, str):
        return "string", (value if len(value) <= 200 else None), None
    return {dict: "object", list: "array", type(None): "null"}[type(value)], None, None


def json_parameters(runtime: Runtime) -> dict[str, dict[str, tuple[str, str | None, float | None]]]:
    """twin name → the index rows its parameters call for, read from the twins' JSON."""
    with runtime.db.session(readonly=True) as session:
        return {t.name: {k: index_row(v) for k, v in t.parameters.items() if len(k) <= 64}
                for t in session.scalars(select(Twin)) if t.parameters}


def texts(index: dict[str, dict[str, tuple[str, str | None, float | None]]]) -> dict[str, dict[str, str]]:
    return {twin: {k: r[1] for k, r in rows.items() if r[1] is not None} for twin, rows in index.items()}


def test_single_writes_keep_the_copy_in_step(runtime: Runtime) -> None:
    write(runtime, "reach-a", level=2, alert=True, forecast_ensemble=ENSEMBLE)
    assert assert_numbers_agree(runtime, "reach-a") == {
        "reported.level": (2, 2.0), "reported.alert": (True, None), "reported.forecast_ensemble": (ENSEMBLE, None)}
    write(runtime, "reach-a", level=-0.25, alert=False)  # the upsert moves the copy with the value
    found = assert_numbers_agree(runtime, "reach-a")
    assert found["reported.level"] == (-0.25, -0.25) and found["reported.alert"] == (False, None)
    assert fleet_names(runtime, "level<0") == ["reach-a"] and fleet_names(runtime, "level>=0") == []


def test_batched_writes_keep_the_copy_in_step(runtime: Runtime) -> None:
    items = [StateBatchItem(twin="reach-a", reported={"level": PropertyWrite(value=1.0)}),
             StateBatchItem(twin="reach-b", reported={"level": PropertyWrite(value=7),
                                                      "alert": PropertyWrite(value=True)},
                            desired={"alert_threshold": PropertyWrite(value=3.5)}),
             StateBatchItem(twin="reach-a", reported={"level": PropertyWrite(value=4.5)})]  # newest of reach-a wins
    with runtime.db.session() as session:
        batch.write_batch(session, principal=UMA, items=items, max_items=10)
    assert assert_numbers_agree(runtime, "reach-a") == {"reported.level": (4.5, 4.5)}
    assert assert_numbers_agree(runtime, "reach-b") == {
        "reported.level": (7, 7.0), "reported.alert": (True, None), "desired.alert_threshold": (3.5, 3.5)}
    assert fleet_names(runtime, "level>@desired.alert_threshold") == ["reach-b"]


def test_rebuild_restores_a_falsified_copy(runtime: Runtime) -> None:
    write(runtime, "reach-a", level=1.5, alert=True)
    write(runtime, "reach-b", level=3.0)
    with runtime.db.session() as session:  # a copy that lies, and a boolean that claims to be a number
        session.execute(update(StateHead).where(StateHead.property == "level").values(num_value=99.0))
        session.execute(update(StateHead).where(StateHead.property == "alert").values(num_value=1.0))
    assert fleet_names(runtime, "level>50") == ["reach-a", "reach-b"]
    done = rebuild_state(runtime.db, twins_to_rebuild(runtime.db))
    assert sorted(r.name for r in done if r.drifted) == ["reach-a", "reach-b"]  # the copy alone counts as drift
    assert assert_numbers_agree(runtime, "reach-a") == {"reported.level": (1.5, 1.5), "reported.alert": (True, None)}
    assert assert_numbers_agree(runtime, "reach-b") == {"reported.level": (3.0, 3.0)}
    assert fleet_names(runtime, "level>50") == []
    assert not any(r.drifted for r in rebuild_state(runtime.db, twins_to_rebuild(runtime.db)))


def test_the_parameter_index_follows_create_fork_and_delete(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        service.fork_twin(session, principal=UMA, ref="reach-a", name="what-if", at_revision=None,
                          parameters={"station": "RR-09", "area_km2": 300})
        service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="reach-c",
                            parameters={"station": "RR-09"})
    index = indexed_parameters(runtime)
    assert index == json_parameters(runtime)
    assert texts(index) == {"reach-a": {"station": "RR-01"}, "reach-b": {"station": "RR-01"},
                            "what-if": {"station": "RR-09"}, "reach-c": {"station": "RR-09"}}
    assert index["what-if"]["area_km2"] == ("number", None, 300.0)
    assert index["reach-c"]["area_km2"] == ("number", None, 120.0)  # the manifest's default, filled at create
    assert fleet_names(runtime, "station=RR-09", parameter=True) == ["reach-c", "what-if"]
    assert fleet_names(runtime, "station='RR-01'", parameter=True) == ["reach-a", "reach-b"]
    assert fleet_names(runtime, "area_km2=300", parameter=True) == ["what-if"]
    assert fleet_names(runtime, "area_km2>=120", parameter=True) == ["reach-a", "reach-b", "reach-c", "what-if"]
    assert fleet_names(runtime, "station=RR-02", parameter=True) == []
    with runtime.db.session() as session:
        service.delete_twin(session, principal=UMA, ref="reach-c")
    assert "reach-c" not in indexed_parameters(runtime)
    assert fleet_names(runtime, "station=RR-09", parameter=True) == ["what-if"]


def test_rebuild_restores_the_parameter_index(runtime: Runtime) -> None:
    with runtime.db.session() as session:  # one twin loses its rows, the other gains a false one and a number
        reach_a = session.scalars(select(Twin.id).where(Twin.name == "reach-a")).one()
        reach_b = session.scalars(select(Twin.id).where(Twin.name == "reach-b")).one()
        session.execute(delete(TwinParameter).where(TwinParameter.twin_id == reach_a))
        session.execute(insert(TwinParameter).values(twin_id=reach_b, name="owner_note", kind="string", value="x"))
        session.execute(update(TwinParameter).where(TwinParameter.twin_id == reach_b,
                                                    TwinParameter.name == "area_km2").values(num_value=5.0))
    assert "reach-a" not in indexed_parameters(runtime)
    assert indexed_parameters(runtime)["reach-b"]["area_km2"] == ("number", None, 5.0)
    done = rebuild_state(runtime.db, twins_to_rebuild(runtime.db))
    assert sorted(r.name for r in done if r.drifted) == ["reach-a", "reach-b"]
    assert indexed_parameters(runtime) == json_parameters(runtime)
    assert fleet_names(runtime, "station=RR-01", parameter=True) == ["reach-a", "reach-b"]
    assert indexed_parameters(runtime)["reach-b"]["area_km2"] == ("number", None, 120.0)
    assert not any(r.drifted for r in rebuild_state(runtime.db, twins_to_rebuild(runtime.db)))


@pytest.mark.slow
def test_the_migration_backfills_the_copies(settings: Settings, runtime: Runtime) -> None:
    write(runtime, "reach-a", level=2, rain=0.5, alert=True, forecast_ensemble=ENSEMBLE)
    write(runtime, "reach-b", level=-1.25, forecast_exceedance_probability=1, forecast_alert=False)
    with runtime.db.session() as session:
        service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="reach-c",
                            parameters={"station": "RR-07", "area_km2": 60})
    before = {name: heads(runtime, name) for name in ("reach-a", "reach-b")}
    runtime.db.dispose()  # no pooled connection in the way of the schema change
    command.downgrade(migrate.alembic_config(settings.db_url), "0011")  # heads without copies, no index
    again = start(settings)  # migrates to head on start: the backfill runs here
    try:
        assert migrate.current_revision(again.db) == migrate.head_revision(again.db)
        for name in ("reach-a", "reach-b"):
            assert assert_numbers_agree(again, name) == before[name]
        assert heads(again, "reach-b")["reported.forecast_exceedance_probability"] == (1, 1.0)
        assert fleet_names(again, "level>0") == ["reach-a"]
        assert indexed_parameters(again) == json_parameters(again)
        assert texts(indexed_parameters(again)) == {
            "reach-a": {"station": "RR-01"}, "reach-b": {"station": "RR-01"}, "reach-c": {"station": "RR-07"}}
        assert fleet_names(again, "station=RR-07", parameter=True) == ["reach-c"]
        assert fleet_names(again, "area_km2<100", parameter=True) == ["reach-c"]
    finally:
        again.close()


def test_a_value_with_its_uncertainty_is_still_a_number_for_the_fleet(runtime: Runtime) -> None:
    from twinengine.quality.uncertainty import Uncertainty

    with runtime.db.session() as session:
        service.write_state(session, principal=UMA, ref="reach-a", desired={}, reported={
            "forecast_peak_level": PropertyWrite(value=3.25, uncertainty=Uncertainty(std=0.4))})
    value, number = heads(runtime, "reach-a")["reported.forecast_peak_level"]
    assert value == {"value": 3.25, "uncertainty": {"std": 0.4}} and number == 3.25  # the envelope, unwrapped
    assert fleet_names(runtime, "forecast_peak_level>3") == ["reach-a"]
    filt = fleet.parse_filter()
    with runtime.db.session(readonly=True) as session:
        (group,) = fleet.aggregate(session, principal=UMA, filt=filt, prop="forecast_peak_level")
    assert group.count == 1 and group.mean == pytest.approx(3.25)
