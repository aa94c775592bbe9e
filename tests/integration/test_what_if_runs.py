"""What-if runs through the REST API: river-reach's forecast started as a what-if runs on a new fork of the
twin, so the twin's official state (and its forecasts) read back byte for byte as before, and the run says
whose what-if it is; refused what-ifs leave no fork behind."""

from __future__ import annotations

import re
from typing import Any

import pytest

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from workflow_data import rain_cube, write_collection


@pytest.fixture
def reach(engine: Engine) -> tuple[Client, str]:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    ds = rain_cube(days=2)
    ds["rain"].values[:] = 0.0
    ds["rain"].values[6:12] = 12.0
    write_collection(engine.runtime.data_dir / "collections", "rain-forecast", ds)
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach", "reach", {"station": "RR-01"})
    return uma, "reach"


def call(engine: Engine, client: Client, method: str, path: str, body: Any = None) -> Any:
    return engine.http.request(method, path, json=body, headers={"Authorization": client._auth["Authorization"]})


# The one part of a state answer that is not state: the moment staleness was judged, which is each read's own.
READ_TIME = re.compile(rb'"stale_as_of":"[^"]*"')


def official(engine: Engine, client: Client, name: str) -> dict[str, bytes]:
    """What a reader sees of the twin's official outcome, as the bytes the API answers."""
    paths = {"state": f"/api/v1/twins/{name}/state", "forecasts": f"/api/v1/twins/{name}/forecasts",
             "runs": f"/api/v1/runs?twin={name}", "revisions": f"/api/v1/twins/{name}/revisions"}
    out = {}
    for key, path in paths.items():
        got = call(engine, client, "GET", path)
        assert got.status_code == 200, got.text
        out[key] = READ_TIME.sub(b'"stale_as_of":"(read time)"', got.content)
    return out


def test_a_what_if_forecast_leaves_the_official_state_byte_identical(engine: Engine,
                                                                     reach: tuple[Client, str]) -> None:
    uma, name = reach
    run = call(engine, uma, "POST", f"/api/v1/twins/{name}/runs",
               {"workflow": "forecast", "parameters": {"alert_level": 0.01}, "mode": "sync"}).json()
    assert run["status"] == "finished", run["error"]
    assert run["what_if_of"] is None
    state = uma.get_state(name).reported
    assert state["forecast_alert"].value is True
    before = official(engine, uma, name)

    got = call(engine, uma, "POST", f"/api/v1/twins/{name}/runs",
               {"workflow": "forecast", "parameters": {"alert_level": 5, "storage_mm": 40}, "mode": "sync",
                "what_if": {}})
    assert got.status_code == 202, got.text
    what_if = got.json()
    assert what_if["status"] == "finished", what_if["error"]
    assert what_if["what_if_of"] == name and what_if["twin_name"] == f"{name}-what-if"
    assert official(engine, uma, name) == before  # byte for byte: state, forecasts, runs, revisions

    fork = uma.get_twin(what_if["twin_name"])
    assert fork.origin is not None and fork.origin.twin_name == name
    assert uma.get_state(fork.name).reported["forecast_alert"].value is False  # the what-if's outcome is its own
    listed = call(engine, uma, "GET", f"/api/v1/runs?twin={fork.name}").json()["items"]
    assert [(r["id"], r["what_if_of"]) for r in listed] == [(what_if["id"], name)]
    again = uma.workflows.run(name, "forecast", {"alert_level": 4}, what_if=True)  # the SDK's way
    assert again.twin_name == f"{name}-what-if-2" and again.what_if_of == name


def test_a_refused_what_if_names_the_field_and_leaves_no_fork(engine: Engine, reach: tuple[Client, str]) -> None:
    uma, name = reach
    twins_before = call(engine, uma, "GET", "/api/v1/twins").content
    unknown = call(engine, uma, "POST", f"/api/v1/twins/{name}/runs",
                   {"workflow": "forecast", "parameters": {"no_such": 1}, "what_if": {}})
    assert unknown.status_code == 400 and "no_such" in unknown.text, unknown.text
    missing = call(engine, uma, "POST", f"/api/v1/twins/{name}/runs", {"workflow": "nowcast", "what_if": {}})
    assert missing.status_code == 404 and "nowcast" in missing.text
    bad_name = call(engine, uma, "POST", f"/api/v1/twins/{name}/runs",
                    {"workflow": "forecast", "what_if": {"name": "Not A Name"}})
    assert bad_name.status_code == 422 and "what_if" in bad_name.text and "name" in bad_name.text
    taken = call(engine, uma, "POST", f"/api/v1/twins/{name}/runs",
                 {"workflow": "forecast", "what_if": {"name": name}})
    assert taken.status_code == 409 and name in taken.text
    for revision, status in ((99, 404), (2**31, 422)):  # past the head; past what a revision number can be
        late = call(engine, uma, "POST", f"/api/v1/twins/{name}/runs",
                    {"workflow": "forecast", "what_if": {"at_revision": revision}})
        assert late.status_code == status and "revision" in late.text, late.text
    assert call(engine, uma, "GET", "/api/v1/twins").content == twins_before


def test_a_what_ifs_fork_is_kept_for_what_if_ttl_and_then_deleted(engine: Engine,
                                                                   reach: tuple[Client, str]) -> None:
    """What-ifs never pile up: each fork expires ``what_if_ttl`` after it was made and the expiry loop deletes
    it (its runs stay in their owner's history); no trigger runs it again meanwhile; a fork made with ``twin
    fork`` is kept."""
    from sqlalchemy import select, update

    from twinengine.daemons import twin_expiry
    from twinengine.store.base import utcnow
    from twinengine.twins.models import Twin
    from twinengine.workflows.models import Trigger

    uma, name = reach
    made = utcnow()
    first = uma.workflows.run(name, "forecast", {"alert_level": 4}, what_if=True)
    second = uma.workflows.run(name, "forecast", {"alert_level": 5}, what_if=True)
    kept = uma.fork_twin(name, "reach-mine")
    ttl = engine.runtime.settings.what_if_ttl
    forks = {t.name: t for t in uma.list_twins().items}
    for run in (first, second):
        expires = forks[run.twin_name].expires_at
        assert expires is not None and made + ttl <= expires <= utcnow() + ttl
    assert forks[kept.name].expires_at is None and forks[name].expires_at is None
    with engine.runtime.db.session(readonly=True) as session:  # nothing but the what-if runs on its fork
        enabled = dict(session.execute(select(Twin.name, Trigger.enabled).join(Trigger, Trigger.twin_id == Twin.id)
                                       .where(Twin.name.in_([first.twin_name, name]))).all())
    assert enabled == {first.twin_name: False, name: True}  # river-reach's trigger on new rain forecasts
    assert twin_expiry.run_once(engine.runtime.db) == 0  # nothing due yet

    with engine.runtime.db.session() as session:  # the first what-if's time is up
        session.execute(update(Twin).where(Twin.name == first.twin_name).values(expires_at=utcnow()))
    assert twin_expiry.run_once(engine.runtime.db) == 1
    left = {t.name for t in uma.list_twins().items}
    assert first.twin_name not in left and {second.twin_name, kept.name, name} <= left
    assert uma.workflows.get(first.id).id == first.id  # its run stays in uma's history
    assert twin_expiry.run_once(engine.runtime.db) == 0
