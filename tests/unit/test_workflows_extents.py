"""What a kept result says it covers (``workflows.extents``): cell edges in EPSG:4326 from any CRS, the time
range, nothing for what has no place, and the union over a run's assets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401  (the .rio accessor to_cube uses)
import xarray as xr

from twinengine.workflows.extents import cube_extent, union_extent


def _cube(xs: np.ndarray, ys: np.ndarray, times: int = 3, crs: str | None = "EPSG:4326") -> xr.DataArray:
    t = pd.date_range("2020-03-01", periods=times, freq="D")
    cube = xr.DataArray(np.zeros((times, ys.size, xs.size)), dims=("t", "y", "x"), coords={"t": t, "y": ys, "x": xs})
    return cube.rio.write_crs(crs) if crs else cube


def test_a_cube_says_its_cells_edges_and_its_time_range() -> None:
    extent = cube_extent(_cube(np.array([7.0, 7.2, 7.4]), np.array([47.0, 46.875, 46.75])))  # y descending
    assert extent == {"bbox": [6.9, 46.6875, 7.5, 47.0625], "start_datetime": "2020-03-01T00:00:00Z",
                      "end_datetime": "2020-03-03T00:00:00Z"}


def test_a_projected_cube_is_described_in_longitude_and_latitude() -> None:
    # Web Mercator metres around Vienna: the box comes back in degrees, holding the cells' centres
    xs, ys = np.arange(1_800_000.0, 1_840_000.0, 10_000.0), np.arange(6_130_000.0, 6_150_000.0, 10_000.0)
    west, south, east, north = cube_extent(_cube(xs, ys, crs="EPSG:3857"))["bbox"]
    # spherical Mercator by hand, at the cells' edges (5 km out from the first and last centres)
    lon = np.degrees(np.array([1_795_000.0, 1_835_000.0]) / 6_378_137.0)
    lat = np.degrees(2 * np.arctan(np.exp(np.array([6_125_000.0, 6_145_000.0]) / 6_378_137.0)) - np.pi / 2)
    np.testing.assert_allclose([west, south, east, north], [lon[0], lat[0], lon[1], lat[1]], atol=1e-6)
    assert 16.1 < west < east < 16.5 and 48.1 < south < north < 48.4  # around Vienna


@pytest.mark.parametrize("data", [3.5, {"a": 1}, xr.DataArray(np.arange(4.0), dims="t"),
                                  xr.DataArray(np.zeros((0, 2)), dims=("y", "x"), coords={"y": [], "x": [1.0, 2.0]})])
def test_what_has_no_place_or_time_says_none(data: object) -> None:
    assert cube_extent(data) is None


def test_one_cell_and_no_time() -> None:
    cube = _cube(np.array([7.0]), np.array([46.0]), times=1).isel(t=0, drop=True)
    assert cube_extent(cube) == {"bbox": [7.0, 46.0, 7.0, 46.0]}


def test_a_runs_assets_are_united() -> None:
    union = union_extent([{"bbox": [7.0, 46.0, 8.0, 47.0], "start_datetime": "2020-03-01T00:00:00Z",
                           "end_datetime": "2020-03-02T00:00:00Z"},
                          {"bbox": [6.5, 46.5, 7.5, 47.5], "start_datetime": "2020-02-01T00:00:00Z",
                           "end_datetime": "2020-02-03T00:00:00Z"}, {}])
    assert union == {"bbox": [6.5, 46.0, 8.0, 47.5], "start_datetime": "2020-02-01T00:00:00Z",
                     "end_datetime": "2020-03-02T00:00:00Z"}
    assert union_extent([]) == {}
