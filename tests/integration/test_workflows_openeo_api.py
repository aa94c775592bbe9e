"""openEO endpoints beyond what the official client's happy path touches, on SQLite and PostgreSQL: the
capabilities, STAC collections with the datacube extension, job update/delete/cancel, results served with
HTTP Range, user-defined processes, and errors in the openEO format."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from helpers import Engine, make_app
from twinengine.config import Settings
from workflow_data import write_collection

NAP = '''
import time
from twinengine.workflows.apps import app_process


@app_process(summary="Sleeps", cacheable=False)
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
'''

GRAPH = {"process_graph": {
    "load": {"process_id": "load_collection", "arguments": {"id": "rain", "spatial_extent": None,
                                                            "temporal_extent": None, "bands": ["rain"]}},
    "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "load"}, "format": "netCDF"},
             "result": True}}}


def test_openeo_capabilities_collections_and_auth(engine: Engine) -> None:
    write_collection(engine.runtime.data_dir / "collections")
    http = engine.http
    versions = http.get("/.well-known/openeo").json()["versions"]
    assert versions[0]["api_version"] == "1.2.0" and versions[0]["url"].endswith("/openeo/1.2/")
    caps = http.get("/openeo/1.2/").json()
    paths = {e["path"] for e in caps["endpoints"]}
    assert {"/result", "/jobs", "/jobs/{job_id}/results", "/process_graphs", "/validation"} <= paths
    token = engine.token("uma", "user")
    basic = base64.b64encode(f"uma:{token}".encode()).decode()
    issued = http.get("/openeo/1.2/credentials/basic", headers={"Authorization": f"Basic {basic}"}).json()
    headers = {"Authorization": f"Bearer basic//{issued['access_token']}"}
    assert http.get("/openeo/1.2/me", headers=headers).json()["user_id"] == "uma"
    wrong = base64.b64encode(f"otto:{token}".encode()).decode()
    denied = http.get("/openeo/1.2/credentials/basic", headers={"Authorization": f"Basic {wrong}"})
    assert denied.status_code == 401 and denied.json()["code"] == "TokenInvalid" and "id" in denied.json()
    assert http.get("/openeo/1.2/me").json()["code"] == "AuthenticationRequired"
    collection = http.get("/openeo/1.2/collections/rain", headers=headers).json()
    dims = collection["cube:dimensions"]
    assert dims["t"]["type"] == "temporal" and dims["x"]["extent"] == [7.0, 8.6] and dims["y"]["step"] == 0.125
    assert sorted(dims["bands"]["values"]) == ["rain", "temperature"]
    assert collection["cube:variables"]["rain"]["unit"] == "mm h-1"
    assert http.get("/openeo/1.2/collections/nope", headers=headers).json()["code"] == "CollectionNotFound"
    formats = http.get("/openeo/1.2/file_formats").json()["output"]
    assert {"netCDF", "GTiff", "JSON", "ZARR"} <= set(formats)


def test_a_bad_spatial_extent_is_an_openeo_error_naming_it(engine: Engine) -> None:
    """A bound that is missing or not a number is refused before anything is loaded (NaN and the infinities
    never get this far over HTTP: api/text.py refuses them in any body)."""
    write_collection(engine.runtime.data_dir / "collections")
    headers = {**engine.headers(engine.token("uma", "user")), "Content-Type": "application/json"}
    for extent in ('{"west": "7", "south": 46, "east": 8, "north": 46.5}', '{"west": 7, "south": 46, "east": 8}'):
        body = ('{"process": {"process_graph": {"load": {"process_id": "load_collection", "arguments": {"id": "rain", '
                f'"spatial_extent": {extent}, "temporal_extent": null}}}}, "save": {{"process_id": "save_result", '
                '"arguments": {"data": {"from_node": "load"}, "format": "netCDF"}, "result": true}}}}')
        answer = engine.http.post("/openeo/1.2/result", content=body, headers=headers)
        assert answer.status_code == 400, (extent, answer.text[:300])
        assert answer.json()["code"] == "ProcessParameterInvalid" and "spatial_extent" in answer.json()["message"]


def test_jobs_lifecycle_and_range_requests(engine: Engine) -> None:
    write_collection(engine.runtime.data_dir / "collections")
    headers = engine.headers(engine.token("uma", "user"))
    http = engine.http
    created = http.post("/openeo/1.2/jobs", json={"process": GRAPH, "title": "all rain"}, headers=headers)
    assert created.status_code == 201
    job_id = created.headers["OpenEO-Identifier"]
    assert created.headers["Location"].endswith(f"/openeo/1.2/jobs/{job_id}")
    assert http.get(f"/openeo/1.2/jobs/{job_id}", headers=headers).json()["status"] == "created"
    early = http.get(f"/openeo/1.2/jobs/{job_id}/results", headers=headers)
    assert early.status_code == 400 and early.json()["code"] == "JobNotFinished"
    assert http.patch(f"/openeo/1.2/jobs/{job_id}", json={"title": "renamed"}, headers=headers).status_code == 204
    assert http.get(f"/openeo/1.2/jobs/{job_id}", headers=headers).json()["title"] == "renamed"
    assert http.post(f"/openeo/1.2/jobs/{job_id}/results", headers=headers).status_code == 202
    deadline = time.monotonic() + 60
    while http.get(f"/openeo/1.2/jobs/{job_id}", headers=headers).json()["status"] != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    results = http.get(f"/openeo/1.2/jobs/{job_id}/results", headers=headers).json()
    asset = results["assets"]["result.nc"]
    assert asset["type"] == "application/x-netcdf" and any(link["rel"] == "provenance" for link in results["links"])
    href = asset["href"].replace("http://testserver", "")
    whole = http.get(href, headers=headers).content
    assert len(whole) == asset["file:size"] and whole[:4] == b"\x89HDF"
    part = http.get(href, headers={**headers, "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(whole)}"
    other = engine.headers(engine.token("otto", "user"))
    assert http.get(f"/openeo/1.2/jobs/{job_id}", headers=other).json()["code"] == "JobNotFound"
    assert http.delete(f"/openeo/1.2/jobs/{job_id}", headers=headers).status_code == 204
    assert http.get(f"/openeo/1.2/jobs/{job_id}", headers=headers).status_code == 404


def test_user_defined_processes(engine: Engine) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    http = engine.http
    udp = {"summary": "x + 1", "parameters": [{"name": "x", "schema": {"type": "number"}}],
           "process_graph": {"a": {"process_id": "add", "arguments": {"x": {"from_parameter": "x"}, "y": 1},
                                   "result": True}}}
    assert http.put("/openeo/1.2/process_graphs/inc", json=udp, headers=headers).status_code == 200
    assert [p["id"] for p in http.get("/openeo/1.2/process_graphs", headers=headers).json()["processes"]] == ["inc"]
    assert http.get("/openeo/1.2/process_graphs/inc", headers=headers).json()["summary"] == "x + 1"
    bad = {"process_graph": {"a": {"process_id": "add", "arguments": {"x": 1}, "result": True}}}
    refused = http.put("/openeo/1.2/process_graphs/bad", json=bad, headers=headers)
    assert refused.status_code == 400 and refused.json()["code"] == "ProcessParameterMissing"
    assert http.delete("/openeo/1.2/process_graphs/inc", headers=headers).status_code == 204
    assert http.get("/openeo/1.2/process_graphs/inc", headers=headers).json()["code"] == "ProcessGraphNotFound"


def test_api_compliance_of_the_official_suite(engine: Engine, settings: Settings) -> None:
    """What the official openEO test suite's API checks found: anonymous collections, no empty OIDC list,
    no null descriptions, /udf_runtimes, double slashes, and a synchronous result nobody saved."""
    write_collection(engine.runtime.data_dir / "collections")
    http = engine.http
    listing = http.get("/openeo/1.2/collections")
    assert listing.status_code == 200 and [c["id"] for c in listing.json()["collections"]] == ["rain"]
    assert http.get("/openeo/1.2/collections/rain").json()["id"] == "rain"
    bad_token = http.get("/openeo/1.2/collections", headers={"Authorization": "Bearer basic//nope"})
    assert bad_token.status_code == 401  # a token that comes along is still checked
    paths = {e["path"] for e in http.get("/openeo/1.2/").json()["endpoints"]}
    assert "/credentials/oidc" not in paths and "/udf_runtimes" in paths
    assert http.get("/openeo/1.2/credentials/oidc").status_code == 404
    runtimes = http.get("/openeo/1.2/udf_runtimes").json()["Python"]
    version = runtimes["default"]
    assert runtimes["type"] == "language" and "numpy" in runtimes["versions"][version]["libraries"]
    headers = engine.headers(engine.token("uma", "user"))
    created = http.post("/openeo/1.2/jobs", json={"process": GRAPH}, headers=headers)
    job_id = created.headers["OpenEO-Identifier"]
    listed = http.get("/openeo/1.2/jobs", headers=headers).json()["jobs"]
    assert listed and all("description" not in j and "title" not in j for j in listed)
    assert http.get(f"/openeo/1.2//jobs/{job_id}", headers=headers).json()["id"] == job_id
    cube = http.post("/openeo/1.2/result", json={"process": {"process_graph": {
        "c": {"process_id": "create_data_cube", "arguments": {}, "result": True}}}}, headers=headers)
    assert cube.status_code == 200 and cube.json()["dims"] == []
    answer = http.post("/openeo/1.2/result", json={"process": {"process_graph": {
        "eq": {"process_id": "eq", "arguments": {"x": 1, "y": 1}, "result": True}}}}, headers=headers)
    assert answer.json() is True


def test_collections_can_require_a_token(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from twinengine.api.app import create_app
    from twinengine.runtime import Runtime

    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "data", openeo_public_collections=False))
    try:
        with TestClient(create_app(runtime=runtime)) as http:
            refused = http.get("/openeo/1.2/collections")
            assert refused.status_code == 401 and refused.json()["code"] == "AuthenticationRequired"
    finally:
        runtime.close()


def _result(engine: Engine, graph: dict[str, Any]) -> Any:
    return engine.http.post("/openeo/1.2/result", json={"process": {"process_graph": graph}},
                            headers=engine.headers(engine.token("uma", "user")))


def _repeat(times: int) -> dict[str, Any]:
    return {"a": {"process_id": "array_create", "arguments": {"data": [1], "repeat": times}},
            "s": {"process_id": "sum", "arguments": {"data": {"from_node": "a"}}, "result": True}}


def test_synchronous_results_are_bounded_in_elements_and_bytes(engine: Engine, settings: Settings) -> None:
    workflows = engine.runtime.workflows
    assert workflows.max_array_elements == settings.workflow_max_array_elements
    assert workflows.sync_max_result_bytes == settings.sync_max_result_bytes
    assert workflows.sync_timeout == settings.sync_timeout.total_seconds()
    for times in (10**9, settings.workflow_max_array_elements + 1):  # refused before anything is allocated
        refused = _result(engine, _repeat(times))
        assert refused.status_code == 400, refused.text
        message = refused.json()["message"]
        assert "array_create" in message and str(settings.workflow_max_array_elements) in message
        assert "workflow_max_array_elements" in message
    concat = _result(engine, {
        "a": {"process_id": "array_create", "arguments": {"data": [1], "repeat": 600_000}},
        "c": {"process_id": "array_concat", "arguments": {"array1": {"from_node": "a"},
                                                          "array2": {"from_node": "a"}}, "result": True}})
    assert concat.status_code == 400 and "array_concat" in concat.json()["message"]
    assert _result(engine, _repeat(1000)).json() == 1000
    workflows.sync_max_result_bytes = 1000
    big = _result(engine, {"a": {"process_id": "array_create", "arguments": {"data": [1], "repeat": 1000},
                                 "result": True}})
    assert big.status_code == 413, big.text
    assert "1000" in big.json()["message"] and "sync_max_result_bytes" in big.json()["message"]


def test_synchronous_processing_has_a_time_budget(engine: Engine, tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="slow-app",
                                                            files={"slow_app/procs.py": NAP}))
    engine.runtime.workflows.sync_timeout = 0.5
    answer = _result(engine, {
        "a": {"process_id": "nap", "namespace": "slow-app", "arguments": {"seconds": 20.0}},
        "b": {"process_id": "nap", "namespace": "slow-app", "arguments": {"seconds": {"from_node": "a"}},
              "result": True}})
    assert answer.status_code == 408, answer.text
    assert answer.json()["code"] == "ProcessingTimeLimit" and "0.5 s" in answer.json()["message"]
    assert "sync_timeout" in answer.json()["message"]
    (run,) = engine.sdk(engine.admin_token).workflows.runs().items
    assert run.status == "error" and run.error is not None and run.error["code"] == "ProcessingTimeLimit"
    assert engine.runtime.workflows.overdue == {} and not engine.runtime.workflows.cancel_requests


def test_deleting_a_running_job_stops_it_and_removes_it(engine: Engine, tmp_path: Path) -> None:
    """openEO's DELETE /jobs/{id}: "computations are stopped and computed results are deleted". It answered 400
    (cancel it first) for a running job, which the official suite's job lifecycle counts as a failure."""
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="nap-app",
                                                            files={"nap_app/procs.py": NAP}))
    headers = engine.headers(engine.token("uma", "user"))
    http = engine.http
    graph = {"process_graph": {"a": {"process_id": "nap", "namespace": "nap-app", "arguments": {"seconds": 60.0},
                                     "result": True}}}
    created = http.post("/openeo/1.2/jobs", json={"process": graph}, headers=headers)
    assert created.status_code == 201, created.text
    job_id = created.headers["OpenEO-Identifier"]
    assert http.post(f"/openeo/1.2/jobs/{job_id}/results", headers=headers).status_code == 202
    deadline = time.monotonic() + 60
    while http.get(f"/openeo/1.2/jobs/{job_id}", headers=headers).json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    other = engine.headers(engine.token("otto", "user"))
    assert http.delete(f"/openeo/1.2/jobs/{job_id}", headers=other).json()["code"] == "JobNotFound"
    started = time.monotonic()
    deleted = http.delete(f"/openeo/1.2/jobs/{job_id}", headers=headers)
    assert deleted.status_code == 204, deleted.text
    assert time.monotonic() - started < 30  # stopped, not waited out (the nap is 60 s)
    assert http.get(f"/openeo/1.2/jobs/{job_id}", headers=headers).json()["code"] == "JobNotFound"
    assert job_id not in engine.runtime.workflows.executing
