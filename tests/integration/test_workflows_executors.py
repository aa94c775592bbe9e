"""The same graph gives the same result embedded (Dask threads) and on a real Dask cluster on loopback
(a scheduler and two worker processes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from starlette.testclient import TestClient

from helpers import Engine, admin_token
from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.workflows.executors import DistributedExecutor, LocalExecutor, make_executor
from workflow_data import daily_graph, write_collection, zonal_expected, zonal_graph

GRAPH = daily_graph("mean", "multiply", 2)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    try:
        from distributed import LocalCluster
    except ImportError as exc:  # pragma: no cover - a core dependency
        pytest.fail(f"distributed is not installed: {exc}")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local:
        yield str(local.scheduler_address)


def zonal_on(settings: Settings, tmp: Path, reducer: str = "mean") -> np.ndarray:
    """aggregate_spatial over a polygon, computed by the engine's executor; the values per (geometry, t, band)."""
    runtime = Runtime.from_settings(settings)
    try:
        with TestClient(create_app(runtime=runtime)) as http:
            token = admin_token(settings)
            client = Client("http://testserver", token, http=http)
            run = client.workflows.submit(zonal_graph(reducer), sync=True)
            assert run.status == "finished", run.error
            assert run.executor == runtime.workflows.executor.name
            path = client.workflows.download(run.id, "result.json", tmp / f"{runtime.workflows.executor.name}.json")
            value = json.loads(path.read_text())
            assert value["dims"] == ["geometry", "t", "bands"]
            return np.asarray(value["data"], dtype=float)
    finally:
        runtime.close()


def run_on(settings: Settings, tmp: Path) -> xr.Dataset:
    runtime = Runtime.from_settings(settings)
    try:
        with TestClient(create_app(runtime=runtime)) as http:
            token = admin_token(settings)
            client = Client("http://testserver", token, http=http)
            run = client.workflows.submit(GRAPH, sync=True)
            assert run.status == "finished", run.error
            assert run.executor == runtime.workflows.executor.name
            path = client.workflows.download(run.id, "result.nc", tmp / f"{runtime.workflows.executor.name}.nc")
            return xr.open_dataset(path, engine="h5netcdf").load()
    finally:
        runtime.close()


@pytest.mark.slow
def test_same_result_embedded_and_on_a_dask_cluster(cluster: str, tmp_path: Path) -> None:
    local_dir, dist_dir = tmp_path / "local", tmp_path / "dist"
    ds = write_collection(local_dir / "collections")
    write_collection(dist_dir / "collections")
    embedded = run_on(Settings(data_dir=local_dir), tmp_path)
    distributed = run_on(Settings(data_dir=dist_dir, dask_address=cluster), tmp_path)
    expected = ds.resample(time="D").mean() * 2
    np.testing.assert_allclose(embedded["rain"].values, expected["rain"].values, rtol=1e-6)
    np.testing.assert_allclose(distributed["rain"].values, embedded["rain"].values, rtol=0, atol=0)
    np.testing.assert_allclose(distributed["temperature"].values, embedded["temperature"].values, rtol=0, atol=0)


@pytest.mark.slow
def test_aggregate_spatial_against_xarray_embedded_and_on_a_dask_cluster(cluster: str, tmp_path: Path) -> None:
    """A polygon over the rain cube: the mean (and max) of the covered cells per hour, as xarray computes it,
    on the embedded executor and on a real cluster (the reducer must not travel to the workers)."""
    local_dir, dist_dir = tmp_path / "local", tmp_path / "dist"
    ds = write_collection(local_dir / "collections")
    write_collection(dist_dir / "collections")
    embedded = zonal_on(Settings(data_dir=local_dir), tmp_path)
    np.testing.assert_allclose(embedded[0, :, 0], zonal_expected(ds, "mean"), rtol=1e-6)
    distributed = zonal_on(Settings(data_dir=dist_dir, dask_address=cluster), tmp_path, "max")
    np.testing.assert_allclose(distributed[0, :, 0], zonal_expected(ds, "max"), rtol=1e-6)


def test_executor_choice(engine: Engine) -> None:
    assert isinstance(engine.runtime.workflows.executor, LocalExecutor)
    assert isinstance(make_executor("local", address="tcp://127.0.0.1:1"), DistributedExecutor)
    with pytest.raises(ValueError, match=r"installed: .*local"):
        make_executor("kubernetes")


def test_a_cluster_takes_values_that_are_not_dask_collections(cluster: str) -> None:
    """An app process's arguments may be eager cubes (an ensemble member's perturbed rain is numpy-backed):
    a cluster returns them as they are, as Dask's own ``compute`` does, beside the lazy ones it computes.
    ``Client.persist`` alone failed with a bare AssertionError on them."""
    import dask.array as da

    eager = xr.DataArray(np.arange(4.0), dims="t")
    lazy = xr.DataArray(da.arange(4.0, chunks=2), dims="t") * 2
    executor = DistributedExecutor(cluster)
    try:
        first, second, number = executor.compute(eager, lazy, 3)
        assert first is eager and number == 3
        assert second.values.tolist() == [0.0, 2.0, 4.0, 6.0] and second.chunks is None
        (only,) = executor.compute(eager)
        assert only is eager
    finally:
        executor.close()
