"""save_result's formats write files their own readers open with the same numbers."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from twinengine.errors import ProcessParameterInvalid
from twinengine.workflows.formats import find_format, write


def cube() -> xr.DataArray:
    return xr.DataArray(np.arange(24, dtype="float32").reshape(2, 3, 4), dims=("bands", "y", "x"),
                        coords={"bands": ["rain", "temp"], "y": [46.0, 46.5, 47.0], "x": [7.0, 7.5, 8.0, 8.5]})


def test_netcdf_gtiff_zarr_and_json(tmp_path: Path) -> None:
    data = cube()
    nc = xr.open_dataset(write(data, find_format("netcdf"), tmp_path, "a"), engine="h5netcdf")
    np.testing.assert_array_equal(nc["temp"].values, data.sel(bands="temp").values)
    import rioxarray

    tif = rioxarray.open_rasterio(write(data, find_format("GTiff"), tmp_path, "b"))
    np.testing.assert_array_equal(np.asarray(tif).squeeze(), data.values)
    zipped = write(data, find_format("ZARR"), tmp_path, "c")
    with zipfile.ZipFile(zipped) as zf:
        assert "zarr.json" in zf.namelist()
    from zarr.storage import ZipStore

    store = ZipStore(zipped, mode="r")
    np.testing.assert_array_equal(xr.open_zarr(store, consolidated=False)["rain"].values, data.sel(bands="rain").values)
    store.close()
    doc = json.loads(write(data, find_format("JSON"), tmp_path, "d").read_text())
    assert doc["dims"] == ["bands", "y", "x"] and doc["data"][1][2][3] == 23.0


def test_format_errors(tmp_path: Path) -> None:
    with pytest.raises(ProcessParameterInvalid, match="not supported"):
        find_format("PNG")
    with pytest.raises(ProcessParameterInvalid, match="needs a raster"):
        write(42, find_format("netCDF"), tmp_path, "x")
    four = xr.DataArray(np.zeros((2, 2, 2, 2)), dims=("t", "bands", "y", "x"))
    with pytest.raises(ProcessParameterInvalid, match="at most one more dimension"):
        write(four, find_format("GTiff"), tmp_path, "y")


def test_npy_keeps_numeric_arrays_as_numpy_bytes_and_refuses_the_rest(tmp_path: Path) -> None:
    configs = np.random.default_rng(0).normal(size=(5, 4, 4))
    path = write(configs.tolist(), find_format("npy"), tmp_path, "e")
    assert path.suffix == ".npy"
    assert np.array_equal(np.load(path, allow_pickle=False), configs)
    cube = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("y", "x"))
    assert np.array_equal(np.load(write(cube, find_format("NPY"), tmp_path, "f")), cube.values)
    with pytest.raises(ProcessParameterInvalid, match="rectangular"):
        write([[1.0, 2.0], [3.0]], find_format("NPY"), tmp_path, "g")
    with pytest.raises(ProcessParameterInvalid, match="numeric"):
        write(["a", "b"], find_format("NPY"), tmp_path, "h")
