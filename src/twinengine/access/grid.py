"""How a gridded dataset's dimensions map to the EDR axes (x, y, z, t, instance), and index look-ups on them.

Axes are found from CF attributes (``axis``, ``standard_name``, ``units``) with the usual names as a
fallback. Only coordinates are read here, never data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from twinengine.errors import InvalidInput

__all__ = ["GridAxes", "axes_of", "index_range", "nearest_index"]

_NAMES = {
    "x": ("lon", "longitude", "x", "rlon"),
    "y": ("lat", "latitude", "y", "rlat"),
    "z": ("z", "level", "lev", "height", "depth", "plev", "pressure", "altitude", "levelist"),
    "t": ("time", "t", "valid_time"),
    "instance": ("forecast_reference_time", "reference_time", "init_time", "run"),
}
_STANDARD = {
    "x": ("longitude", "projection_x_coordinate", "grid_longitude"),
    "y": ("latitude", "projection_y_coordinate", "grid_latitude"),
    "z": ("height", "altitude", "depth", "air_pressure", "model_level_number",
          "atmosphere_hybrid_sigma_pressure_coordinate"),
    "t": ("time",),
    "instance": ("forecast_reference_time",),
}


def _role(name: str, coord: xr.DataArray) -> str | None:
    attrs = coord.attrs
    standard = str(attrs.get("standard_name", ""))
    for role in ("instance", "t", "x", "y", "z"):
        if standard in _STANDARD[role]:
            return role
    axis = str(attrs.get("axis", "")).upper()
    if axis in ("X", "Y", "Z", "T"):
        return axis.lower()
    units = str(attrs.get("units", ""))
    if units in ("degrees_east", "degree_east", "degrees_E"):
        return "x"
    if units in ("degrees_north", "degree_north", "degrees_N"):
        return "y"
    for role, names in _NAMES.items():
        if name.lower() in names:
            return role
    return None


@dataclass(frozen=True)
class GridAxes:
    """The dimension names playing each EDR role, and their coordinate values (t as datetime64[ns])."""

    x: str
    y: str
    xs: np.ndarray
    ys: np.ndarray
    t: str | None = None
    ts: np.ndarray | None = None
    z: str | None = None
    zs: np.ndarray | None = None
    instance: str | None = None
    instances: np.ndarray | None = None
    step: str | None = None  # lead-time dimension of a forecast (valid time = instance + step)
    steps: np.ndarray | None = None

    @property
    def lon_360(self) -> bool:
        """Longitudes run 0..360 rather than -180..180."""
        return bool(self.xs.size and float(np.nanmax(self.xs)) > 180.0)

    def wrap_x(self, x: np.ndarray | float) -> Any:
        """A query longitude in the dataset's convention."""
        arr = np.asarray(x, dtype=float)
        return np.mod(arr, 360.0) if self.lon_360 else np.where(arr > 180.0, arr - 360.0, arr)

    @property
    def dx(self) -> float:
        return float(np.abs(np.diff(self.xs)).min()) if self.xs.size > 1 else 1.0

    @property
    def dy(self) -> float:
        return float(np.abs(np.diff(self.ys)).min()) if self.ys.size > 1 else 1.0

    def bbox(self) -> tuple[float, float, float, float]:
        xs = np.where(self.xs > 180.0, self.xs - 360.0, self.xs) if self.lon_360 else self.xs
        return (float(np.min(xs)), float(np.min(self.ys)), float(np.max(xs)), float(np.max(self.ys)))


def axes_of(ds: xr.Dataset, variable: str | None = None) -> GridAxes:
    """Find the x/y (and z, t, instance) dimensions of ``ds`` (of ``variable`` when given)."""
    dims = list(ds[variable].dims) if variable else list(ds.sizes)
    roles: dict[str, str] = {}
    for dim in dims:
        coord = ds.coords.get(dim)
        role = _role(str(dim), coord if coord is not None else xr.DataArray([]))
        if role is None and coord is not None and np.issubdtype(coord.dtype, np.timedelta64):
            role = "step"
        if role and role not in roles:
            roles[role] = str(dim)
    if "x" not in roles or "y" not in roles:
        raise InvalidInput(f"dataset has no recognisable x/y (longitude/latitude) dimensions; dims are {dims}")

    def values(role: str) -> np.ndarray | None:
        name = roles.get(role)
        if name is None:
            return None
        if name not in ds.coords:
            return np.arange(ds.sizes[name])
        return np.asarray(ds.coords[name].values)

    ts = values("t")
    if ts is not None and not np.issubdtype(ts.dtype, np.datetime64):
        try:
            ts = np.asarray(ts, dtype="datetime64[ns]")
        except (TypeError, ValueError):
            ts = None
    instances = values("instance")
    if instances is not None and np.issubdtype(instances.dtype, np.datetime64):
        instances = instances.astype("datetime64[ns]")
    return GridAxes(x=roles["x"], y=roles["y"], xs=np.asarray(values("x"), dtype=float),
                    ys=np.asarray(values("y"), dtype=float), t=roles.get("t") if ts is not None else None,
                    ts=None if ts is None else ts.astype("datetime64[ns]"), z=roles.get("z"),
                    zs=None if roles.get("z") is None else np.asarray(values("z"), dtype=float),
                    instance=roles.get("instance"), instances=instances, step=roles.get("step"),
                    steps=values("step"))


def nearest_index(coord: np.ndarray, value: float) -> int:
    """Index of the coordinate closest to ``value`` (coordinates sorted either way)."""
    if coord.size == 1:
        return 0
    ascending = coord[-1] >= coord[0]
    ordered = coord if ascending else coord[::-1]
    i = int(np.clip(np.searchsorted(ordered, value), 1, ordered.size - 1))
    j = i - 1 if abs(value - ordered[i - 1]) <= abs(ordered[i] - value) else i
    return j if ascending else coord.size - 1 - j


def index_range(coord: np.ndarray, lo: float, hi: float) -> slice:
    """The slice of indices whose coordinates lie in [lo, hi] (coordinates sorted either way)."""
    if coord.size == 0:
        return slice(0, 0)
    ascending = coord[-1] >= coord[0]
    ordered = coord if ascending else coord[::-1]
    start = int(np.searchsorted(ordered, lo, side="left"))
    stop = int(np.searchsorted(ordered, hi, side="right"))
    if ascending:
        return slice(start, max(start, stop))
    return slice(coord.size - max(start, stop), coord.size - start)
