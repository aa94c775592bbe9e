"""Workflow runs through the REST API on SQLite and PostgreSQL: validation with openEO codes naming the node,
a twin's forecast workflow with an app process writing twin state, the cache, retries, cancel, UDFs,
provenance."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from helpers import RIVER_REACH, Engine, admin_token, make_app
from twinengine._version import __version__
from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import TwinEngineError
from twinengine.runtime import Runtime
from twinengine.workflows.models import WorkflowRun
from workflow_data import write_collection


def reducer(process_id: str) -> dict[str, Any]:
    return {"process_graph": {"r": {"process_id": process_id, "arguments": {"data": {"from_parameter": "data"}},
                                    "result": True}}}


def mean_graph(fmt: str = "netCDF") -> dict[str, Any]:
    return {"process_graph": {
        "load": {"process_id": "load_collection", "arguments": {
            "id": "rain", "spatial_extent": {"west": 7.0, "south": 46.0, "east": 8.0, "north": 46.5},
            "temporal_extent": ["2026-03-01", "2026-03-02"], "bands": ["rain"]}},
        "mean": {"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "load"}, "dimension": "t",
                                                                 "reducer": reducer("mean")}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "mean"}, "format": fmt},
                 "result": True}}}


@pytest.fixture
def user(engine: Engine) -> Client:
    write_collection(engine.runtime.data_dir / "collections")
    return engine.as_role("uma", "user")


@pytest.mark.parametrize(("graph", "code", "node"), [
    ({"a": {"process_id": "nope", "arguments": {}, "result": True}}, "ProcessUnsupported", "a"),
    ({"a": {"process_id": "add", "arguments": {"x": 1}, "result": True}}, "ProcessParameterMissing", "a"),
    ({"a": {"process_id": "add", "arguments": {"x": 1, "y": 2, "z": 3}, "result": True}},
     "ProcessParameterUnsupported", "a"),
    ({"a": {"process_id": "add", "arguments": {"x": "one", "y": 2}, "result": True}}, "ProcessParameterInvalid", "a"),
    ({"a": {"process_id": "add", "arguments": {"x": {"from_node": "b"}, "y": 1}, "result": True},
      "b": {"process_id": "add", "arguments": {"x": {"from_node": "a"}, "y": 1}}}, "ProcessGraphInvalid", "a"),
    ({"a": {"process_id": "add", "arguments": {"x": {"from_parameter": "nobody"}, "y": 1}, "result": True}},
     "ProcessParameterMissing", "a"),
])
def test_invalid_graphs_are_refused_naming_the_node(user: Client, engine: Engine, graph: dict[str, Any], code: str,
                                                    node: str) -> None:
    before = user.workflows.runs().total
    response = engine.http.post("/api/v1/runs", json={"process": {"process_graph": graph}},
                                headers={"Authorization": user._auth["Authorization"]})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == code and f"'{node}'" in body["message"]
    assert user.workflows.runs().total == before  # nothing half-written


def test_sync_run_cache_and_no_cache(user: Client, tmp_path: Path) -> None:
    first = user.workflows.submit(mean_graph(), sync=True)
    assert first.status == "finished" and first.progress == 100
    assert {n.node_id: n.status for n in first.nodes} == {"load": "finished", "mean": "finished", "save": "finished"}
    path = user.workflows.download(first.id, "result.nc", tmp_path / "a.nc")
    import xarray as xr

    from workflow_data import rain_cube

    got = xr.open_dataset(path, engine="h5netcdf")["rain"]
    want = rain_cube()["rain"].sel(lon=slice(7.0, 8.0), lat=slice(46.0, 46.5)).isel(time=slice(0, 24)).mean("time")
    np.testing.assert_allclose(got.values, want.values, rtol=1e-6)
    again = user.workflows.submit(mean_graph(), sync=True)
    assert {n.node_id: n.status for n in again.nodes} == {"load": "skipped", "mean": "skipped", "save": "cached"}
    assert again.assets[0]["sha256"] == first.assets[0]["sha256"]
    fresh = user.workflows.submit(mean_graph(), sync=True, no_cache=True)
    assert {n.status for n in fresh.nodes} == {"finished"}
    np.testing.assert_allclose(xr.open_dataset(user.workflows.download(fresh.id, "result.nc", tmp_path / "b.nc"),
                                               engine="h5netcdf")["rain"].values, want.values, rtol=1e-6)


def test_async_run_provenance_and_logs(user: Client) -> None:
    run = user.workflows.submit(mean_graph("JSON"))
    assert run.status in ("queued", "running", "finished")
    done = user.workflows.wait(run.id, timeout=60)
    assert done.status == "finished", done.error
    doc = user.workflows.provenance(run.id)
    entities = doc["entity"]
    rain = [v for v in entities.values() if v.get("twin:collection") == "rain"]
    # the test's file collection keeps no version: the dataset is named alone, never with the text "None"
    assert len(rain) == 1 and rain[0].get("twin:version") != "None"
    asset = next(v for k, v in entities.items() if k.endswith("/result.json"))
    assert asset["twin:sha256"] == done.assets[0]["sha256"]
    assert f"twin:run/{run.id}" in doc["activity"] and "twin:identity/uma" in doc["agent"]
    assert any("save_result" in line.message for line in user.workflows.logs(run.id))
    assert any(link["rel"] == "provenance" for link in done.links)


def test_provenance_is_rendered_from_what_the_run_kept(user: Client, engine: Engine) -> None:
    """A run keeps the facts of its provenance and the document is rendered when asked for; a run that ended
    before the facts were kept answers the document it stored."""
    run = user.workflows.submit(mean_graph("JSON"))
    assert user.workflows.wait(run.id, timeout=60).status == "finished"
    with engine.runtime.db.session(readonly=True) as session:
        row = session.get(WorkflowRun, run.id)
        assert row is not None and row.provenance is None and row.lineage is not None
        assert row.lineage["engine_version"] == __version__ and row.lineage["inputs"][0]["collection"] == "rain"
    document = user.workflows.provenance(run.id)
    assert user.workflows.provenance(run.id) == document
    assert f"twin:engine/{__version__}" in document["agent"]
    stored = json.loads(json.dumps(document).replace(f"twin:engine/{__version__}", "twin:engine/0.0.1"))
    with engine.runtime.db.session() as session:
        row = session.get(WorkflowRun, run.id)
        assert row is not None
        row.provenance, row.lineage = stored, None
    assert user.workflows.provenance(run.id) == stored
    assert [entry.collection for entry in user.workflows.quality(run.id).inputs] == ["rain"]


def publish_river_reach(engine: Engine) -> Client:
    dev = engine.as_role("ada", "developer")
    dev.publish_app(RIVER_REACH)
    return dev


def forecast_cube(engine: Engine, name: str = "rain-forecast", peak: float = 12.0) -> None:
    from workflow_data import rain_cube

    ds = rain_cube(days=2)
    ds["rain"].values[:] = 0.0
    ds["rain"].values[6:12] = peak
    write_collection(engine.runtime.data_dir / "collections", name, ds)


def test_twin_forecast_workflow_runs_the_app_process_and_writes_state(engine: Engine, user: Client) -> None:
    publish_river_reach(engine)
    processes = engine.http.get("/openeo/1.2/processes").json()["processes"]
    app_proc = next(p for p in processes if p["id"] == "forecast_level")
    assert app_proc["namespace"] == "river-reach" and app_proc["parameters"][0]["name"] == "rain"
    forecast_cube(engine)
    user.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    run = user.workflows.run("reach", "forecast", {"alert_level": 0.5}, sync=True)
    assert run.status == "finished", run.error
    levels = run.value
    assert isinstance(levels, list) and len(levels) == 48 and max(levels) > levels[0]
    state = user.get_state("reach").reported
    assert state["forecast_peak_level"].value == pytest.approx(max(levels))
    assert state["forecast_alert"].value is True
    assert {n.node_id: n.status for n in run.nodes}["state"] == "finished"
    # The same run again: the forecast comes from the cache, the state is written again (a side effect).
    again = user.workflows.run("reach", "forecast", {"alert_level": 0.5}, sync=True)
    statuses = {n.node_id: n.status for n in again.nodes}
    assert statuses["save"] == "cached" and statuses["state"] == "finished" and statuses["load"] == "skipped"
    assert user.get_state("reach").revision == state["forecast_peak_level"].revision + 1
    with pytest.raises(TwinEngineError) as info:
        user.workflows.run("reach", "nowcast")
    assert info.value.code == "WorkflowNotFound"
    with pytest.raises(TwinEngineError) as info:
        user.workflows.run("reach", "forecast", {"alert_level": "high"})
    assert info.value.code == "ProcessParameterInvalid" and "alert_level" in info.value.message
    other = engine.as_role("otto", "user")
    with pytest.raises(TwinEngineError) as info:
        other.workflows.run("reach", "forecast")
    assert info.value.status == 403


FLAKY = '''
from twinengine.workflows.apps import app_process

CALLS = {"n": 0}


@app_process(summary="Fails the first two calls", cacheable=False)
def flaky(x: float) -> float:
    CALLS["n"] += 1
    if CALLS["n"] <= 2:
        raise RuntimeError(f"transient failure {CALLS['n']}")
    return x * 2
'''


def test_retry_policy_per_node(engine: Engine, tmp_path: Path, user: Client) -> None:
    folder = make_app(tmp_path, name="flaky-app", files={"flaky_app/procs.py": FLAKY})
    engine.as_role("ada", "developer").publish_app(folder)
    graph = {"process_graph": {"f": {"process_id": "flaky", "namespace": "flaky-app", "arguments": {"x": 21},
                                     "result": True}}}
    failed = user.workflows.submit(graph, sync=True)
    assert failed.status == "error" and "transient failure 1" in failed.error["message"]
    assert failed.error["code"] == "ProcessFailed"
    retried = user.workflows.submit(graph, sync=True, options={"node_retry": {"f": {"max_attempts": 3}}})
    assert retried.status == "finished" and retried.value == 42
    assert retried.nodes[0].attempts == 2  # the second call of this run (third overall) succeeded


UDF_OK = "def apply_datacube(cube, context):\n    return cube * context['factor']\n"
UDF_LOOP = "def udf(data, context):\n    while True:\n        pass\n"
UDF_CRASH = "import os, signal\ndef udf(data, context):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
UDF_SLEEP = "import time\ndef udf(data, context):\n    time.sleep(10**6)\n"
UDF_EXIT = "import os\ndef udf(data, context):\n    os._exit(7)\n"


def udf_graph(code: str) -> dict[str, Any]:
    return {"process_graph": {
        "load": {"process_id": "load_collection", "arguments": {
            "id": "rain", "spatial_extent": None, "temporal_extent": ["2026-03-01", "2026-03-01T03:00:00Z"],
            "bands": ["rain"]}},
        "udf": {"process_id": "run_udf", "arguments": {"data": {"from_node": "load"}, "udf": code,
                                                       "runtime": "Python", "context": {"factor": 2}}},
        "sum": {"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "udf"}, "dimension": "t",
                                                                "reducer": reducer("sum")}, "result": True}}}


@pytest.mark.slow
def test_udfs_run_apart_with_a_time_limit(engine: Engine, user: Client) -> None:
    workflows = engine.runtime.workflows
    workflows.udf_timeout = 60.0  # the child imports numpy and xarray: seconds on a busy machine
    ok = user.workflows.submit(udf_graph(UDF_OK), sync=True)
    assert ok.status == "finished", ok.error
    from workflow_data import rain_cube

    expected = rain_cube()["rain"].isel(time=slice(0, 3)).sum("time").values * 2
    np.testing.assert_allclose(np.array(ok.value["data"])[0], expected, rtol=1e-5)  # bands, y, x
    crash = user.workflows.submit(udf_graph(UDF_CRASH), sync=True)
    assert crash.status == "error" and "killed by signal 9" in crash.error["message"]
    gone = user.workflows.submit(udf_graph(UDF_EXIT), sync=True)
    assert gone.status == "error" and "exited with status 7" in gone.error["message"]
    workflows.udf_timeout = 3.0
    loop = user.workflows.submit(udf_graph(UDF_LOOP), sync=True)
    assert loop.status == "error" and "did not finish within 3 s" in loop.error["message"]
    asleep = user.workflows.submit(udf_graph(UDF_SLEEP), sync=True)
    assert asleep.status == "error" and "did not finish within 3 s" in asleep.error["message"]
    assert engine.http.get("/health").status_code == 200  # the server is unharmed
    workflows.udf_timeout = 60.0
    again = user.workflows.submit(udf_graph(UDF_OK), sync=True, no_cache=True)
    assert again.status == "finished", again.error  # and still runs UDFs


SLOW = '''
import time
from twinengine.workflows.apps import app_process


@app_process(summary="Sleeps", cacheable=False)
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
'''


def test_cancel_a_running_run(engine: Engine, tmp_path: Path, user: Client) -> None:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="slow-app",
                                                            files={"slow_app/procs.py": SLOW}))
    graph = {"process_graph": {
        "a": {"process_id": "nap", "namespace": "slow-app", "arguments": {"seconds": 3.0}},
        "b": {"process_id": "nap", "namespace": "slow-app", "arguments": {"seconds": {"from_node": "a"}},
              "result": True}}}  # 6 s in all: time to cancel it while it runs, even on a loaded machine
    run = user.workflows.submit(graph)
    deadline = time.monotonic() + 30
    while user.workflows.get(run.id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    user.workflows.cancel(run.id)
    final = user.workflows.wait(run.id, timeout=30)
    assert final.status == "canceled"
    assert {n.node_id: n.status for n in final.nodes}["b"] in ("pending", "running")
    queued = user.workflows.submit(graph)
    user.workflows.cancel(queued.id)
    assert user.workflows.wait(queued.id, timeout=30).status == "canceled"


def test_a_run_canceled_in_the_middle_of_a_udf_stops_it(engine: Engine, user: Client) -> None:
    """A UDF runs in a sandbox of its own: canceling its run kills that sandbox at once, as it kills an app
    process's worker. Without it the run waited for the UDF to end (here a 600 s sleep, longer than the wait
    below), then ended as canceled only at its next node."""
    code = "import time\n\ndef udf(data, context):\n    time.sleep(600)\n    return data\n"
    graph = {"process_graph": {"udf": {"process_id": "run_udf", "result": True, "arguments": {
        "data": [1, 2], "udf": code, "runtime": "Python"}}}}
    run = user.workflows.submit(graph)
    deadline = time.monotonic() + 30
    while user.workflows.get(run.id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # its UDF's sandbox has started
    user.workflows.cancel(run.id)
    final = user.workflows.wait(run.id, timeout=60)
    assert final.status == "canceled", final.status


def test_runs_in_progress_end_as_errors_when_the_engine_stops(engine: Engine, tmp_path: Path, user: Client) -> None:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="slow-app",
                                                            files={"slow_app/procs.py": SLOW}))

    def naps(first: float, then: float) -> dict[str, Any]:
        return {"process_graph": {
            "a": {"process_id": "nap", "namespace": "slow-app", "arguments": {"seconds": first}},
            "b": {"process_id": "nap", "namespace": "slow-app", "arguments": {"seconds": then}, "result": True}}}

    stops_between_nodes = user.workflows.submit(naps(1.0, 1.0))
    stuck_in_a_node = user.workflows.submit(naps(6.0, 0.0))
    deadline = time.monotonic() + 30
    while {user.workflows.get(r.id).status for r in (stops_between_nodes, stuck_in_a_node)} != {"running"}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    engine.runtime.workflows.stop(grace=2.0)
    for run in (stops_between_nodes, stuck_in_a_node):
        ended = user.workflows.get(run.id)
        assert ended.status == "error" and ended.error is not None, run.id
        assert ended.error["code"] == "EngineStopped" and "start the run again" in ended.error["message"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_synchronous_runs_leave_the_request_threads_to_short_requests(settings: Settings, tmp_path: Path) -> None:
    """With one request thread, two synchronous runs of a slow graph still leave it free: requests that
    may take long run on threads of their own (``long_request_threads``)."""
    settings = settings.model_copy(update={"request_threads": 1, "long_request_threads": 2})
    runtime = Runtime.from_settings(settings)
    app = create_app(runtime=runtime)
    try:
        with TestClient(app) as http:
            engine = Engine(runtime=runtime, app=app, http=http, admin_token=admin_token(settings))
            engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="slow-app",
                                                                    files={"slow_app/procs.py": SLOW}))
            user = engine.as_role("uma", "user")
            graph = {"process_graph": {"a": {"process_id": "nap", "namespace": "slow-app",
                                             "arguments": {"seconds": 8.0}, "result": True}}}
            # long enough that the second run starts before the first ends on a loaded machine
            with ThreadPoolExecutor(2) as pool:
                runs = [pool.submit(user.workflows.submit, graph, sync=True, no_cache=True) for _ in range(2)]
                deadline = time.monotonic() + 60
                while len(user.workflows.runs(status="running").items) < 2:  # short requests, while both run
                    assert time.monotonic() < deadline and not any(r.done() for r in runs)
                    time.sleep(0.05)
                assert user.me().name == "uma"
                assert len(user.workflows.runs(status="running").items) == 2  # answered while both still ran
                assert [r.result(timeout=60).status for r in runs] == ["finished", "finished"]
    finally:
        runtime.close()
