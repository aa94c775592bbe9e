"""Tables the engine serves as point collections (CSV, one row per station and time): weather stations at a
few grid cells, and detected cyclone centres (each centre its own station, at its day)."""

from __future__ import annotations

import io
from typing import Any

import xarray as xr

__all__ = ["STATIONS", "centres_table", "station_table"]

# name -> (column, row) of the grid cell the station stands in (a 16 x 16 grid; clipped on smaller ones)
STATIONS = {"CE-NW": (3, 12), "CE-NE": (12, 12), "CE-SW": (3, 3), "CE-SE": (12, 3), "CE-C": (8, 8)}
_COLUMNS = (("tasmax", "degC"), ("tasmin", "degC"), ("pr", "mm d-1"), ("hurs", "%"), ("sfcWind", "m s-1"))


def station_table(ds: xr.Dataset, stations: dict[str, tuple[int, int]] | None = None) -> str:
    """CSV of the daily weather at each station's cell: station, lon, lat, time and one column per variable
    with its unit (``tasmax [degC]``)."""
    out = io.StringIO()
    out.write("station,lon,lat,time," + ",".join(f"{v} [{u}]" for v, u in _COLUMNS) + "\n")
    n_lon, n_lat = ds.sizes["lon"], ds.sizes["lat"]
    times = [str(t)[:10] for t in ds["time"].values.astype("datetime64[D]")]
    for name, (i, j) in (stations or STATIONS).items():
        i, j = min(i, n_lon - 1), min(j, n_lat - 1)
        cell = ds.isel(lon=i, lat=j)
        columns = [cell[v].values for v, _u in _COLUMNS]
        lon, lat = float(ds["lon"][i]), float(ds["lat"][j])
        for k, day in enumerate(times):
            out.write(f"{name},{lon},{lat},{day}," + ",".join(f"{float(c[k]):.2f}" for c in columns) + "\n")
    return out.getvalue()


def centres_table(tracks: dict[str, Any]) -> str:
    """CSV of the daily cyclone centres of a ``storm_tracks`` FeatureCollection: one station per centre
    (``T0003-2031-02-11``), with its vorticity and its track's number."""
    rows = ["station,lon,lat,time,vorticity [s-1],track"]
    for feature in tracks["features"]:
        if feature["geometry"]["type"] != "Point":
            continue
        lon, lat = feature["geometry"]["coordinates"]
        props = feature["properties"]
        rows.append(f"{feature['id']},{lon},{lat},{props['time']},{props['vorticity']},{int(props['track'][1:])}")
    return "\n".join(rows) + "\n"
