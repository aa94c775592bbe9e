"""Collocation: a gridded field sampled where and when point observations (station streams) were taken.

Observations are a dataset whose longitude/latitude coordinates lie along a station (or observation)
dimension; time is either its own dimension (station x time, a stream per station) or a coordinate along
the same dimension (one row per observation).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from twinengine.access.grid import axes_of
from twinengine.errors import InvalidInput

__all__ = ["collocate"]

_LON = ("lon", "longitude", "x")
_LAT = ("lat", "latitude", "y")
_TIME = ("time", "t", "valid_time")


def _find(ds: xr.Dataset, names: tuple[str, ...], what: str) -> xr.DataArray:
    for name in list(ds.coords) + list(ds.data_vars):
        var = ds[name]
        if str(name).lower() in names or var.attrs.get("standard_name") in names:
            return var
    raise InvalidInput(f"the observations have no {what} coordinate (looked for {', '.join(names)})")


def collocate(observations: xr.Dataset, field: xr.Dataset | xr.DataArray, *,
              space: Literal["nearest", "bilinear"] = "bilinear", time: Literal["nearest", "linear"] = "linear",
              tolerance: np.timedelta64 | None = None, prefix: str = "") -> xr.Dataset:
    """``observations`` plus the field's variables at each observation's position and time (named
    ``prefix + name``, units kept). Outside the field's grid or time range the value is NaN; with
    ``time="nearest"`` and a ``tolerance``, so is a time step further away than that."""
    grid = field.to_dataset(name=field.name or "field") if isinstance(field, xr.DataArray) else field
    axes = axes_of(grid)
    lon, lat = _find(observations, _LON, "longitude"), _find(observations, _LAT, "latitude")
    if lon.dims != lat.dims or lon.ndim != 1:
        raise InvalidInput("longitude and latitude of the observations must lie along one dimension")
    lon_q = xr.DataArray(axes.wrap_x(lon.values), dims=lon.dims)
    lat_q = xr.DataArray(lat.values, dims=lat.dims)
    sampled = grid.sortby([axes.y, axes.x])  # interpolation wants ascending coordinates
    if axes.t is not None:
        when = _find(observations, _TIME, "time")
        t_q = xr.DataArray(when.values.astype(grid[axes.t].dtype), dims=when.dims)
        if time == "nearest":
            picked = sampled.sel({axes.t: t_q}, method="nearest")
            if tolerance is not None:
                gap = np.abs(picked[axes.t].values - t_q.values)
                picked = picked.where(xr.DataArray(gap <= tolerance, dims=t_q.dims))
            sampled = picked.drop_vars(axes.t)
        else:
            sampled = sampled.interp({axes.t: t_q}, method="linear")
            sampled = sampled.drop_vars(axes.t, errors="ignore")
    if space == "nearest":
        sampled = sampled.sel({axes.x: lon_q, axes.y: lat_q}, method="nearest")
        inside = ((lon_q >= axes.xs.min() - axes.dx / 2) & (lon_q <= axes.xs.max() + axes.dx / 2)
                  & (lat_q >= axes.ys.min() - axes.dy / 2) & (lat_q <= axes.ys.max() + axes.dy / 2))
        sampled = sampled.where(inside)
    else:
        sampled = sampled.interp({axes.x: lon_q, axes.y: lat_q}, method="linear")
    sampled = sampled.drop_vars([axes.x, axes.y], errors="ignore")
    out = observations.copy()
    for name, var in sampled.data_vars.items():
        values = var.transpose(*[d for d in observations.dims if d in var.dims], ...)
        values.attrs = dict(grid[name].attrs)
        out[f"{prefix}{name}"] = values
    return out
