"""Gridded lake datasets reach workflows and EDR through the runtime's collection source, beside the local
folder: netCDF and zipped zarr, opened lazily from an available replica."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import Engine
from lake_fixtures import rain_field
from twinengine.errors import CollectionNotFound


def test_lake_datasets_are_collections(engine: Engine, tmp_path: Path) -> None:
    user = engine.as_role("uma", "user")
    engine.as_role("pat", "provider").lake.add_endpoint("disk", "file", str(tmp_path / "disk"))
    cube = rain_field()
    local = engine.runtime.settings.data_dir / "collections"
    local.mkdir(parents=True)
    cube.to_netcdf(local / "folder-rain.nc", engine="h5netcdf")

    nc = tmp_path / "rain.nc"
    cube.to_netcdf(nc, engine="h5netcdf")
    user.lake.add_dataset("wx:rain-2026")
    user.lake.upload(nc, "wx:rain-2026/rain.nc", endpoint="disk", dataset="wx:rain-2026")
    folder = tmp_path / "rain.zarr"
    cube.isel(time=slice(0, 6)).to_zarr(folder, consolidated=False)
    store = tmp_path / "rain.zarr.zip"
    with zipfile.ZipFile(store, "w") as zipped:  # a zipped zarr store: the store's files at the archive's root
        for part in sorted(folder.rglob("*")):
            if part.is_file():
                zipped.write(part, part.relative_to(folder).as_posix())
    user.lake.add_dataset("wx:rain-zarr")
    user.lake.upload(store, "wx:rain-zarr/rain.zarr.zip", endpoint="disk", dataset="wx:rain-zarr")
    user.lake.add_dataset("wx:notes")
    notes = tmp_path / "notes.txt"
    notes.write_text("not gridded")
    user.lake.upload(notes, "wx:notes/notes.txt", endpoint="disk", dataset="wx:notes")

    source = engine.runtime.collections
    assert source.ids() == ["folder-rain", "wx.rain-2026", "wx.rain-zarr"]
    info = source.info("wx.rain-2026")
    assert info.format == "netcdf" and info.dims == {"time": 24, "lat": 5, "lon": 7}
    assert info.bbox == (7.0, 46.0, 8.5, 47.0) and info.variables["rain"].units == "mm h-1"
    ds = source.open("wx.rain-2026")
    assert ds["rain"].chunks is not None  # lazy
    np.testing.assert_allclose(ds["rain"].isel(time=3).values, cube["rain"].isel(time=3).values)
    assert source.info("wx.rain-zarr").dims["time"] == 6
    assert source.info("folder-rain").format == "netcdf"
    with pytest.raises(CollectionNotFound):
        source.open("wx.notes")
