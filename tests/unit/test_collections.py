"""Local collections: zarr stores and netCDF files in a folder, described from coordinates, opened lazily
and cached until the file changes."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from twinengine.collections import CollectionNotFound, LocalCollections


def rain_cube(days: int = 3) -> xr.Dataset:
    time = pd.date_range("2026-03-01", periods=days * 24, freq="h")
    lat = np.linspace(46.0, 47.0, 5)
    lon = np.linspace(7.0, 8.5, 7)
    data = np.random.default_rng(0).gamma(0.5, 2.0, (time.size, lat.size, lon.size)).astype("float32")
    ds = xr.Dataset({"rain": (("time", "lat", "lon"), data, {"units": "mm h-1", "standard_name": "rainfall_rate"})},
                    coords={"time": time, "lat": lat, "lon": lon}, attrs={"title": "Synthetic rain"})
    return ds


def test_zarr_and_netcdf_collections(tmp_path: Path) -> None:
    cube = rain_cube()
    cube.to_zarr(tmp_path / "rain.zarr", consolidated=False)
    cube.isel(time=slice(0, 24)).to_netcdf(tmp_path / "rain-day1.nc", engine="h5netcdf")
    (tmp_path / "notes.txt").write_text("not a collection")
    source = LocalCollections(tmp_path)
    assert source.ids() == ["rain", "rain-day1"]
    info = source.info("rain")
    assert info.format == "zarr" and info.title == "Synthetic rain"
    assert info.dims == {"time": 72, "lat": 5, "lon": 7}
    assert info.bbox == (7.0, 46.0, 8.5, 47.0)
    assert info.time == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, 23, tzinfo=UTC))
    assert info.variables["rain"].units == "mm h-1" and info.variables["rain"].dims == ["time", "lat", "lon"]
    assert source.info("rain-day1").format == "netcdf"
    ds = source.open("rain")
    assert ds["rain"].chunks is not None  # lazy (dask-backed)
    np.testing.assert_allclose(ds["rain"].isel(time=5).values, cube["rain"].isel(time=5).values)


def test_handles_are_cached_until_the_file_changes(tmp_path: Path) -> None:
    rain_cube().to_netcdf(tmp_path / "rain.nc", engine="h5netcdf")
    source = LocalCollections(tmp_path)
    first = source.open("rain")
    assert source.open("rain") is first
    source.close()
    rain_cube(days=4).to_netcdf(tmp_path / "rain.nc", engine="h5netcdf")
    os.utime(tmp_path / "rain.nc", (1e9, 2e9))
    assert source.open("rain").sizes["time"] == 96


def test_unknown_collections(tmp_path: Path) -> None:
    source = LocalCollections(tmp_path / "missing")
    assert source.ids() == []
    with pytest.raises(CollectionNotFound, match="no collection 'x'"):
        source.open("x")
    with pytest.raises(CollectionNotFound):
        source.open("../etc")
