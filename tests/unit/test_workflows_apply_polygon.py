"""``apply_polygon``: the process sees each polygon's sub cube whole, its answer lands on that polygon's cells only,
the cells of no polygon are ``mask_value``, and overlapping polygons are refused (``GeometriesOverlap``). Checked
against the same computation written with numpy on the cells each polygon holds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from twinengine.errors import ProcessParameterInvalid
from twinengine.workflows.extra_processes import apply_polygon
from twinengine.workflows.processes import build_registry


def _cube() -> xr.DataArray:
    rng = np.random.default_rng(7)
    return xr.DataArray(rng.normal(size=(2, 4, 6)), dims=("t", "y", "x"),
                        coords={"t": np.array(["2026-03-01", "2026-03-02"], dtype="datetime64[ns]"),
                                "y": [46.0, 46.1, 46.2, 46.3], "x": [7.0, 7.1, 7.2, 7.3, 7.4, 7.5]})


def _box(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north],
                                                [west, south]]]}


def _centred(data: xr.DataArray, **_: Any) -> xr.DataArray:
    return data - data.mean()  # a process over the whole sub cube: one pixel at a time would give 0 everywhere


def test_each_polygon_s_cells_get_the_process_over_that_polygon_alone() -> None:
    cube = _cube()
    west = _box(6.95, 45.95, 7.15, 46.15)  # x 7.0-7.1, y 46.0-46.1
    east = {"type": "Feature", "properties": {}, "geometry": _box(7.25, 46.05, 7.45, 46.35)}  # x 7.3-7.4, y 46.1-46.3
    got = apply_polygon(cube, {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                                           "geometry": west}, east]},
                        _centred, mask_value=-99.0)
    values = cube.values
    expected = np.full(values.shape, -99.0)
    for ys, xs in ((slice(0, 2), slice(0, 2)), (slice(1, 4), slice(3, 5))):
        block = values[:, ys, xs]
        expected[:, ys, xs] = block - block.mean()
    np.testing.assert_allclose(got.values, expected)
    assert got.dims == cube.dims


def test_cells_of_no_polygon_are_no_data_by_default_and_overlaps_are_refused() -> None:
    cube = _cube()
    got = apply_polygon(cube, _box(6.95, 45.95, 7.05, 46.05), _centred)
    assert np.isnan(got.values).sum() == cube.size - 2 and np.allclose(got.values[:, 0, 0], cube.values[:, 0, 0] -
                                                                       cube.values[:, 0, 0].mean())
    overlapping = {"type": "MultiPolygon", "coordinates": []}
    with pytest.raises(ProcessParameterInvalid, match="GeometriesOverlap"):
        apply_polygon(cube, {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": _box(6.95, 45.95, 7.25, 46.25)},
            {"type": "Feature", "properties": {}, "geometry": _box(7.15, 46.15, 7.45, 46.35)}]}, _centred)
    with pytest.raises(ProcessParameterInvalid, match="geometries"):
        apply_polygon(cube, overlapping, _centred)
    with pytest.raises(ProcessParameterInvalid, match="Polygon"):
        apply_polygon(cube, {"type": "Point", "coordinates": [7.0, 46.0]}, _centred)


def test_it_is_offered_under_the_specification_s_parameter_names() -> None:
    entry = {e.id: e for e in build_registry().list(include_apps=False)}["apply_polygon"]
    names = [p["name"] for p in entry.spec["parameters"]]
    assert names == ["data", "geometries", "process", "mask_value", "context"]
