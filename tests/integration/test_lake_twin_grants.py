"""Twin data in the lake follows the twin's grants, and the lake's dataset triggers fire only for data the
trigger's identity may read.

Two users: ``uma`` owns a river-reach twin (its compacted gauges and its runs' results go to the lake, as
``TWIN_LAKE_ENDPOINT`` asks); ``xb1`` has no grant on it. Every lake surface (identifiers, content, listings,
STAC collections, items and search, the EDR listing the portal's map draws) answers ``xb1`` as the twin's and
the run's own routes do, until ``uma`` grants ``xb1`` the twin.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sqlalchemy import select
from starlette.testclient import TestClient

from helpers import RIVER_REACH, statements
from streams_fixtures import gauge
from twinengine.api import create_app
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.auth.service import issue_token
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.daemons import workflows_triggers
from twinengine.daemons.streams_compactor import Compactor
from twinengine.lake.endpoints import add_endpoint
from twinengine.lake.models import Did
from twinengine.lake.schemas import DidType, EndpointCreate
from twinengine.runtime import Runtime
from twinengine.streams import records
from twinengine.streams.hub import stream_key
from twinengine.twins import service as twins
from twinengine.workflows import service as runs
from twinengine.workflows.models import Trigger, WorkflowRun

UMA = Principal("uma", Role.USER)


class Lake:
    """A started engine whose stream history and run results go to the lake endpoint ``disk``."""

    def __init__(self, runtime: Runtime, http: TestClient) -> None:
        self.runtime, self.http = runtime, http
        self.tokens: dict[str, str] = {}

    def as_(self, name: str) -> dict[str, str]:
        if name not in self.tokens:
            with self.runtime.db.session() as session:
                self.tokens[name] = issue_token(session, self.runtime.issuer, principal=SYSTEM, name=name,
                                                role=Role.USER, ttl=timedelta(hours=1)).token
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def get(self, who: str, path: str, **params: Any) -> Any:
        return self.http.get(path, headers=self.as_(who), params=params)


@pytest.fixture
def lake(tmp_path: Path, database_url: str | None) -> Iterator[Lake]:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, stream_segment_bytes=4096,
                        stream_segment_entries=6, lake_endpoint="disk", warm_routes=False)
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        with runtime.db.session() as session:
            add_endpoint(session, runtime.lake, principal=SYSTEM,
                         spec=EndpointCreate(name="disk", protocol="file", location=str(tmp_path / "disk")))
            publish(session, runtime.blobs, principal=SYSTEM, archive=pack(RIVER_REACH), max_archive_bytes=10**8,
                    max_unpacked_bytes=10**8, steps=runtime.publish_steps)
        with TestClient(create_app(runtime=runtime)) as http:
            yield Lake(runtime, http)
    finally:
        runtime.close()


def _twin(lake: Lake, name: str = "reach") -> str:
    with lake.runtime.db.session() as session:
        return twins.create_twin(session, principal=UMA, app="river-reach@0.1.0", name=name,
                                 parameters={"station": "RR-01"}).id


def _gauges_in_the_lake(lake: Lake, twin_id: str) -> str:
    """Compacted gauge records of the twin, as the compactor registers them; returns a segment file's DID."""
    rt = lake.runtime
    with rt.db.session(readonly=True) as session:
        declared = twins.manifest_for(session, twins.get_twin(session, principal=UMA, ref=twin_id)).streams["gauges"]
    rows = [gauge(i) for i in range(120)]
    for start in range(0, len(rows), 20):
        rt.streams.append(stream_key(twin_id, "gauges"), records.check_records(declared, rows[start:start + 20]),
                          time_field=declared.time_field)
    with rt.db.session() as session:
        assert Compactor(rt).run_once(session) >= 1
    with rt.db.session(readonly=True) as session:
        files = session.scalars(select(Did).where(Did.scope == "streams", Did.type == DidType.FILE,
                                                  Did.name.startswith(f"{twin_id}-gauges/"))).all()
    assert files
    return files[0].did


def _finished_run(lake: Lake, twin_id: str) -> WorkflowRun:
    with lake.runtime.db.session() as session:
        run_id = runs.submit(session, lake.runtime.workflows, principal=UMA, twin_ref=twin_id, process={
            "process_graph": {"sum": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}}}).id
    lake.runtime.workflows.notify()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lake.runtime.db.session(readonly=True) as session:
            run = session.get_one(WorkflowRun, run_id)
            if run.status in ("finished", "error", "canceled"):
                assert run.status == "finished", run.error
                return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def _stac_ids(lake: Lake, who: str) -> tuple[set[str], set[str]]:
    collections = {c["id"] for c in lake.get(who, "/stac/collections").json()["collections"]}
    found = lake.get(who, "/stac/search", limit=1000).json()["features"]
    return collections, {f"{f['collection']}/{f['id']}" for f in found}


def test_stream_history_in_the_lake_is_read_as_the_twin_is(lake: Lake) -> None:
    twin_id = _twin(lake)
    file = _gauges_in_the_lake(lake, twin_id)
    dataset_name = file.partition(":")[2].replace("/", "-").removesuffix(".parquet")
    collection, item = f"{twin_id}-gauges", dataset_name
    content = f"/api/v1/lake/dids/{file}/content"

    assert lake.get("xb1", f"/api/v1/twins/{twin_id}/streams/gauges/records").status_code == 403
    assert lake.get("xb1", content).status_code == 404
    assert lake.get("xb1", f"/api/v1/lake/dids/{file}").status_code == 404
    assert lake.get("xb1", f"/api/v1/lake/dids/streams:{dataset_name}").status_code == 404
    assert lake.get("xb1", "/api/v1/lake/dids", scope="streams").json() == {"items": [], "total": 0}
    assert lake.get("xb1", "/api/v1/lake/replicas", endpoint="disk").json() == []
    collections, items = _stac_ids(lake, "xb1")
    assert collection not in collections and not {i for i in items if i.startswith(collection)}
    assert lake.get("xb1", f"/stac/collections/{collection}").status_code == 404
    assert lake.get("xb1", f"/stac/collections/{collection}/items/{item}").status_code == 404
    landing = lake.get("xb1", "/stac/").json()
    assert not [link for link in landing["links"] if link["href"].endswith(f"/collections/{collection}")]
    edr_id = f"streams.{dataset_name}"  # the segment is a Parquet station table: a lake collection
    assert edr_id in lake.runtime.collections.ids()
    listed = {c["id"] for c in lake.get("xb1", "/edr/collections").json()["collections"]}
    assert edr_id not in listed and lake.get("xb1", f"/edr/collections/{edr_id}").status_code == 404
    attach = lake.http.post("/api/v1/lake/dids", headers=lake.as_("xb1"), json={"did": "xb1:loot", "type": "dataset"})
    assert attach.status_code == 201
    stolen = lake.http.post("/api/v1/lake/dids/xb1:loot/members", headers=lake.as_("xb1"), json={"children": [file]})
    assert stolen.status_code == 404 and "children[0]" in stolen.text  # no way round through a dataset of one's own

    owner = lake.get("uma", content)
    assert owner.status_code == 200 and owner.content[:4] == b"PAR1"
    collections, items = _stac_ids(lake, "uma")
    assert collection in collections and f"{collection}/{item}" in items
    assert lake.get("uma", f"/stac/collections/{collection}/items/{item}").status_code == 200
    assert lake.get("uma", "/api/v1/lake/dids", scope="streams").json()["total"] >= 3  # container, dataset, file
    assert edr_id in lake.runtime.collections.readable_ids(UMA)

    granted = lake.http.put(f"/api/v1/twins/{twin_id}/grants/xb1", headers=lake.as_("uma"), json={"permission": "read"})
    assert granted.status_code == 200
    assert lake.get("xb1", content).content == owner.content
    assert collection in _stac_ids(lake, "xb1")[0]
    assert edr_id in lake.runtime.collections.readable_ids(Principal("xb1", Role.USER))


def test_run_results_in_the_lake_are_read_as_the_run_is(lake: Lake) -> None:
    run = _finished_run(lake, _twin(lake))
    (asset,) = run.assets
    content = f"/api/v1/lake/dids/{asset['did']}/content"

    assert lake.get("xb1", f"/api/v1/runs/{run.id}").status_code == 404
    assert lake.get("xb1", content).status_code == 404
    assert lake.get("xb1", f"/api/v1/lake/dids/results:{run.id}").status_code == 404
    container = lake.get("xb1", "/api/v1/lake/dids/results:workflow-results").json()  # shared: members filtered
    assert f"results:{run.id}" not in container["children"]
    assert lake.get("xb1", "/stac/collections/workflow-results/items").json()["features"] == []
    assert lake.get("xb1", f"/stac/collections/workflow-results/items/{run.id}").status_code == 404
    assert lake.get("xb1", "/stac/search", ids=run.id).json()["numberMatched"] == 0

    assert lake.get("uma", content).status_code == 200
    assert lake.get("uma", f"/stac/collections/workflow-results/items/{run.id}").status_code == 200
    assert lake.get("uma", "/stac/search", ids=run.id).json()["numberMatched"] == 1


def test_what_a_user_uploads_is_theirs(lake: Lake, tmp_path: Path) -> None:
    path = tmp_path / "notes.bin"
    path.write_bytes(b"uma's notes" * 100)
    with path.open("rb") as body:
        uploaded = lake.http.post("/api/v1/lake/uploads", headers=lake.as_("uma"), content=body.read(),
                                  params={"did": "uma:notes/a.bin", "endpoint": "disk"})
    assert uploaded.status_code == 201
    assert lake.get("uma", "/api/v1/lake/dids/uma:notes/a.bin/content").content == path.read_bytes()
    assert lake.get("xb1", "/api/v1/lake/dids/uma:notes/a.bin/content").status_code == 404
    assert lake.get("xb1", "/api/v1/lake/dids", scope="uma").json()["total"] == 0
    rule = lake.http.post("/api/v1/lake/rules", headers=lake.as_("xb1"),
                          json={"did": "uma:notes/a.bin", "copies": 1, "endpoints": "*"})
    assert rule.status_code == 404
    assert lake.http.post("/api/v1/lake/dids", headers=lake.as_("uma"), json={"did": "uma:set", "type": "dataset"}
                          ).status_code == 201
    into = lake.http.post("/api/v1/lake/uploads", headers=lake.as_("xb1"), content=b"xb1's bytes",
                          params={"did": "xb1:sneak.bin", "endpoint": "disk", "dataset": "uma:set"})
    assert into.status_code == 404  # refused before anything is written
    assert lake.get("xb1", "/api/v1/lake/dids/xb1:sneak.bin").status_code == 404


def _run_as(lake: Lake, who: str, graph: dict[str, Any]) -> WorkflowRun:
    with lake.runtime.db.session() as session:
        run_id = runs.submit(session, lake.runtime.workflows, principal=Principal(who, Role.USER),
                             process={"process_graph": graph}).id
    lake.runtime.workflows.notify()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lake.runtime.db.session(readonly=True) as session:
            run = session.get_one(WorkflowRun, run_id)
            if run.status in ("finished", "error", "canceled"):
                return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end")


def test_a_run_loads_only_lake_collections_its_owner_may_read(lake: Lake, tmp_path: Path) -> None:
    lat, lon = np.arange(45.0, 47.01, 0.5), np.arange(7.0, 9.01, 0.5)
    rain = xr.Dataset({"rain": (("time", "lat", "lon"), np.ones((2, lat.size, lon.size)), {"units": "mm h-1"})},
                      coords={"time": pd.date_range("2026-03-01", periods=2, freq="1h"), "lat": lat, "lon": lon})
    path = tmp_path / "rain.nc"
    rain.to_netcdf(path)
    headers = lake.as_("uma")
    assert lake.http.post("/api/v1/lake/dids", headers=headers, json={"did": "uma:field", "type": "dataset"}
                          ).status_code == 201
    assert lake.http.post("/api/v1/lake/uploads", headers=headers, content=path.read_bytes(),
                          params={"did": "uma:field/rain.nc", "endpoint": "disk", "dataset": "uma:field"}
                          ).status_code == 201
    graph = {"load": {"process_id": "load_collection", "arguments": {"id": "uma.field", "spatial_extent": None,
                                                                     "temporal_extent": None}},
             "peak": {"process_id": "max", "arguments": {"data": {"from_node": "load"}}, "result": True}}
    listed = {who: {c["id"] for c in lake.http.get("/openeo/1.2/collections", headers=lake.as_(who) if who else {}
                                                   ).json()["collections"]} for who in ("uma", "xb1", "")}
    assert "uma.field" in listed["uma"] and "uma.field" not in listed["xb1"] | listed[""]
    assert lake.get("xb1", "/openeo/1.2/collections/uma.field").status_code == 404
    assert lake.get("uma", "/openeo/1.2/collections/uma.field").status_code == 200
    theirs = _run_as(lake, "xb1", graph)
    assert theirs.status == "error" and "no collection 'uma.field'" in str(theirs.error)
    assert _run_as(lake, "uma", graph).status == "finished"


def _fields(lake: Lake, tmp_path: Path, names: list[str]) -> None:
    """Datasets ``uma:<name>`` of one small netCDF field each, uploaded by uma."""
    lat, lon = np.arange(45.0, 46.01, 0.5), np.arange(7.0, 8.01, 0.5)
    for name in names:
        path = tmp_path / f"{name}.nc"
        xr.Dataset({"rain": (("lat", "lon"), np.ones((lat.size, lon.size)), {"units": "mm h-1"})},
                   coords={"lat": lat, "lon": lon}).to_netcdf(path)
        headers = lake.as_("uma")
        assert lake.http.post("/api/v1/lake/dids", headers=headers, json={"did": f"uma:{name}", "type": "dataset"}
                              ).status_code == 201
        assert lake.http.post("/api/v1/lake/uploads", headers=headers, content=path.read_bytes(), params={
            "did": f"uma:{name}/{name}.nc", "endpoint": "disk", "dataset": f"uma:{name}"}).status_code == 201


def test_the_edr_listing_asks_the_store_as_often_for_many_lake_collections_as_for_one(lake: Lake,
                                                                                        tmp_path: Path) -> None:
    """The replicas and the grants of a listing's collections are asked for together, not one query each."""
    from twinengine.access.listing import list_collections

    def listing(principal: Principal) -> tuple[int, int]:
        with statements(lake) as seen:  # type: ignore[arg-type]  (it needs the runtime only)
            listed = list_collections(lake.runtime.access, principal=principal, base="http://testserver/edr")
        return len([c for c in listed if c["id"].startswith("uma.")]), len(seen)

    admin = Principal("root", Role.ADMIN)
    _fields(lake, tmp_path, ["field-a"])
    one = {"uma": listing(UMA), "admin": listing(admin)}
    _fields(lake, tmp_path, ["field-b", "field-c", "field-d", "field-e"])
    five = {"uma": listing(UMA), "admin": listing(admin)}
    assert {who: n for who, (n, _) in one.items()} == {"uma": 1, "admin": 1}
    assert {who: n for who, (n, _) in five.items()} == {"uma": 5, "admin": 5}
    assert {who: asked for who, (_, asked) in five.items()} == {who: asked for who, (_, asked) in one.items()}


def _forecast_item(lake: Lake, who: str, scope: str) -> None:
    """``who`` makes ``scope:rain-forecast`` (a container) and ``scope:fake-forecast`` (a dataset) and attaches
    one to the other: a new item of a collection the river-reach app's ``on_new_forecast`` names."""
    headers = lake.as_(who)
    for did, kind in ((f"{scope}:rain-forecast", "container"), (f"{scope}:fake-forecast", "dataset")):
        assert lake.http.post("/api/v1/lake/dids", headers=headers, json={"did": did, "type": kind}).status_code == 201
    attached = lake.http.post(f"/api/v1/lake/dids/{scope}:rain-forecast/members", headers=headers,
                              json={"children": [f"{scope}:fake-forecast"]})
    assert attached.status_code == 200


def _forecast_runs(lake: Lake, twin_id: str) -> list[WorkflowRun]:
    for _ in range(2):  # the engine's own trigger loop runs too: however many passes, the same runs
        workflows_triggers.run_once(lake.runtime.workflows)
    with lake.runtime.db.session(readonly=True) as session:
        trigger = session.scalars(select(Trigger).where(Trigger.twin_id == twin_id, Trigger.kind == "dataset")).one()
        return list(session.scalars(select(WorkflowRun).where(WorkflowRun.trigger_id == trigger.id)))


def test_another_users_container_fires_no_trigger_of_the_twin(lake: Lake) -> None:
    twin_id = _twin(lake)
    time.sleep(0.01)  # the items come after the twin's trigger
    _forecast_item(lake, "xb1", "xb1")
    assert _forecast_runs(lake, twin_id) == []

    _forecast_item(lake, "uma", "uma")  # the twin's owner's own forecast fires it, once
    (started,) = _forecast_runs(lake, twin_id)
    assert started.owner == "uma" and started.workflow == "forecast"
    assert started.parameters["collection"] == "rain-forecast"
