"""User-defined processes through the official ``openeo`` client against a live engine: store one with
``save_user_defined_process``, call it from a graph (with and without the ``user`` namespace, nested, with
parameters through ``from_parameter`` and defaults), compare with xarray; unknown and recursive ones are
refused naming the node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import openeo
import pytest
import xarray as xr
from openeo.api.process import Parameter

from helpers import LiveEngine
from workflow_data import write_collection


def _callback(process_id: str, **arguments: Any) -> dict[str, Any]:
    return {"process_graph": {"c": {"process_id": process_id, "arguments": arguments, "result": True}}}


# mean over time, then each value times ``factor`` (default 2): the parameter reaches a callback too
SCALED_MEAN = {
    "mean": {"process_id": "reduce_dimension",
             "arguments": {"data": {"from_parameter": "data"}, "dimension": "t",
                           "reducer": _callback("mean", data={"from_parameter": "data"})}},
    "scale": {"process_id": "apply",
              "arguments": {"data": {"from_node": "mean"},
                            "process": _callback("multiply", x={"from_parameter": "x"},
                                                 y={"from_parameter": "factor"})},
              "result": True},
}

# calls the first one, in the user namespace, and adds ``offset``
SHIFTED = {
    "inner": {"process_id": "scaled_mean", "namespace": "user",
              "arguments": {"data": {"from_parameter": "data"}, "factor": {"from_parameter": "factor"}}},
    "shift": {"process_id": "apply",
              "arguments": {"data": {"from_node": "inner"},
                            "process": _callback("add", x={"from_parameter": "x"}, y={"from_parameter": "offset"})},
              "result": True},
}


@pytest.fixture
def connection(live: LiveEngine) -> openeo.Connection:
    with live.client() as admin:
        token = admin.create_token("uma", "user").token
    return openeo.connect(live.url).authenticate_basic("uma", token)


def _download(cube: openeo.DataCube, path: Path) -> xr.DataArray:
    cube.download(path, format="netCDF")
    return xr.open_dataset(path, engine="h5netcdf")["rain"].load()


@pytest.mark.slow
def test_user_defined_processes_are_callable_from_graphs(live: LiveEngine, connection: openeo.Connection,
                                                         tmp_path: Path) -> None:
    ds = write_collection(live.settings.data_dir / "collections")
    connection.save_user_defined_process(
        "scaled_mean", SCALED_MEAN,
        parameters=[Parameter.datacube("data", "the cube"), Parameter.number("factor", "a factor", default=2)])
    connection.save_user_defined_process(
        "shifted", SHIFTED,
        parameters=[Parameter.datacube("data", "the cube"), Parameter.number("factor", "a factor"),
                    Parameter.number("offset", "added")])
    assert {"scaled_mean", "shifted"} <= {p["id"] for p in connection.list_user_defined_processes()}
    rain = ds["rain"].mean("time")

    cube = connection.load_collection("rain", bands=["rain"])
    got = _download(cube.process("scaled_mean", data=cube), tmp_path / "default.nc")  # no namespace, default
    np.testing.assert_allclose(got.values, (rain * 2).values, rtol=1e-5)

    got = _download(cube.process("scaled_mean", data=cube, factor=3, namespace="user"), tmp_path / "three.nc")
    np.testing.assert_allclose(got.values, (rain * 3).values, rtol=1e-5)

    got = _download(cube.process("shifted", data=cube, factor=0.5, offset=10), tmp_path / "nested.nc")
    np.testing.assert_allclose(got.values, (rain * 0.5 + 10).values, rtol=1e-5)

    # a user process as the reducer of a standard process: the reducer's axis reaches the nodes inside
    spread = {"max": {"process_id": "max", "arguments": {"data": {"from_parameter": "data"}}},
              "min": {"process_id": "min", "arguments": {"data": {"from_parameter": "data"}}},
              "diff": {"process_id": "subtract", "arguments": {"x": {"from_node": "max"}, "y": {"from_node": "min"}},
                       "result": True}}
    connection.save_user_defined_process("spread", spread, parameters=[Parameter.array("data", "values")])
    reduced = cube.reduce_dimension(dimension="t", reducer=lambda data: openeo.processes.process("spread", data=data))
    got = _download(reduced, tmp_path / "spread.nc")
    np.testing.assert_allclose(got.values, (ds["rain"].max("time") - ds["rain"].min("time")).values, rtol=1e-6)

    # the run records the user process it used, with its version
    job = cube.process("scaled_mean", data=cube, factor=4).save_result("netCDF").create_job()
    job.start_and_wait(max_poll_interval=0.5, soft_error_max=0)
    files = job.get_results().download_files(tmp_path / "job")
    np.testing.assert_allclose(xr.open_dataset(files[0], engine="h5netcdf")["rain"].values, (rain * 4).values,
                               rtol=1e-5)
    with live.client() as admin:
        prov = admin.workflows.provenance(job.job_id)
    assert "scaled_mean" in str(prov)
    assert any("user-defined process (namespace user)" in log["message"] for log in job.logs())


def test_unknown_and_recursive_user_processes_are_refused(live: LiveEngine, connection: openeo.Connection) -> None:
    write_collection(live.settings.data_dir / "collections")
    missing = {"process_graph": {
        "load": {"process_id": "load_collection", "arguments": {"id": "rain", "spatial_extent": None,
                                                                "temporal_extent": None}},
        "mine": {"process_id": "not_stored", "namespace": "user", "arguments": {"data": {"from_node": "load"}},
                 "result": True}}}
    errors = connection.validate_process_graph(missing)
    assert errors[0]["code"] == "ProcessUnsupported" and "'mine'" in errors[0]["message"]
    with pytest.raises(openeo.rest.OpenEoApiError) as info:
        connection.execute(missing)
    assert info.value.code == "ProcessUnsupported" and "'mine'" in info.value.message

    myself = {"again": {"process_id": "loop", "arguments": {"x": {"from_parameter": "x"}}, "result": True}}
    with pytest.raises(openeo.rest.OpenEoApiError) as info:
        connection.save_user_defined_process("loop", myself, parameters=[Parameter.number("x", "x")])
    assert info.value.http_status_code == 400 and "recursion" in info.value.message

    # a cycle through two processes: the second store closes it and is refused
    connection.save_user_defined_process(
        "ping", {"p": {"process_id": "absolute", "arguments": {"x": {"from_parameter": "x"}}, "result": True}},
        parameters=[Parameter.number("x", "x")])
    connection.save_user_defined_process(
        "pong", {"p": {"process_id": "ping", "arguments": {"x": {"from_parameter": "x"}}, "result": True}},
        parameters=[Parameter.number("x", "x")])
    with pytest.raises(openeo.rest.OpenEoApiError) as info:
        connection.save_user_defined_process(
            "ping", {"p": {"process_id": "pong", "arguments": {"x": {"from_parameter": "x"}}, "result": True}},
            parameters=[Parameter.number("x", "x")])
    assert "ping -> pong -> ping" in info.value.message

    # a user process is its owner's only; a missing argument names the node
    assert connection.execute({"process_graph": {
        "n": {"process_id": "pong", "arguments": {"x": -3}, "result": True}}}) == 3
    with live.client() as admin:
        other = admin.create_token("ola", "user").token
    ola = openeo.connect(live.url).authenticate_basic("ola", other)
    with pytest.raises(openeo.rest.OpenEoApiError) as info:
        ola.execute({"process_graph": {"n": {"process_id": "pong", "arguments": {"x": -3}, "result": True}}})
    assert info.value.code == "ProcessUnsupported"
    with pytest.raises(openeo.rest.OpenEoApiError) as info:
        connection.execute({"process_graph": {"n": {"process_id": "pong", "arguments": {}, "result": True}}})
    assert info.value.code == "ProcessParameterMissing" and "'n'" in info.value.message
