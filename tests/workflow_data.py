"""Test data of the workflows tests: a small rain cube written as a zarr collection, and a small graph over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr


def rain_cube(days: int = 3, seed: int = 0) -> xr.Dataset:
    time = pd.date_range("2026-03-01", periods=days * 24, freq="h")
    lat = np.linspace(46.0, 47.0, 9)
    lon = np.linspace(7.0, 8.6, 9)
    rng = np.random.default_rng(seed)
    rain = rng.gamma(0.5, 2.0, (time.size, lat.size, lon.size)).astype("float32")
    temp = (10 + rng.normal(0, 2, (time.size, lat.size, lon.size))).astype("float32")
    return xr.Dataset({"rain": (("time", "lat", "lon"), rain, {"units": "mm h-1", "long_name": "rain rate"}),
                       "temperature": (("time", "lat", "lon"), temp, {"units": "degC"})},
                      coords={"time": time, "lat": lat, "lon": lon}, attrs={"title": "Synthetic rain"})


def write_collection(folder: Path, name: str = "rain", ds: xr.Dataset | None = None) -> xr.Dataset:
    folder.mkdir(parents=True, exist_ok=True)
    ds = rain_cube() if ds is None else ds
    ds.chunk({"time": 24}).to_zarr(folder / f"{name}.zarr", mode="w", consolidated=False)
    return ds


def daily_graph(reducer: str, process_id: str, y: float) -> dict[str, Any]:
    """load rain -> a daily ``reducer`` -> ``process_id(x, y)`` on every value -> netCDF: a small run that
    exercises aggregation, a callback and saving on whichever executor computes it."""
    return {"process_graph": {
        "load": {"process_id": "load_collection", "arguments": {"id": "rain", "spatial_extent": None,
                                                                "temporal_extent": None}},
        "daily": {"process_id": "aggregate_temporal_period", "arguments": {
            "data": {"from_node": "load"}, "period": "day",
            "reducer": {"process_graph": {"r": {"process_id": reducer,
                                                "arguments": {"data": {"from_parameter": "data"}}, "result": True}}}}},
        "each": {"process_id": "apply", "arguments": {"data": {"from_node": "daily"}, "process": {"process_graph": {
            "op": {"process_id": process_id, "arguments": {"x": {"from_parameter": "x"}, "y": y},
                   "result": True}}}}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "each"}, "format": "netCDF"},
                 "result": True}}}


# Cell centres of rain_cube: lon 7.0, 7.2, ... 8.6 and lat 46.0, 46.125, ... 47.0; the polygon's edges lie
# between centres, so which cells it covers is unambiguous: lon 7.4-8.0 and lat 46.25-46.625.
ZONE = {"type": "Polygon", "coordinates": [[[7.3, 46.2], [8.1, 46.2], [8.1, 46.7], [7.3, 46.7], [7.3, 46.2]]]}


def zonal_graph(reducer: str = "mean") -> dict[str, Any]:
    """load rain -> aggregate_spatial over ZONE with ``reducer`` -> JSON."""
    return {"process_graph": {
        "load": {"process_id": "load_collection", "arguments": {"id": "rain", "spatial_extent": None,
                                                                "temporal_extent": None, "bands": ["rain"]}},
        "zone": {"process_id": "aggregate_spatial", "arguments": {
            "data": {"from_node": "load"}, "geometries": ZONE,
            "reducer": {"process_graph": {"r": {"process_id": reducer, "arguments": {"data": {"from_parameter":
                                                                                               "data"}},
                                                "result": True}}}}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "zone"}, "format": "JSON"},
                 "result": True}}}


def zonal_expected(ds: xr.Dataset, reducer: str = "mean") -> np.ndarray:
    """The same aggregation in xarray: the rain of the covered cells, reduced per hour."""
    inside = ds["rain"].sel(lon=slice(7.3, 8.1), lat=slice(46.2, 46.7))
    assert inside.sizes["lon"] == 4 and inside.sizes["lat"] == 4
    return np.asarray(getattr(inside, reducer)(("lat", "lon")).values)
