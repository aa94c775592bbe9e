"""openEO standard processes on real data, built with the official ``openeo`` client against a live engine,
each compared with the same computation written directly in xarray on the same zarr collection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openeo
import pytest
import xarray as xr

from helpers import LiveEngine
from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime
from workflow_data import write_collection

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[openeo.Connection, xr.Dataset]]:
    """One engine for the module: the processes only read the collection."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("standard") / "data")
    runtime = Runtime.from_settings(settings)
    token = runtime.start()
    assert token is not None
    ds = write_collection(settings.data_dir / "collections")
    write_collection(settings.data_dir / "collections", "grid", _aligned())
    try:
        with InProcessServer(create_app(runtime=runtime)) as server:
            live = LiveEngine(url=server.url, admin_token=token, settings=settings)
            with live.client() as admin:
                user = admin.create_token("uma", "user").token
            yield openeo.connect(live.url).authenticate_basic("uma", user), ds
    finally:
        runtime.close()


def _aligned() -> xr.Dataset:
    """8 x 8 cells of 0.1 degree whose edges fall on multiples of 0.2: a 0.2 grid averages 2 x 2 blocks."""
    rng = np.random.default_rng(1)
    lat, lon = np.round(46.05 + 0.1 * np.arange(8), 6), np.round(7.05 + 0.1 * np.arange(8), 6)
    time = np.array(["2026-03-01"], dtype="datetime64[ns]")
    rain = rng.gamma(0.5, 2.0, (1, 8, 8)).astype("float64")
    return xr.Dataset({"rain": (("time", "lat", "lon"), rain)}, coords={"time": time, "lat": lat, "lon": lon})


def fetch(cube: openeo.DataCube, path: Path) -> xr.Dataset:
    cube.download(path, format="netCDF")
    return xr.open_dataset(path, engine="h5netcdf").load()


def yx(da: xr.DataArray) -> xr.DataArray:
    """xarray's result in the cube's dimension names."""
    return da.rename({k: v for k, v in {"time": "t", "lat": "y", "lon": "x"}.items() if k in da.dims})


def test_filter_bands(served: tuple[openeo.Connection, xr.Dataset], tmp_path: Path) -> None:
    con, ds = served
    got = fetch(con.load_collection("rain").filter_bands(["temperature"]), tmp_path / "bands.nc")
    assert list(got.data_vars) == ["temperature"]
    np.testing.assert_allclose(got["temperature"].values, ds["temperature"].values, rtol=1e-6)


def test_apply_with_a_callback(served: tuple[openeo.Connection, xr.Dataset], tmp_path: Path) -> None:
    con, ds = served
    cube = con.load_collection("rain", bands=["rain"]).apply(lambda x: (x.clip(0, 3) * 2 + 1).power(2))
    got = fetch(cube, tmp_path / "apply.nc")
    want = (ds["rain"].clip(0, 3) * 2 + 1) ** 2
    np.testing.assert_allclose(got["rain"].values, want.values, rtol=1e-5)


def test_aggregate_temporal_period(served: tuple[openeo.Connection, xr.Dataset], tmp_path: Path) -> None:
    con, ds = served
    cube = con.load_collection("rain", bands=["rain"]).aggregate_temporal_period(period="day", reducer="max")
    got = fetch(cube, tmp_path / "daily.nc")
    want = ds["rain"].resample(time="1D").max()
    assert got["rain"].sizes["t"] == 3
    np.testing.assert_allclose(got["rain"].transpose("t", "y", "x").values, want.values, rtol=1e-6)


def test_merge_cubes_with_an_overlap_resolver(served: tuple[openeo.Connection, xr.Dataset], tmp_path: Path) -> None:
    con, ds = served
    rain = con.load_collection("rain", bands=["rain"])
    doubled = rain.apply(lambda x: x * 2 - 1)
    got = fetch(rain.merge_cubes(doubled, overlap_resolver="max"), tmp_path / "merged.nc")
    want = np.maximum(ds["rain"], ds["rain"] * 2 - 1)
    np.testing.assert_allclose(got["rain"].transpose("t", "y", "x").values, want.values, rtol=1e-6)
    # without overlap: the bands of both cubes side by side
    temp = con.load_collection("rain", bands=["temperature"])
    got = fetch(rain.merge_cubes(temp), tmp_path / "side.nc")
    assert sorted(got.data_vars) == ["rain", "temperature"]
    np.testing.assert_allclose(got["temperature"].transpose("t", "y", "x").values, ds["temperature"].values,
                               rtol=1e-6)


def test_resample_spatial_averages_blocks(served: tuple[openeo.Connection, xr.Dataset], tmp_path: Path) -> None:
    con, _ = served
    cube = con.load_collection("grid", bands=["rain"]).resample_spatial(resolution=0.2, method="average")
    got = fetch(cube, tmp_path / "blocks.nc")["rain"].squeeze(drop=True)
    want = _aligned()["rain"].isel(time=0).coarsen(lat=2, lon=2).mean()
    # odc-geo's grid is one cell wider on each side (border cells: GDAL's edge handling); the 4 x 4 blocks
    # over the data are exact
    inner = got.sel(y=want["lat"].values, x=want["lon"].values, method="nearest", tolerance=1e-6)
    np.testing.assert_allclose(inner.values, want.values, rtol=1e-6)


def test_resample_spatial(served: tuple[openeo.Connection, xr.Dataset], tmp_path: Path) -> None:
    con, ds = served
    cube = con.load_collection("rain", bands=["rain"]).reduce_dimension(dimension="t", reducer="mean")
    got = fetch(cube.resample_spatial(resolution=0.4, method="average"), tmp_path / "coarse.nc")["rain"]
    assert got.sizes["x"] < ds.sizes["lon"] and got.sizes["y"] < ds.sizes["lat"]
    # each coarse cell averages the fine cells inside it: the overall mean is kept (to the edge cells)
    fine = ds["rain"].mean("time")
    np.testing.assert_allclose(float(got.mean()), float(fine.mean()), rtol=0.1)
    assert float(got.min()) >= float(fine.min()) - 1e-6 and float(got.max()) <= float(fine.max()) + 1e-6


def test_band_math_and_array_processes(served: tuple[openeo.Connection, xr.Dataset], tmp_path: Path) -> None:
    con, ds = served
    cube = con.load_collection("rain", bands=["rain", "temperature"])
    index = cube.reduce_dimension(dimension="bands", reducer=lambda data: (
        data.array_element(label="temperature") - data.array_element(label="rain"))
        / (data.array_element(label="temperature") + data.array_element(label="rain")))
    got = fetch(index, tmp_path / "index.nc")
    var = next(iter(got.data_vars))
    want = (ds["temperature"] - ds["rain"]) / (ds["temperature"] + ds["rain"])
    np.testing.assert_allclose(got[var].transpose("t", "y", "x").values, want.values, rtol=1e-5)

    spread = cube.filter_bands(["rain"]).reduce_dimension(
        dimension="t", reducer=lambda data: data.max() - data.min() + data.sd())
    got = fetch(spread, tmp_path / "spread.nc")
    want = ds["rain"].max("time") - ds["rain"].min("time") + ds["rain"].std("time", ddof=1)
    np.testing.assert_allclose(got["rain"].values, want.values, rtol=1e-5)

    first = cube.filter_bands(["rain"]).reduce_dimension(dimension="t", reducer=lambda d: d.array_element(index=5))
    got = fetch(first, tmp_path / "first.nc")
    np.testing.assert_allclose(got["rain"].values, ds["rain"].isel(time=5).values, rtol=1e-6)


def test_apply_polygon_processes_each_polygon_s_cells(served: tuple[openeo.Connection, xr.Dataset],
                                                      tmp_path: Path) -> None:
    """Through the official client (``geometries``, the specification's name): the polygon's cells get the
    process, the others no-data; the same cells selected in xarray."""
    con, _ = served
    box = {"type": "Polygon", "coordinates": [[[7.0, 46.0], [7.3, 46.0], [7.3, 46.3], [7.0, 46.3], [7.0, 46.0]]]}
    cube = con.load_collection("grid", bands=["rain"]).apply_polygon(geometries=box, process=lambda data: data * 2 + 1)
    got = fetch(cube, tmp_path / "polygon.nc")["rain"]
    grid = _aligned()["rain"]
    inside = (grid["lon"] < 7.3) & (grid["lat"] < 46.3)
    want = yx((grid * 2 + 1).where(inside))
    assert int(np.isfinite(got.values).sum()) == 9  # 3 x 3 cell centres in the polygon
    np.testing.assert_allclose(got.values, want.transpose(*got.dims).values, rtol=1e-6)
