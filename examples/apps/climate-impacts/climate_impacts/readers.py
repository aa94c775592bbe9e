"""Reading the formats real data come in, unchanged: daily CF netCDF as CMIP6, CORDEX, E-OBS or ERA5 daily
statistics write it (units read from the ``units`` attribute, not assumed), and station weather in the
cffdrs table format (``LONG,LAT,YR,MON,DAY,TEMP,RH,WS,PREC``, the input of the Canadian Fire Weather Index
system's reference implementations).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["DailyWeather", "StationWeather", "daily_weather", "read_cffdrs_table"]

# accepted names per quantity, in order of preference (CMIP6/CORDEX first, then E-OBS and ERA5-style names)
_NAMES = {
    "pr": ("pr", "rr", "tp", "precip"),
    "tmax": ("tasmax", "tx", "mx2t"),
    "tmean": ("tas", "tg", "t2m"),
    "rh": ("hursmin", "hurs", "hu", "rh"),
    "wind": ("sfcWind", "fg", "si10", "wind"),
}


@dataclass
class DailyWeather:
    """Daily fields in the units the indices take: mm/day, degC, %, m/s, as (time, lat, lon) arrays."""

    time: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    pr: np.ndarray
    tmax: np.ndarray
    tmean: np.ndarray
    rh: np.ndarray
    wind: np.ndarray


def _find(ds: xr.Dataset, quantity: str) -> xr.DataArray:
    for name in _NAMES[quantity]:
        if name in ds.data_vars:
            return ds[name]
    raise KeyError(f"no {quantity} variable: looked for {', '.join(_NAMES[quantity])} in "
                   f"{', '.join(map(str, ds.data_vars))}")


def _precipitation_mm_per_day(da: xr.DataArray) -> np.ndarray:
    units = str(da.attrs.get("units", "")).strip()
    values = da.values.astype("float64")
    if units in ("kg m-2 s-1", "kg m**-2 s**-1", "kg/m2/s", "mm s-1", "mm/s"):
        return values * 86_400.0
    if units in ("mm", "mm d-1", "mm/d", "mm/day", "mm day-1", "kg m-2", "kg m-2 d-1"):
        return values
    if units in ("m", "m d-1", "m/day"):  # ERA5's total precipitation, as a daily sum
        return values * 1000.0
    raise ValueError(f"{da.name}: precipitation in {units!r} is not understood (kg m-2 s-1, mm/day or m)")


def _celsius(da: xr.DataArray) -> np.ndarray:
    units = str(da.attrs.get("units", "")).strip()
    values = da.values.astype("float64")
    if units in ("K", "kelvin", "Kelvin"):
        return values - 273.15
    if units in ("degC", "degree_Celsius", "deg_C", "C", "°C", "Celsius"):
        return values
    raise ValueError(f"{da.name}: temperature in {units!r} is not understood (K or degC)")


def _percent(da: xr.DataArray) -> np.ndarray:
    units = str(da.attrs.get("units", "%")).strip()
    values = da.values.astype("float64")
    if units in ("%", "percent", "pct"):
        return values
    if units in ("1", "", "fraction"):
        return values * 100.0
    raise ValueError(f"{da.name}: relative humidity in {units!r} is not understood (% or 1)")


def _metres_per_second(da: xr.DataArray) -> np.ndarray:
    units = str(da.attrs.get("units", "")).strip()
    values = da.values.astype("float64")
    if units in ("m s-1", "m/s", "m s**-1"):
        return values
    if units in ("km h-1", "km/h", "kph"):
        return values / 3.6
    raise ValueError(f"{da.name}: wind speed in {units!r} is not understood (m s-1 or km/h)")


def daily_weather(ds: xr.Dataset) -> DailyWeather:
    """The five daily quantities of a CF Dataset (``time``, ``lat``/``latitude``, ``lon``/``longitude``)."""
    renames = {k: v for k, v in (("latitude", "lat"), ("longitude", "lon")) if k in ds.dims or k in ds.coords}
    ds = ds.rename(renames).transpose("time", "lat", "lon", ...)
    return DailyWeather(time=ds["time"].values, lat=ds["lat"].values.astype("float64"),
                        lon=ds["lon"].values.astype("float64"), pr=_precipitation_mm_per_day(_find(ds, "pr")),
                        tmax=_celsius(_find(ds, "tmax")), tmean=_celsius(_find(ds, "tmean")),
                        rh=_percent(_find(ds, "rh")), wind=_metres_per_second(_find(ds, "wind")))


@dataclass
class StationWeather:
    """A station's daily noon weather as the Fire Weather Index system takes it (wind in km/h)."""

    longitude: float
    latitude: float
    dates: list[str]
    month: np.ndarray
    temp: np.ndarray
    rh: np.ndarray
    wind_kmh: np.ndarray
    prec: np.ndarray
    columns: dict[str, np.ndarray]   # every numeric column as read (reference outputs included, if present)


def read_cffdrs_table(text: str) -> StationWeather:
    """A cffdrs-format table (comma or semicolon separated, any case of the column names), one station."""
    dialect = ";" if text.splitlines()[0].count(";") > text.splitlines()[0].count(",") else ","
    rows = list(csv.DictReader(io.StringIO(text), delimiter=dialect))
    if not rows:
        raise ValueError("the table has no rows")
    upper: list[dict[str, Any]] = [{k.strip().upper(): v for k, v in row.items()} for row in rows]
    missing = [c for c in ("LAT", "YR", "MON", "DAY", "TEMP", "RH", "WS", "PREC") if c not in upper[0]]
    if missing:
        raise ValueError(f"the table lacks the column(s) {', '.join(missing)}")
    columns = {k: np.array([float(r[k]) for r in upper]) for k in upper[0] if k}
    if len(set(columns["LAT"])) != 1:
        raise ValueError("the table holds several stations (LAT differs); give one station per table")
    dates = [f"{int(r['YR']):04d}-{int(r['MON']):02d}-{int(r['DAY']):02d}" for r in upper]
    return StationWeather(longitude=float(columns.get("LONG", np.array([np.nan]))[0]),
                          latitude=float(columns["LAT"][0]), dates=dates, month=columns["MON"].astype(int),
                          temp=columns["TEMP"], rh=columns["RH"], wind_kmh=columns["WS"], prec=columns["PREC"],
                          columns=columns)
