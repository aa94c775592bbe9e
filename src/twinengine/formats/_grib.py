"""GRIB 1 and 2 through cfgrib and ecCodes (the ``eccodes`` wheel bundles the library; Debian's ``libeccodes0``
works as well).

Analyses at several times (one step) are served on a plain time axis (the messages' valid times); forecasts
with several steps keep the reference time and step, which EDR serves as instances. Messages on a grid
without regular latitude/longitude axes (reduced Gaussian, unstructured) are refused with the grid type.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import xarray as xr

from twinengine.errors import UnreadableFile
from twinengine.formats._base import FormatBackend

__all__ = ["GRIBFormat"]


def _valid_time_axis(ds: xr.Dataset) -> xr.Dataset:
    """Single-step messages at several reference times: a ``time`` axis of valid times."""
    step_is_axis = "step" in ds.dims
    if "time" in ds.dims and not step_is_axis and "valid_time" in ds.coords and ds["valid_time"].dims == ("time",):
        ds = ds.drop_vars(["step"], errors="ignore").swap_dims({"time": "valid_time"})
        ds = ds.drop_vars("time").rename({"valid_time": "time"})
    elif "time" not in ds.dims and "valid_time" in ds.coords and ds["valid_time"].ndim == 0:
        # one message: its valid time as a length-1 axis, so that EDR answers say when the values hold
        valid = ds["valid_time"].values
        ds = ds.drop_vars(["time", "step", "valid_time"], errors="ignore").expand_dims(time=[valid])
    if "time" in ds.coords and "step" not in ds.dims:
        ds["time"].attrs = {"standard_name": "time", "long_name": "valid time", "axis": "T"}
    return ds


class GRIBFormat(FormatBackend):
    name: ClassVar[str] = "grib"
    description: ClassVar[str] = "a GRIB file"
    suffixes: ClassVar[tuple[str, ...]] = (".grib", ".grib1", ".grib2", ".grb", ".grb2")
    media_type: ClassVar[str] = "application/x-grib"
    requires: ClassVar[tuple[str, ...]] = ("cfgrib", "eccodes")
    install: ClassVar[str] = "pip install 'twinengine[formats]', or cfgrib and eccodes"

    @classmethod
    def missing(cls) -> list[str]:
        """cfgrib and eccodes import only where the ecCodes library itself loads (from the wheel or Debian)."""
        absent = super().missing()
        if absent:
            return absent
        try:
            import cfgrib  # noqa: F401
        except Exception as exc:  # the Python packages are there, the shared library is not
            return [f"the ecCodes library ({type(exc).__name__}: {exc})"]
        return []

    def open_dataset(self, path: Path) -> xr.Dataset:
        # indexpath="": no .idx files beside the data (the collections folder is not ours to write in)
        ds = xr.open_dataset(path, engine="cfgrib", chunks={}, backend_kwargs={"indexpath": ""})
        if not ds.data_vars:
            raise UnreadableFile("holds no GRIB message that cfgrib can read as a variable")
        if "latitude" not in ds.dims or "longitude" not in ds.dims:
            kinds = sorted({str(v.attrs.get("GRIB_gridType", "unknown")) for v in ds.data_vars.values()})
            raise UnreadableFile(f"GRIB messages on a {', '.join(kinds)} grid have no regular latitude/longitude "
                                 "axes; the engine serves regular_ll and regular_gg grids (regrid the file, "
                                 "e.g. with cdo or earthkit-regrid)")
        ds = _valid_time_axis(ds)
        for name in ds.data_vars:
            units = ds[name].attrs.get("GRIB_units") or ds[name].attrs.get("units")
            if units and "units" not in ds[name].attrs:
                ds[name].attrs["units"] = units
        return ds
