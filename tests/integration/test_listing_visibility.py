"""A listing never shows what the item's own page refuses: uma's runs, openEO jobs, user-defined processes,
function events and training runs appear in none of the listings and searches another user (xb1, no grant)
can call, and each item's page answers xb1 403 or 404. A grant of read opens the twin's items to xb1, as
their pages do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import select

from helpers import MINIMAL_STATE, Engine, make_app
from twinengine.daemons.streams_functions import EVENT_SCHEMA
from twinengine.ml.models import TrainingRun
from twinengine.ml.registry import CHAMPION, registered_name
from twinengine.streams import stream_key
from twinengine.streams.service import EVENTS_STREAM
from twinengine.twins.models import Twin

GRAPH = ('{"process_graph": {"one": {"process_id": "add", "arguments": {"x": {"from_parameter": "level"}, '
         '"y": 2}, "result": true}}, "parameters": [{"name": "level", "schema": {"type": "number"}}]}')
JOB = {"process": {"process_graph": {"a": {"process_id": "add", "arguments": {"x": 40, "y": 2}, "result": True}}},
       "title": "uma-private-job"}
UDP = {"process_graph": {"m": {"process_id": "multiply", "arguments": {"x": {"from_parameter": "v"}, "y": 7},
                               "result": True}}, "parameters": [{"name": "v", "schema": {"type": "number"}}],
       "summary": "uma-private-udp"}
EVENT_MARK = "uma-private-event"


class Actor:
    """One identity calling the in-process engine with its own token."""

    def __init__(self, engine: Engine, name: str, role: str) -> None:
        self.engine, self.auth = engine, engine.headers(engine.token(name, role))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.engine.http.request(method, path, json=body, headers=self.auth)

    def get(self, path: str) -> Any:
        return self.call("GET", path)


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> dict[str, Any]:
    """uma's twin of a published app with a workflow run, an ensemble, an openEO job, a user-defined
    process, a function event and a training run; xb1 owns a twin of the same app."""
    folder = make_app(tmp_path, name="vis-app", manifest={
        "state": MINIMAL_STATE, "workflows": {"nowcast": {"process_graph": "nowcast.json"}},
        "models": {"net": {"entrypoint": "vis_app.model:build"}}},
        files={"nowcast.json": GRAPH, "vis_app/model.py": "def build():\n    return None\n"})
    engine.as_role("dev", "developer").publish_app(folder)
    uma, xb1 = Actor(engine, "uma", "user"), Actor(engine, "xb1", "user")
    for actor, name in ((uma, "uma-reach"), (xb1, "xb1-reach")):
        made = actor.call("POST", "/api/v1/twins", {"app": "vis-app", "name": name,
                                                    "parameters": {"station": "ST-01"}})
        assert made.status_code == 201, made.text
    twin_id = uma.get("/api/v1/twins/uma-reach").json()["id"]
    run = uma.call("POST", "/api/v1/twins/uma-reach/runs", {"workflow": "nowcast", "parameters": {"level": 1},
                                                           "mode": "sync"})
    assert run.status_code in (200, 202) and run.json()["status"] == "finished", run.text
    ensemble = uma.call("POST", "/api/v1/twins/uma-reach/ensembles",
                        {"workflow": "nowcast", "mode": "sync", "parameters": {"level": 1},
                         "parameter_sets": [{"level": 1}, {"level": 2}]})
    assert ensemble.status_code == 202, ensemble.text
    job = uma.call("POST", "/openeo/1.2/jobs", JOB)
    assert job.status_code == 201, job.text
    put = uma.call("PUT", "/openeo/1.2/process_graphs/uma_private_udp", UDP)
    assert put.status_code == 200, put.text
    event = pa.Table.from_pydict({"time": [datetime.now(UTC)], "function": ["watch"], "kind": ["alert"],
                                  "data": [f'{{"note": "{EVENT_MARK}"}}']}, schema=EVENT_SCHEMA)
    engine.runtime.streams.append(stream_key(twin_id, EVENTS_STREAM), event, time_field="time")
    with engine.runtime.db.session() as session:
        session.add(TrainingRun(id="tr-uma-private", twin_id=twin_id, model="net", created_by="uma",
                                status="failed", error="uma-private-error"))
    return {"uma": uma, "xb1": xb1, "twin_id": twin_id, "run": run.json()["id"],
            "ensemble": ensemble.json()["id"],
            "job": job.headers["OpenEO-Identifier"]}


LISTINGS = [
    "/api/v1/runs", "/api/v1/runs?status=finished", "/api/v1/runs?limit=500",
    "/api/v1/runs?twin=uma-reach", "/api/v1/runs?twin={twin_id}",
    "/openeo/1.2/jobs", "/openeo/1.2/process_graphs", "/openeo/1.2/processes", "/openeo/1.2/processes/user",
    "/api/v1/twins", "/api/v1/fleet/twins", "/api/v1/fleet/twins?app=vis-app",
    "/api/v1/fleet/aggregate?property=level&by=app",
    "/api/v1/twins/uma-reach/functions/events", "/api/v1/twins/{twin_id}/functions/events",
    "/api/v1/twins/uma-reach/functions", "/api/v1/twins/uma-reach/functions/dead-letters",
    "/api/v1/twins/uma-reach/training-runs", "/api/v1/twins/uma-reach/models",
    "/api/v1/twins/xb1-reach/training-runs", "/api/v1/twins/xb1-reach/models",
    "/api/v1/twins/uma-reach/triggers", "/api/v1/twins/uma-reach/verification?property=level",
    "/api/v1/compare?twin=uma-reach", "/api/v1/compare?twin=xb1-reach&twin=uma-reach",
    "/api/v1/audit", "/metrics",
]


def _pages(world: dict[str, Any]) -> list[str]:
    run, job = world["run"], world["job"]
    pages = [f"/api/v1/runs/{run}", f"/api/v1/runs/{run}/logs", f"/api/v1/runs/{run}/provenance",
             f"/api/v1/runs/{run}/quality", f"/openeo/1.2/jobs/{job}", f"/openeo/1.2/jobs/{job}/logs",
             f"/openeo/1.2/jobs/{job}/results", f"/openeo/1.2/jobs/{run}",
             "/openeo/1.2/process_graphs/uma_private_udp",
             "/api/v1/twins/uma-reach", "/api/v1/twins/uma-reach/training-runs/tr-uma-private",
             "/api/v1/twins/xb1-reach/training-runs/tr-uma-private", f"/api/v1/ensembles/{world['ensemble']}",
             f"/api/v1/runs/{world['ensemble']}"]
    return pages


def _marks(world: dict[str, Any]) -> list[str]:
    """Strings that would tell xb1 of uma's items (the app's name is public: the catalogue lists it)."""
    marks = [world["run"], world["job"], world["twin_id"], "uma-reach", "uma_private_udp", "uma-private-udp",
             "uma-private-job", EVENT_MARK, "tr-uma-private", "uma-private-error", world["ensemble"]]
    return marks


def test_the_owner_sees_her_items_in_the_listings(world: dict[str, Any]) -> None:
    """The listings below are the ones that would leak: each shows uma her own item."""
    uma = world["uma"]
    assert world["run"] in uma.get("/api/v1/runs").text
    assert world["run"] in uma.get("/api/v1/runs?twin=uma-reach").text
    assert world["job"] in uma.get("/openeo/1.2/jobs").text
    assert "uma_private_udp" in uma.get("/openeo/1.2/process_graphs").text
    assert EVENT_MARK in uma.get("/api/v1/twins/uma-reach/functions/events").text
    assert "tr-uma-private" in uma.get("/api/v1/twins/uma-reach/training-runs").text
    assert "uma-reach" in uma.get("/api/v1/fleet/twins").text


def test_no_listing_shows_another_users_items(world: dict[str, Any]) -> None:
    xb1, marks = world["xb1"], _marks(world)
    for template in LISTINGS:
        path = template.format(twin_id=world["twin_id"])
        got = xb1.get(path)
        assert got.status_code in (200, 400, 403, 404), f"{path}: {got.status_code} {got.text}"
        # a refusal names the twin as it was asked for (by id or by name), never the other, nor the twin's items
        shown = marks if got.status_code == 200 else [m for m in marks if m not in path]
        leaked = [m for m in shown if m in got.text]
        assert not leaked, f"{path} shows xb1 {leaked}: {got.text[:500]}"


@pytest.mark.every_store  # reaches code only PostgreSQL runs
def test_each_items_page_refuses_another_user(world: dict[str, Any]) -> None:
    xb1 = world["xb1"]
    for path in _pages(world):
        got = xb1.get(path)
        assert got.status_code in (403, 404), f"{path}: {got.status_code} {got.text[:300]}"


def test_a_read_grant_opens_the_twins_items_as_their_pages(world: dict[str, Any]) -> None:
    """With read on uma's twin, xb1 finds the twin's runs through the twin's listing and reads each page; uma's
    own openEO job and process stay hers."""
    uma, xb1 = world["uma"], world["xb1"]
    granted = uma.call("PUT", "/api/v1/twins/uma-reach/grants/xb1", {"permission": "read"})
    assert granted.status_code in (200, 201, 204), granted.text
    assert world["run"] in xb1.get("/api/v1/runs?twin=uma-reach").text
    assert xb1.get(f"/api/v1/runs/{world['run']}").status_code == 200
    assert EVENT_MARK in xb1.get("/api/v1/twins/uma-reach/functions/events").text
    assert "tr-uma-private" in xb1.get("/api/v1/twins/uma-reach/training-runs").text
    assert world["job"] not in xb1.get("/openeo/1.2/jobs").text
    assert xb1.get(f"/openeo/1.2/jobs/{world['job']}").status_code == 404
    assert "uma_private_udp" not in xb1.get("/openeo/1.2/process_graphs").text
    revoked = uma.call("DELETE", "/api/v1/twins/uma-reach/grants/xb1")
    assert revoked.status_code == 204, revoked.text
    assert xb1.get("/api/v1/runs?twin=uma-reach").status_code in (403, 404)
    assert xb1.get(f"/api/v1/runs/{world['run']}").status_code == 404


def test_metrics_and_the_audit_log_are_not_for_plain_users(world: dict[str, Any], engine: Engine) -> None:
    """``/metrics`` labels series with stream keys (twin ids) and the audit log names every actor: providers
    and admins read them, a plain user is refused."""
    assert world["xb1"].get("/metrics").status_code == 403
    assert world["xb1"].get("/api/v1/audit").status_code == 403
    assert Actor(engine, "pat", "provider").get("/metrics").status_code == 200


def test_a_twin_named_as_a_deleted_one_lists_none_of_its_model_versions(world: dict[str, Any], engine: Engine,
                                                                         tmp_path: Path) -> None:
    """Registered models are named after the twin's name: when xb1's new twin takes the name of uma's deleted
    one, the versions uma's twin trained are in neither its model listing nor a version's page."""
    uma, xb1 = world["uma"], world["xb1"]
    registry = engine.runtime.ml.registry
    name = registered_name("uma-reach", "net")
    mlrun = registry.start_run(name, name="tr-uma-trained", params={}, tags={"twin.id": world["twin_id"]})
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.txt").write_text("uma's weights")
    version = registry.register(name, mlrun, tmp_path / "model", tags={"twin.id": world["twin_id"],
                                                                        "training_run": "tr-uma-trained"})
    registry.set_alias(name, CHAMPION, version)
    with engine.runtime.db.session() as session:
        session.add(TrainingRun(id="tr-uma-trained", twin_id=world["twin_id"], model="net", created_by="uma",
                                status="succeeded", model_version=version, mlflow_run_id=mlrun))
    mine = uma.get("/api/v1/twins/uma-reach/models").json()
    assert [v["version"] for v in mine[0]["versions"]] == [version] and mine[0]["champion"] == version

    assert uma.call("DELETE", "/api/v1/twins/uma-reach").status_code == 204
    made = xb1.call("POST", "/api/v1/twins", {"app": "vis-app", "name": "uma-reach",
                                              "parameters": {"station": "ST-02"}})
    assert made.status_code == 201, made.text
    listed = xb1.get("/api/v1/twins/uma-reach/models")
    assert listed.status_code == 200, listed.text
    assert listed.json()[0]["versions"] == [] and listed.json()[0]["champion"] is None
    assert "tr-uma-trained" not in listed.text and mlrun not in listed.text
    assert xb1.get(f"/api/v1/twins/uma-reach/models/net/versions/{version}/quality").status_code == 404
    # Nor is any of it served to the new twin: not as its champion, not by number, not as a worker's recipe.
    with engine.runtime.db.session(readonly=True) as session:
        new_twin = session.scalar(select(Twin).where(Twin.name == "uma-reach"))
        assert new_twin is not None
        session.expunge(new_twin)
    ml = engine.runtime.ml
    assert ml.own_alias(new_twin.id, name) is None
    with pytest.raises(LookupError, match="no champion"):
        ml.champion_of(new_twin, "net")
    with pytest.raises(LookupError, match="no version"):
        ml.champion_of(new_twin, "net", version)
    with pytest.raises(LookupError, match="no version"):
        ml.model_recipe(new_twin, "net", version)
