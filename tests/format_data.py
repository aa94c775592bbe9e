"""Small real files of every format the engine reads, written here by each format's own library.

One field (time x lat x lon, rain in mm h-1) goes into zarr v2 and v3, netCDF, HDF5 (with dimension scales and
without), GRIB 2 (ecCodes, from its regular_ll sample), GeoTIFF (rioxarray) and a station table (CSV and
Parquet); a ROOT file (uproot's writer) holds a tree of events. Every writer returns what it wrote, so tests
compare the engine's answers with what the library reads back from the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

TIMES = pd.date_range("2026-03-01T00:00", periods=4, freq="6h").to_numpy()
LATS = np.array([46.5, 46.25, 46.0, 45.75, 45.5])  # north to south, as GRIB and GeoTIFF store them
LONS = np.array([7.5, 7.75, 8.0, 8.25, 8.5, 8.75])
STATIONS = {"RR-01": (8.262, 46.081), "RR-02": (7.9, 46.3), "RR-03": (8.6, 45.7)}


def field() -> xr.Dataset:
    """rain(time, lat, lon): distinct values everywhere, so a wrong index cannot pass for a right one."""
    t, y, x = np.meshgrid(np.arange(TIMES.size), np.arange(LATS.size), np.arange(LONS.size), indexing="ij")
    rain = (t * 100 + y * 10 + x + 0.5).astype("float32")
    ds = xr.Dataset({"rain": (("time", "lat", "lon"), rain, {"units": "mm h-1", "long_name": "rain rate"})},
                    coords={"time": TIMES, "lat": LATS, "lon": LONS})
    ds["lat"].attrs.update(units="degrees_north", standard_name="latitude")
    ds["lon"].attrs.update(units="degrees_east", standard_name="longitude")
    return ds


def write_zarr(path: Path, version: int) -> xr.Dataset:
    ds = field().chunk({"time": 2, "lat": 3, "lon": 3})
    ds.to_zarr(path, zarr_format=version, consolidated=version == 2)
    return field()


def write_netcdf(path: Path) -> xr.Dataset:
    field().to_netcdf(path, engine="h5netcdf")
    return field()


def write_hdf5(path: Path, *, scales: bool) -> xr.Dataset:
    """A plain HDF5 file as h5py writes it: with dimension scales (as netCDF-4 does) or bare arrays."""
    import h5py

    ds = field()
    seconds = (ds["time"].values - np.datetime64("1970-01-01")) // np.timedelta64(1, "s")
    with h5py.File(path, "w") as f:
        time = f.create_dataset("time", data=seconds.astype("int64"))
        time.attrs["units"] = "seconds since 1970-01-01 00:00:00"
        lat = f.create_dataset("lat", data=LATS)
        lat.attrs["units"] = "degrees_north"
        lon = f.create_dataset("lon", data=LONS)
        lon.attrs["units"] = "degrees_east"
        rain = f.create_dataset("rain", data=ds["rain"].values, chunks=(2, 5, 6))
        rain.attrs["units"] = "mm h-1"
        if scales:
            for k, scale in enumerate((time, lat, lon)):
                scale.make_scale(scale.name.strip("/"))
                rain.dims[k].attach_scale(scale)
    return ds


def write_grib(path: Path) -> xr.Dataset:
    """One GRIB 2 message per time step (total precipitation rate on a regular 0.25° grid), from ecCodes'
    regular_ll sample. GRIB keeps values at its packing's precision: what cfgrib reads back is the truth."""
    import eccodes

    ds = field()
    with open(path, "wb") as out:
        for k, when in enumerate(pd.DatetimeIndex(TIMES)):
            handle = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
            try:
                for key, value in (("Ni", LONS.size), ("Nj", LATS.size),
                                   ("latitudeOfFirstGridPointInDegrees", LATS[0]),
                                   ("longitudeOfFirstGridPointInDegrees", LONS[0]),
                                   ("latitudeOfLastGridPointInDegrees", LATS[-1]),
                                   ("longitudeOfLastGridPointInDegrees", LONS[-1]),
                                   ("iDirectionIncrementInDegrees", 0.25), ("jDirectionIncrementInDegrees", 0.25),
                                   ("dataDate", int(when.strftime("%Y%m%d"))), ("dataTime", int(when.strftime("%H%M"))),
                                   ("shortName", "tprate"), ("bitsPerValue", 24)):
                    eccodes.codes_set(handle, key, value)
                eccodes.codes_set_values(handle, ds["rain"].values[k].astype("float64").ravel())
                eccodes.codes_write(handle, out)
            finally:
                eccodes.codes_release(handle)
    return ds


def write_grib_without_grid(path: Path) -> None:
    """A GRIB 2 message on a reduced Gaussian grid (ecCodes' sample): no regular latitude/longitude axes."""
    import eccodes

    handle = eccodes.codes_grib_new_from_samples("reduced_gg_pl_32_grib2")
    try:
        with open(path, "wb") as out:
            eccodes.codes_write(handle, out)
    finally:
        eccodes.codes_release(handle)


def write_geotiff(path: Path) -> xr.Dataset:
    """The first time step as a two-band GeoTIFF in EPSG:4326 (band 2 = band 1 x 2), band names as
    descriptions."""
    import rioxarray  # noqa: F401

    first = field()["rain"].isel(time=0).drop_vars("time")
    bands = xr.concat([first, first * 2], dim="band").assign_coords(band=[1, 2])
    bands = bands.rename({"lat": "y", "lon": "x"}).rio.write_crs("EPSG:4326")
    bands.attrs = {"long_name": ("rain", "rain_x2")}
    bands.rio.to_raster(path, tags={"units": "mm h-1"})
    return xr.Dataset({"rain": first, "rain_x2": first * 2})


def station_frame() -> pd.DataFrame:
    """Gauge readings, one row per station and time (a gap at RR-03's second time step)."""
    rows = []
    for k, when in enumerate(pd.DatetimeIndex(TIMES)):
        for s, (sid, (x, y)) in enumerate(STATIONS.items()):
            if sid == "RR-03" and k == 1:
                continue
            rows.append({"station": sid, "lon": x, "lat": y, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "rain [mm]": round(0.5 * k + s, 2), "level [m]": round(1.0 + 0.1 * k + s, 2)})
    return pd.DataFrame(rows)


def write_csv(path: Path) -> pd.DataFrame:
    frame = station_frame()
    frame.to_csv(path, index=False)
    return frame


def write_parquet(path: Path) -> pd.DataFrame:
    frame = station_frame()
    frame.to_parquet(path, index=False)
    return frame


def write_root(path: Path) -> dict[str, np.ndarray]:
    """A TTree of 1000 events (energy, charge, a jagged hits branch) with uproot's writer."""
    import awkward as ak
    import uproot

    rng = np.random.default_rng(7)
    events = {"energy": rng.exponential(20.0, 1000), "charge": rng.integers(-1, 2, 1000).astype("int32")}
    hits = ak.Array([list(range(k % 4)) for k in range(1000)])
    with uproot.recreate(path) as f:
        f.mktree("events", {"energy": "float64", "charge": "int32", "hits": "var * int64"})
        f["events"].extend({**events, "hits": hits})
    return events
