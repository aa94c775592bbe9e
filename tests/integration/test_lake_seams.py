"""The seams between streams, the lake and workflows, with real parts: compacted stream segments (of both
stream logs) become checksummed lake datasets (STAC-visible) that ``load_stream`` reads back in a graph; fusion
processes in a graph give what the Python API gives; run results are kept in the lake with their provenance linked."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sqlalchemy import select
from starlette.testclient import TestClient

from helpers import MINIMAL_STATE, RIVER_REACH, admin_token, make_app
from streams_fixtures import NATS_URL, drop_streams, gauge, stream_backend  # noqa: F401
from twinengine.access import fusion
from twinengine.api import create_app
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.daemons.streams_compactor import Compactor
from twinengine.lake.endpoints import add_endpoint
from twinengine.lake.models import Did
from twinengine.lake.schemas import EndpointCreate
from twinengine.lake.stream_history import LakeSegmentSink
from twinengine.runtime import Runtime
from twinengine.streams import records
from twinengine.streams.hub import stream_key
from twinengine.streams.models import CompactedSegment
from twinengine.streams.service import append_table
from twinengine.twins import service as twins
from twinengine.workflows import service as runs
from twinengine.workflows.fusion_processes import as_dataset
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.processes import to_cube
from twinengine.workflows.provenance import provenance_of
from twinengine.workflows.stream_processes import to_records_dataset

UMA = Principal("uma", Role.USER)


def _runtime(tmp_path: Path, database_url: str | None, log: str) -> Runtime:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, stream_backend=log,
                        nats_url=NATS_URL, stream_segment_bytes=4096, stream_segment_entries=6, lake_endpoint="disk")
    rt = Runtime.from_settings(settings)
    rt.start()
    with rt.db.session() as session:
        add_endpoint(session, rt.lake, principal=SYSTEM,
                     spec=EndpointCreate(name="disk", protocol="file", location=str(tmp_path / "disk")))
    return rt


@pytest.fixture
def runtime(tmp_path: Path, database_url: str | None) -> Iterator[Runtime]:
    rt = _runtime(tmp_path, database_url, "local")
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def any_log_runtime(tmp_path: Path, database_url: str | None, stream_backend: str,  # noqa: F811
                    drop_streams: list[Any]) -> Iterator[Runtime]:  # noqa: F811
    """A runtime on each stream log; drop_streams closes a nats one after dropping its twins' streams."""
    rt = _runtime(tmp_path, database_url, stream_backend)
    drop_streams.append(rt)
    try:
        yield rt
    finally:
        if stream_backend != "nats":
            rt.close()


def _twin(rt: Runtime, app: Path, ref: str, name: str, parameters: dict[str, Any]) -> str:
    with rt.db.session() as session:
        publish(session, rt.blobs, principal=SYSTEM, archive=pack(app), max_archive_bytes=10**8,
                max_unpacked_bytes=10**8, steps=rt.publish_steps)
        return twins.create_twin(session, principal=UMA, app=ref, name=name, parameters=parameters).id


def _append(rt: Runtime, twin_id: str, stream: str, rows: list[dict[str, Any]], batch: int = 20) -> None:
    with rt.db.session(readonly=True) as session:
        declared = twins.manifest_for(session, twins.get_twin(session, principal=UMA, ref=twin_id)).streams[stream]
    for start in range(0, len(rows), batch):
        table = records.check_records(declared, rows[start:start + batch])
        rt.streams.append(stream_key(twin_id, stream), table, time_field=declared.time_field)


def _run(rt: Runtime, twin_id: str, graph: dict[str, Any], timeout: float = 60.0) -> WorkflowRun:
    with rt.db.session() as session:
        run_id = runs.submit(session, rt.workflows, principal=UMA, process={"process_graph": graph},
                             twin_ref=twin_id).id
    rt.workflows.notify()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.db.session(readonly=True) as session:
            run = session.get_one(WorkflowRun, run_id)
            if run.status in ("finished", "error", "canceled"):
                assert run.status == "finished", run.error
                return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s")


def _described(rt: Runtime, run_id: str, key: str, timeout: float = 60.0) -> None:
    """Wait until the lake's item of the run's results has the property ``key``: the runner describes a finished
    run's results (``describe_results``) after the commit that ends it, in one of its own."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.db.session(readonly=True) as session:
            dataset = session.scalar(select(Did).where(Did.scope == "results", Did.name == run_id))
            if dataset is not None and key in ((dataset.meta or {}).get("properties") or {}):
                return
        time.sleep(0.05)
    raise AssertionError(f"the results of run {run_id} were not described with {key} within {timeout}s")


def test_stream_history_lands_in_the_lake_and_load_stream_reads_it_back(any_log_runtime: Runtime,
                                                                        tmp_path: Path) -> None:
    runtime = any_log_runtime
    twin_id = _twin(runtime, RIVER_REACH, "river-reach@0.1.0", "reach", {"station": "RR-01"})
    sent = [gauge(i) for i in range(400)]
    _append(runtime, twin_id, "gauges", sent)
    compactor = Compactor(runtime)  # the runtime's sink: the lake, as TWIN_LAKE_ENDPOINT=disk says
    assert isinstance(compactor.sink, LakeSegmentSink)
    with runtime.db.session() as session:
        written = compactor.run_once(session)
    with runtime.db.session(readonly=True) as session:
        segments = list(session.scalars(select(CompactedSegment).order_by(CompactedSegment.first_offset)))
        files = {d.name: d for d in session.scalars(select(Did).where(Did.scope == "streams", Did.type == "file"))}
    assert written == len(segments) >= 2 and all(s.dataset_id for s in segments)
    for segment in segments:  # registered means checksummed: the lake file has the compactor's sha256
        lake_file = files[f"{twin_id}-gauges/{segment.first_offset:020d}.parquet"]
        assert lake_file.sha256 == segment.sha256 and lake_file.bytes == segment.size

    admin = admin_token(runtime.settings)
    with TestClient(create_app(runtime=runtime)) as http:
        page = http.get(f"/stac/collections/{twin_id}-gauges/items",
                        headers={"Authorization": f"Bearer {admin}"}).json()
    items = {f["id"]: f for f in page["features"]}
    assert set(items) == {s.dataset_id.partition(":")[2] for s in segments if s.dataset_id}
    first = items[segments[0].dataset_id.partition(":")[2]]  # type: ignore[union-attr]
    (asset,) = first["assets"].values()
    assert asset["file:checksum"] == "1220" + segments[0].sha256 and asset["file:size"] == segments[0].size
    assert first["properties"]["start_datetime"].startswith("2026-03-01T00:00:00")

    for segment in segments:  # the compactor's local copies go: history now comes from the lake
        (runtime.segment_root / segment.path).unlink()
    run = _run(runtime, twin_id, {"load": {"process_id": "load_stream", "arguments": {"stream": "gauges"},
                                           "result": True}})
    value = run.value
    assert value["level"]["coords"]["record"] == list(range(400))
    assert value["level"]["data"] == [r["level"] for r in sent]
    assert value["station"]["data"] == [r["station"] for r in sent]
    assert value["level"]["coords"]["time"][0] == "2026-03-01T00:00:00"
    assert segments[-1].last_offset < 399  # the records after it came from the log's open tail

    window = _run(runtime, twin_id, {"load": {"process_id": "load_stream", "arguments": {
        "stream": "gauges", "temporal_extent": ["2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z"]}, "result": True}})
    assert window.value["level"]["coords"]["record"] == [4, 5, 6, 7]


OBS_STREAMS = {"obs": {"time_field": "time", "fields": {
    "time": {"type": "timestamp"}, "lon": {"type": "float"}, "lat": {"type": "float"},
    "level": {"type": "float", "unit": "m"}}}}


def _field(step: float, hours: int = 6) -> xr.Dataset:
    lat = np.arange(45.0, 47.0 + step / 2, step)
    lon = np.arange(7.0, 9.0 + step / 2, step)
    t = pd.date_range("2026-03-01", periods=hours, freq="1h")
    tt, yy, xx = np.meshgrid(np.arange(hours), lat, lon, indexing="ij")
    rain = (0.5 * tt + np.sin(yy) * 3 + np.cos(xx) * 2).astype("float64")
    return xr.Dataset({"rain": (("time", "lat", "lon"), rain, {"units": "mm h-1"})},
                      coords={"time": t, "lat": lat, "lon": lon})


def test_a_graph_regrids_and_collocates_as_the_python_api_does(runtime: Runtime, tmp_path: Path) -> None:
    folder = runtime.settings.data_dir / "collections"
    folder.mkdir(parents=True, exist_ok=True)
    fine, coarse = _field(0.1), _field(0.5)
    fine.to_netcdf(folder / "fine.nc")
    coarse.to_netcdf(folder / "coarse.nc")
    app = make_app(tmp_path, name="obs-app", manifest={"streams": OBS_STREAMS, "state": MINIMAL_STATE})
    twin_id = _twin(runtime, app, "obs-app@1.0.0", "obs", {"station": "S1"})
    obs = [{"time": f"2026-03-01T0{h}:30:00Z", "lon": 7.3 + 0.2 * h, "lat": 45.4 + 0.25 * h, "level": 1.0 + h}
           for h in range(5)]
    _append(runtime, twin_id, "obs", obs)
    graph = {
        "fine": {"process_id": "load_collection", "arguments": {"id": "fine", "spatial_extent": None,
                                                                 "temporal_extent": None}},
        "coarse": {"process_id": "load_collection", "arguments": {"id": "coarse", "spatial_extent": None,
                                                                   "temporal_extent": None}},
        "regridded": {"process_id": "regrid", "arguments": {"data": {"from_node": "fine"},
                                                            "target": {"from_node": "coarse"},
                                                            "method": "conservative"}},
        "points": {"process_id": "load_stream", "arguments": {"stream": "obs"}},
        "sampled": {"process_id": "collocate", "arguments": {"data": {"from_node": "points"},
                                                             "field": {"from_node": "regridded"},
                                                             "prefix": "grid_"}, "result": True},
    }
    run = _run(runtime, twin_id, graph)

    expected_grid = fusion.regrid(to_cube(xr.open_dataset(folder / "fine.nc")),
                                  to_cube(xr.open_dataset(folder / "coarse.nc")), method="conservative")
    table, time_field, _ = runtime.read_stream(UMA, twin_id, "obs", None, None)
    expected = fusion.collocate(to_records_dataset(table, time_field), as_dataset(expected_grid, "field"),
                                prefix="grid_")
    assert run.value["grid_rain"]["data"] == pytest.approx(expected["grid_rain"].values.tolist())
    assert not np.isnan(expected["grid_rain"].values).any()
    assert run.value["level"]["data"] == [o["level"] for o in obs]


def test_results_are_kept_in_the_lake_with_their_provenance(runtime: Runtime, tmp_path: Path) -> None:
    twin_id = _twin(runtime, RIVER_REACH, "river-reach@0.1.0", "reach", {"station": "RR-01"})
    run = _run(runtime, twin_id, {
        "sum": {"process_id": "add", "arguments": {"x": 40, "y": 2}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "sum"}, "format": "JSON"},
                 "result": True}})
    (asset,) = run.assets
    assert asset["did"] == f"results:{run.id}/{asset['name']}"
    local = runtime.workflows.results.path(run.id, asset["name"])
    assert hashlib.sha256(local.read_bytes()).hexdigest() == asset["sha256"]
    with runtime.db.session(readonly=True) as session:
        lake_file = session.scalar(select(Did).where(Did.scope == "results", Did.name == f"{run.id}/{asset['name']}"))
        dataset = session.scalar(select(Did).where(Did.scope == "results", Did.name == run.id))
    assert lake_file is not None and lake_file.sha256 == asset["sha256"] and lake_file.bytes == asset["size"]
    assert dataset is not None and dataset.meta["provenance"] == f"/api/v1/runs/{run.id}/provenance"
    document = provenance_of(run)
    assert document is not None
    entities = document["entity"]
    assert entities[f"twin:result/{run.id}/{asset['name']}"]["twin:lakeDid"] == asset["did"]
    admin = admin_token(runtime.settings)
    with TestClient(create_app(runtime=runtime)) as http:
        item = http.get(f"/stac/collections/workflow-results/items/{run.id}",
                        headers={"Authorization": f"Bearer {admin}"})
    assert item.status_code == 200 and item.json()["properties"]["provenance"].endswith("/provenance")


def test_the_stac_item_of_results_lists_the_values_written_and_the_quality_of_the_inputs(runtime: Runtime) -> None:
    twin_id = _twin(runtime, RIVER_REACH, "river-reach@0.1.0", "reach", {"station": "RR-01"})
    readings = [gauge(i) for i in range(6)]
    readings[2]["level"] = 99.0  # outside the declared range: a bad record the run reads
    with runtime.db.session(readonly=True) as session:
        twin = twins.get_twin(session, principal=UMA, ref=twin_id)
        declared = twins.manifest_for(session, twin).streams["gauges"]
        session.expunge(twin)
    append_table(runtime.streams, twin, "gauges", declared, records.check_records(declared, readings))
    peak = {"value": 2.1, "uncertainty": {"std": 0.3, "members": [1.8, 2.4]}}
    run = _run(runtime, twin_id, {
        "load": {"process_id": "load_stream", "arguments": {"stream": "gauges"}},
        "state": {"process_id": "update_twin_state", "arguments": {"reported": {"forecast_peak_level": peak,
                                                                                "level": 1.2}}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "state"}, "format": "JSON"},
                 "result": True}})
    _described(runtime, run.id, "twin:input_quality")  # with twin:state, in the one commit that describes it
    admin = admin_token(runtime.settings)
    with TestClient(create_app(runtime=runtime)) as http:
        item = http.get(f"/stac/collections/workflow-results/items/{run.id}",
                        headers={"Authorization": f"Bearer {admin}"})
    assert item.status_code == 200
    properties = item.json()["properties"]
    written = properties["twin:state"][twin_id]
    doubt = {"flag": "bad", "run": run.id, "inputs": [f"stream:{twin_id}/gauges"]}  # read before the write
    assert written["forecast_peak_level"] == {"kind": "reported", "value": 2.1, "unit": "m", "quality": doubt,
                                              "uncertainty": {"std": 0.3, "members": [1.8, 2.4]}}
    assert written["level"] == {"kind": "reported", "value": 1.2, "unit": "m", "quality": doubt}
    (used,) = properties["twin:input_quality"]["inputs"]
    assert properties["twin:input_quality"]["flag"] == "bad" and used["records"]["bad"] == 1


def test_a_new_lake_item_fires_the_dataset_trigger_once(runtime: Runtime, tmp_path: Path) -> None:
    from twinengine.daemons import workflows_triggers
    from twinengine.lake.dids import add_did, attach
    from twinengine.lake.schemas import DidType
    from twinengine.lake.uploads import upload_file
    from twinengine.workflows.models import Trigger, TriggerEvent

    def item(name: str) -> None:
        path = tmp_path / f"{name}.nc"
        _field(0.5).to_netcdf(path)
        with runtime.db.session() as session:
            add_did(session, principal=SYSTEM, did="forecasts:rain-forecast-lake", type=DidType.CONTAINER,
                    exist_ok=True)
            add_did(session, principal=SYSTEM, did=f"forecasts:{name}", type=DidType.DATASET)
        upload_file(runtime.db, runtime.lake, principal=SYSTEM, path=path, did=f"forecasts:{name}/rain.nc",
                    endpoint="disk", dataset=f"forecasts:{name}")
        with runtime.db.session() as session:
            attach(session, principal=SYSTEM, parent="forecasts:rain-forecast-lake", children=[f"forecasts:{name}"])

    item("before")  # history: in the collection before the twin's trigger existed
    time.sleep(0.01)
    twin_id = _twin(runtime, RIVER_REACH, "river-reach@0.1.0", "reach", {"station": "RR-01"})
    time.sleep(0.01)
    item("rf-0301")
    for _ in range(3):  # the engine's own trigger loop runs too: however many passes, one event, one run
        workflows_triggers.run_once(runtime.workflows)
    with runtime.db.session(readonly=True) as session:
        trigger = session.scalars(select(Trigger).where(Trigger.twin_id == twin_id, Trigger.kind == "dataset")).one()
        events = list(session.scalars(select(TriggerEvent).where(TriggerEvent.trigger_id == trigger.id)))
        started = list(session.scalars(select(WorkflowRun).where(WorkflowRun.trigger_id == trigger.id)))
    assert len(events) == 1 and len(started) == 1 and events[0].run_id == started[0].id
    assert events[0].data["collection"] == "rain-forecast-lake" and events[0].data["item"] == "rf-0301"
    assert events[0].data["dataset"] == "forecasts.rf-0301"  # what load_collection opens
    assert started[0].parameters["collection"] == "rain-forecast-lake"


def test_a_refusing_lake_leaves_results_kept_locally(runtime: Runtime) -> None:
    runtime.workflows.results.endpoint = "nowhere"  # type: ignore[attr-defined]  # as a mistyped TWIN_LAKE_ENDPOINT
    twin_id = _twin(runtime, RIVER_REACH, "river-reach@0.1.0", "reach", {"station": "RR-01"})
    run = _run(runtime, twin_id, {"sum": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}})
    (asset,) = run.assets
    assert "did" not in asset and run.value == 3
    local = runtime.workflows.results.path(run.id, asset["name"])
    assert hashlib.sha256(local.read_bytes()).hexdigest() == asset["sha256"]


def test_segments_the_lake_refused_are_registered_on_a_later_pass(runtime: Runtime, tmp_path: Path) -> None:
    twin_id = _twin(runtime, RIVER_REACH, "river-reach@0.1.0", "reach", {"station": "RR-01"})
    _append(runtime, twin_id, "gauges", [gauge(i) for i in range(200)])
    compactor = Compactor(runtime)
    compactor.sink.endpoint = "later"  # type: ignore[attr-defined]  # an endpoint that does not exist yet
    with runtime.db.session() as session:
        written = compactor.run_once(session)
    with runtime.db.session(readonly=True) as session:
        assert written >= 1 and all(s.dataset_id is None for s in session.scalars(select(CompactedSegment)))
    with runtime.db.session() as session:
        add_endpoint(session, runtime.lake, principal=SYSTEM,
                     spec=EndpointCreate(name="later", protocol="file", location=str(tmp_path / "later")))
    with runtime.db.session() as session:
        assert compactor.run_once(session) == 0  # nothing new to compact; the old ones are registered now
    with runtime.db.session(readonly=True) as session:
        segments = list(session.scalars(select(CompactedSegment).order_by(CompactedSegment.first_offset)))
        name = (segments[0].dataset_id or "").partition(":")[2]
        first = session.scalar(select(Did).where(Did.scope == "streams", Did.name == name))
    assert len(segments) == written and all(s.dataset_id for s in segments)
    assert first is not None and first.start_time is not None
    assert first.start_time.isoformat().startswith("2026-03-01T00:00")  # the time extent, read back from Parquet
