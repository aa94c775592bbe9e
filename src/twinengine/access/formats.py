"""The other EDR output formats from the same ``Extraction``: GeoJSON features and netCDF (via xarray)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from twinengine.access.covjson import _times
from twinengine.access.extract import Coverage, Extraction

__all__ = ["GEOJSON", "NETCDF", "to_geojson", "to_netcdf", "to_xarray"]

GEOJSON = "application/geo+json"
NETCDF = "application/x-netcdf"


def _lists(ranges: dict[str, np.ndarray], index: Any) -> dict[str, Any]:
    return {name: np.ascontiguousarray(values[index]) for name, values in ranges.items()}


def _features(coverage: Coverage) -> list[dict[str, Any]]:
    axes, ranges = coverage.axes, coverage.ranges
    times = _times(axes["t"]) if "t" in axes else None
    levels = axes["z"].tolist() if "z" in axes else None
    base: dict[str, Any] = {}
    if times is not None:
        base["datetime"] = times
    if levels is not None:
        base["z"] = levels
    if coverage.composite is not None:
        comp = coverage.composite
        if coverage.domain_type == "Trajectory":
            keys = [k for k in ("x", "y", "z") if k in comp]
            line = np.column_stack([comp[k] for k in keys]).tolist()
            props: dict[str, Any] = dict(base)
            if "t" in comp and not np.isnat(comp["t"]).all():
                props["datetime"] = _times(comp["t"])
            props.update(_lists(ranges, slice(None)))
            geometry = {"type": "LineString", "coordinates": line} if len(line) > 1 else \
                {"type": "Point", "coordinates": line[0]}
            return [{"type": "Feature", "geometry": geometry, "properties": props}]
        out = []
        for k, (x, y) in enumerate(zip(comp["x"].tolist(), comp["y"].tolist(), strict=True)):
            out.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
                        "properties": {**base, **_lists(ranges, (..., k))}})
        return out
    xs, ys = axes["x"].tolist(), axes["y"].tolist()
    if coverage.domain_type == "Grid":
        first = next(iter(ranges.values()))
        present = ~np.all(np.isnan(first.reshape(-1, len(ys), len(xs))), axis=0)
        out = []
        for j, i in zip(*np.nonzero(present), strict=True):
            out.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [xs[i], ys[j]]},
                        "properties": {**base, **_lists(ranges, (..., j, i))}})
        return out
    return [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [xs[0], ys[0]]},
             "properties": {**base, **_lists(ranges, slice(None))}}]


def to_geojson(extraction: Extraction) -> dict[str, Any]:
    """A FeatureCollection: one Point feature per location (a LineString per trajectory), each parameter's
    values (over ``datetime`` and ``z`` when present) as arrays in its properties."""
    features = [f for coverage in extraction.coverages for f in _features(coverage)]
    units = {n: p.units for n, p in extraction.parameters.items() if p.units}
    return {"type": "FeatureCollection", "features": features, "parameters": units}


def to_xarray(extraction: Extraction) -> xr.Dataset:
    """The extraction as a CF-style dataset (one coverage per ``coverage`` index when there are several)."""
    parts = []
    for coverage in extraction.coverages:
        coords: dict[str, Any] = {}
        names = {"t": "time", "z": "z", "y": "lat", "x": "lon"}
        if coverage.composite is not None:
            n = len(next(iter(coverage.composite.values())))
            for key, values in coverage.composite.items():
                if key == "t" and np.isnat(values).all():
                    continue
                coords[names[key]] = ("point", values)
            dims = tuple("point" if a == "composite" else names[a] for a in coverage.axis_names)
            for key in ("t", "z"):
                if key in coverage.axes:
                    coords[names[key]] = (names[key], coverage.axes[key])
            data = {k: (dims if dims else ("point",), v.reshape(-1) if not dims else v)
                    for k, v in coverage.ranges.items()}
            del n
        else:
            dims = tuple(names[a] for a in coverage.axis_names)
            for key, values in coverage.axes.items():
                coords[names[key]] = (names[key], values) if key in coverage.axis_names else ((), values[0])
            data = {k: (dims, v if dims else v.reshape(())) for k, v in coverage.ranges.items()}  # Point: scalars
        ds = xr.Dataset(data, coords=coords)
        parts.append(ds)
    ds = parts[0] if len(parts) == 1 else xr.concat(parts, dim="coverage", join="outer")
    for name, info in extraction.parameters.items():
        attrs = {k: v for k, v in (("units", info.units), ("standard_name", info.standard_name),
                                   ("long_name", info.long_name)) if v}
        ds[name].attrs.update(attrs)
    if "lon" in ds.coords:
        ds["lon"].attrs.update(units="degrees_east", standard_name="longitude")
    if "lat" in ds.coords:
        ds["lat"].attrs.update(units="degrees_north", standard_name="latitude")
    ds.attrs["Conventions"] = "CF-1.10"
    return ds


def to_netcdf(extraction: Extraction) -> bytes:
    return bytes(to_xarray(extraction).to_netcdf(engine="h5netcdf"))
