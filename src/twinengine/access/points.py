"""Point collections (stations with time series, e.g. CSV/Parquet station tables): the EDR queries that apply
to them, answered with each selected station's series as a CoverageJSON PointSeries (Point without time).

A collection is a point collection when its data lie along one station dimension with longitude/latitude
coordinates along it (CF ``featureType = timeSeries``). What each query selects:
position (the station nearest each point), radius (stations within the distance), area (stations inside the
polygon), cube (stations inside the bounding box), locations/{id} (that station). ``datetime`` and
``parameter-name`` narrow as on grids. Trajectory, corridor, ``method=linear``, ``z`` and instances need a
gridded collection and answer 400 naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import xarray as xr

from twinengine.access.extract import Coverage, Extraction, Planner, parameter_info
from twinengine.access.geometry import haversine_km
from twinengine.access.query import Query
from twinengine.access.statistics import with_statistics
from twinengine.errors import InvalidParameterValue, NotFound, ResponseTooLarge

__all__ = ["POINT_QUERIES", "Stations", "plan", "stations_of"]

POINT_QUERIES = ("position", "radius", "area", "cube")
_LON = ("lon", "longitude", "x")
_LAT = ("lat", "latitude", "y")
_TIME = ("time", "t", "valid_time")


@dataclass(frozen=True)
class Stations:
    """A point collection's station dimension, ids, positions and time axis."""

    dim: str
    ids: list[str]
    xs: np.ndarray
    ys: np.ndarray
    time: str | None
    ts: np.ndarray | None
    parameters: list[str]

    def bbox(self) -> tuple[float, float, float, float]:
        return float(self.xs.min()), float(self.ys.min()), float(self.xs.max()), float(self.ys.max())


def _find(ds: xr.Dataset, names: tuple[str, ...], standard: str) -> str | None:
    for name, coord in ds.coords.items():
        if str(name).lower() in names or coord.attrs.get("standard_name") == standard:
            return str(name)
    return None


def stations_of(ds: xr.Dataset) -> Stations | None:
    """The stations of a point collection, or None when ``ds`` is not one (a grid)."""
    lon, lat = _find(ds, _LON, "longitude"), _find(ds, _LAT, "latitude")
    if lon is None or lat is None or ds[lon].ndim != 1 or ds[lon].dims != ds[lat].dims:
        return None
    dim = str(ds[lon].dims[0])
    if dim in (lon, lat):
        return None  # longitude is an axis: a grid
    time = next((str(d) for d in ds.dims if str(d) != dim and (str(d).lower() in _TIME or np.issubdtype(
        ds[d].dtype, np.datetime64))), None) if ds.dims else None
    allowed = {dim, *([time] if time else [])}
    parameters = [str(n) for n, v in ds.data_vars.items() if dim in v.dims and set(map(str, v.dims)) <= allowed
                  and v.dtype.kind in "fiub"]
    if not parameters:
        return None
    ids = [str(v) for v in ds[dim].values] if dim in ds.coords else [str(k) for k in range(ds.sizes[dim])]
    ts = np.asarray(ds[time].values).astype("datetime64[ns]") if time is not None else None
    return Stations(dim=dim, ids=ids, xs=np.asarray(ds[lon].values, dtype=float),
                    ys=np.asarray(ds[lat].values, dtype=float), time=time, ts=ts, parameters=parameters)


def _refuse(query: Query) -> None:
    if query.kind in ("trajectory", "corridor"):
        raise InvalidParameterValue("query", f"{query.kind} needs a gridded collection; a point collection (stations) "
                                             "answers position, radius, area, cube and locations")
    if query.method != "nearest":
        raise InvalidParameterValue("method", "a point collection answers at its stations; linear interpolation "
                                              "applies to gridded collections")
    if query.z is not None:
        raise InvalidParameterValue("z", "this collection (stations) has no vertical axis")
    if query.instance is not None:
        raise InvalidParameterValue("instanceId", "this collection (stations) has no instances (forecast runs)")


def _select(stations: Stations, query: Query) -> np.ndarray:
    """Indices of the stations a query selects, in the order it names them."""
    if query.location is not None:
        if query.location not in stations.ids:
            raise NotFound(f"this collection has no location {query.location!r}")
        return np.array([stations.ids.index(query.location)])
    span = "stations lie in longitude {:g}..{:g}, latitude {:g}..{:g}".format(
        *(stations.bbox()[i] for i in (0, 2, 1, 3)))
    if query.kind == "position":
        assert query.geometry is not None
        points = shapely.get_coordinates(query.geometry)
        picked = [int(np.argmin(haversine_km(stations.xs, stations.ys, float(x), float(y)))) for x, y in points]
        return np.array(list(dict.fromkeys(picked)))
    if query.kind == "radius":
        assert query.geometry is not None and query.within_km is not None
        near = np.zeros(stations.xs.shape, dtype=bool)
        for x, y in shapely.get_coordinates(query.geometry):
            near |= haversine_km(stations.xs, stations.ys, float(x), float(y)) <= query.within_km
        found, field = np.flatnonzero(near), "within"
    elif query.kind == "area":
        assert query.geometry is not None
        shapely.prepare(query.geometry)
        found, field = np.flatnonzero(shapely.intersects_xy(query.geometry, stations.xs, stations.ys)), "coords"
    elif query.kind == "cube":
        assert query.bbox is not None
        west, south, east, north = query.bbox[0], query.bbox[1], query.bbox[2], query.bbox[3]
        found = np.flatnonzero((stations.xs >= west) & (stations.xs <= east) & (stations.ys >= south)
                               & (stations.ys <= north))
        field = "bbox"
    else:
        raise InvalidParameterValue("query", f"unknown query type {query.kind!r}")
    if found.size == 0:
        raise InvalidParameterValue(field, f"no station inside the {query.kind}; {span}")
    return found


def plan(ds: xr.Dataset, stations: Stations, query: Query, *, max_values: int) -> Extraction:
    """The stations a query selects, each with its series, as an ``Extraction`` the encoders share."""
    _refuse(query)
    names = with_statistics(ds, query.parameters) if query.parameters else stations.parameters
    for name in names:
        if name not in stations.parameters:
            raise InvalidParameterValue("parameter-name", f"unknown parameter {name!r}; this collection has "
                                                          f"{', '.join(stations.parameters)}")
    picked = _select(stations, query)
    ti = Planner._time(stations.ts, query.datetime)
    nt = 1 if ti is None else len(ti)
    total = len(picked) * nt * len(names)
    if total > max_values:
        raise ResponseTooLarge(f"this {query.kind} query would answer {total:,} values from {len(picked)} stations; "
                               f"the limit is {max_values:,}: narrow the area, the time range (datetime) or the "
                               "parameters (parameter-name)",
                               details=[{"loc": "size", "msg": f"{total} values", "values": total,
                                         "limit": max_values}])
    selection: dict[str, Any] = {stations.dim: picked}
    if stations.time is not None and ti is not None:
        selection[stations.time] = ti
    order = [d for d in (stations.time, stations.dim) if d is not None]
    values = {name: np.asarray(ds[name].isel(selection).transpose(*order).values, dtype="float64")
              for name in names}
    coverages = []
    for k, station in enumerate(picked):
        axes: dict[str, np.ndarray] = {"x": stations.xs[station:station + 1], "y": stations.ys[station:station + 1]}
        if stations.ts is not None and ti is not None:
            axes["t"] = stations.ts[ti]
            coverages.append(Coverage("PointSeries", axes, ("t",), {n: v[:, k] for n, v in values.items()}))
        else:
            coverages.append(Coverage("Point", axes, (), {n: v[k:k + 1] for n, v in values.items()}))
    parameters = {}
    for name in names:
        parameters[name] = parameter_info(ds, name)
    several = query.kind in ("radius", "area", "cube") or len(coverages) > 1
    return Extraction(coverages, parameters, coverages[0].domain_type, collection=several,
                      sources=np.column_stack([stations.xs[picked], stations.ys[picked]]))
