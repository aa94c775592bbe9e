"""Where and when a computed cube's values lie: the extent a kept result is described with (its STAC item's
``bbox``, ``geometry``, ``start_datetime`` and ``end_datetime``), so that a result found in a catalogue says
what it covers without being opened."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["cube_extent", "union_extent"]

WGS84 = "EPSG:4326"


def cube_extent(data: Any) -> dict[str, Any] | None:
    """``bbox`` (west, south, east, north in EPSG:4326, cell edges where the spacing tells them) for a cube
    with ``x`` and ``y``, ``start_datetime``/``end_datetime`` for one with ``t``; None for anything else (a
    number, a table) or where neither can be told."""
    import xarray as xr

    if not isinstance(data, xr.DataArray | xr.Dataset):
        return None
    extent: dict[str, Any] = {}
    if data.sizes.get("x") and data.sizes.get("y") and "x" in data.coords and "y" in data.coords:
        box = _bbox(data)
        if box is not None:
            extent["bbox"] = box
    if data.sizes.get("t") and "t" in data.coords and np.issubdtype(data["t"].dtype, np.datetime64):
        times = data["t"].values
        times = times[~np.isnat(times)]
        if times.size:
            extent["start_datetime"] = _iso(times.min())
            extent["end_datetime"] = _iso(times.max())
    return extent or None


def union_extent(extents: list[dict[str, Any]]) -> dict[str, Any]:
    """One extent covering all of ``extents`` (each as ``cube_extent`` makes them); empty where none has one."""
    boxes = [e["bbox"] for e in extents if e.get("bbox")]
    starts = [e["start_datetime"] for e in extents if e.get("start_datetime")]
    ends = [e["end_datetime"] for e in extents if e.get("end_datetime")]
    union: dict[str, Any] = {}
    if boxes:
        union["bbox"] = [min(b[0] for b in boxes), min(b[1] for b in boxes),
                         max(b[2] for b in boxes), max(b[3] for b in boxes)]
    if starts and ends:  # ISO 8601 in UTC with the same layout: they sort as they are
        union["start_datetime"], union["end_datetime"] = min(starts), max(ends)
    return union


def _edges(values: np.ndarray) -> tuple[float, float] | None:
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    low, high = float(values.min()), float(values.max())
    if values.size > 1:  # centres of a regular grid: half a cell out on each side
        half = abs(float(values[1] - values[0])) / 2
        low, high = low - half, high + half
    return low, high


def _bbox(data: Any) -> list[float] | None:
    xs, ys = _edges(data["x"].values), _edges(data["y"].values)
    if xs is None or ys is None:
        return None
    crs = _crs(data)
    if crs is not None and crs != WGS84:
        from pyproj import Transformer

        transformer = Transformer.from_crs(crs, WGS84, always_xy=True)
        west, south, east, north = transformer.transform_bounds(xs[0], ys[0], xs[1], ys[1])
    else:
        west, south, east, north = xs[0], ys[0], xs[1], ys[1]
    box = [max(west, -180.0), max(south, -90.0), min(east, 180.0), min(north, 90.0)]
    if not all(math.isfinite(v) for v in box) or box[0] > box[2] or box[1] > box[3]:
        return None
    return [round(v, 9) for v in box]


def _crs(data: Any) -> str | None:
    """The cube's CRS as ``EPSG:n`` or WKT (rioxarray's, as ``to_cube`` writes it); None where unset (the
    engine's cubes default to EPSG:4326)."""
    try:
        crs = data.rio.crs
    except Exception:  # rioxarray not loaded on this object, or a CRS it cannot read
        return None
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def _iso(moment: np.datetime64) -> str:
    return f"{np.datetime_as_string(moment, unit='s')}Z"
