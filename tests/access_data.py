"""Small gridded collections for the access (EDR) tests: 3-D rain, 4-D temperature on pressure levels, and a
forecast with runs and lead times. Deterministic, chunked like real cubes (several chunks per axis)."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

STATION = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "id": "RR-01", "geometry": {"type": "Point", "coordinates": [8.1, 45.3]},
     "properties": {"name": "river gauge RR-01"}}]}


def rain_cube() -> xr.Dataset:
    time = pd.date_range("2026-03-01", periods=240, freq="h")
    lat = np.round(np.arange(49.0, 39.99, -0.25), 2)  # descending, as many reanalyses are
    lon = np.round(np.arange(5.0, 15.01, 0.25), 2)
    rng = np.random.default_rng(42)
    rain = rng.gamma(0.6, 1.5, (time.size, lat.size, lon.size)).astype("float32")
    rain[5, 3, 4] = np.nan
    temp = (10 + 5 * np.sin(np.arange(time.size) / 24 * 2 * np.pi)[:, None, None]
            + rng.normal(0, 1, (time.size, lat.size, lon.size))).astype("float32")
    ds = xr.Dataset(
        {"rain": (("time", "lat", "lon"), rain, {"units": "mm h-1", "standard_name": "lwe_precipitation_rate",
                                                 "long_name": "rain rate"}),
         "temp": (("time", "lat", "lon"), temp, {"units": "degC", "standard_name": "air_temperature"})},
        coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})},
        attrs={"title": "Test rain", "edr:locations": json.dumps(STATION)})
    return ds


def atmos_cube() -> xr.Dataset:
    time = pd.date_range("2026-03-01", periods=6, freq="6h")
    plev = np.array([1000.0, 850.0, 700.0, 500.0, 300.0])
    lat = np.arange(40.0, 50.01, 0.5)
    lon = np.arange(0.0, 20.01, 0.5)
    rng = np.random.default_rng(7)
    ta = (280 - 0.05 * (1000 - plev)[None, :, None, None]
          + rng.normal(0, 1, (time.size, plev.size, lat.size, lon.size))).astype("float32")
    return xr.Dataset({"ta": (("time", "plev", "lat", "lon"), ta, {"units": "K", "standard_name": "air_temperature"})},
                      coords={"time": time, "plev": ("plev", plev, {"units": "hPa", "axis": "Z"}), "lat": lat,
                              "lon": lon}, attrs={"title": "Test atmosphere"})


def forecast_cube() -> xr.Dataset:
    runs = pd.date_range("2026-03-01", periods=3, freq="12h")
    step = pd.to_timedelta(np.arange(0, 25, 6), unit="h")
    lat = np.arange(44.0, 47.01, 0.5)
    lon = np.arange(6.0, 10.01, 0.5)
    rng = np.random.default_rng(3)
    tp = rng.gamma(0.5, 2, (runs.size, step.size, lat.size, lon.size)).astype("float32")
    return xr.Dataset({"tp": (("forecast_reference_time", "step", "lat", "lon"), tp, {"units": "mm"})},
                      coords={"forecast_reference_time": ("forecast_reference_time", runs,
                                                          {"standard_name": "forecast_reference_time"}),
                              "step": step, "lat": lat, "lon": lon}, attrs={"title": "Test forecast"})


def write_collections(folder: Path) -> dict[str, xr.Dataset]:
    """Write the three collections (zarr, zarr, netCDF) into ``folder`` and return them loaded in memory.

    They are written once per test process and copied after that: writing them took 0.7 s of CPU, a copy
    0.06 s, and about 80 tests each want a set of their own (a test may write into its copy)."""
    shutil.copytree(_written(), folder, dirs_exist_ok=True)
    return {"rain": rain_cube(), "atmos": atmos_cube(), "forecast": forecast_cube()}


@functools.cache
def _written() -> Path:
    """This process's written set, in a folder removed when the process ends."""
    folder = Path(tempfile.mkdtemp(prefix="twin-test-collections-"))
    atexit.register(shutil.rmtree, folder, True)
    rain, atmos, fc = rain_cube(), atmos_cube(), forecast_cube()
    rain.to_zarr(folder / "rain.zarr", mode="w", consolidated=False,
                 encoding={v: {"chunks": (48, 10, 12)} for v in ("rain", "temp")})
    atmos.to_zarr(folder / "atmos.zarr", mode="w", consolidated=False, encoding={"ta": {"chunks": (2, 2, 8, 8)}})
    fc.to_netcdf(folder / "forecast.nc", engine="h5netcdf")
    return folder
