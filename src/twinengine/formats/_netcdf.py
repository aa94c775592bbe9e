"""netCDF (4 through h5netcdf, classic 3 through scipy) and plain HDF5 files.

An HDF5 file written without netCDF's conventions has dimension scales (read as dimensions) or none at
all; then h5netcdf names the dimensions ``phony_dim_N`` and a 1-D variable with a coordinate's name (lat,
lon, time, level...) along one of them becomes that dimension's coordinate.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, ClassVar

import xarray as xr

from twinengine.formats._base import FormatBackend

__all__ = ["HDF5Format", "NetCDFFormat"]

_CLASSIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_COORDINATES = ("lon", "longitude", "x", "lat", "latitude", "y", "time", "t", "valid_time", "z", "level", "lev",
                "height", "depth", "plev", "pressure", "altitude")


def _open_h5(target: Path | IO[bytes], *, phony: bool) -> xr.Dataset:
    kwargs = {"phony_dims": "sort"} if phony else {}
    ds = xr.open_dataset(target, chunks={}, engine="h5netcdf", **kwargs)  # type: ignore[arg-type]
    return _name_phony_dims(ds) if phony else ds


def _name_phony_dims(ds: xr.Dataset) -> xr.Dataset:
    """Rename each ``phony_dim_N`` along which exactly one 1-D variable with a coordinate's name lies."""
    renames: dict[str, str] = {}
    for dim in [d for d in ds.dims if str(d).startswith("phony_dim_")]:
        found = [str(n) for n, v in ds.variables.items() if v.dims == (dim,) and str(n).lower() in _COORDINATES]
        if len(found) == 1 and found[0] not in ds.dims:
            renames[str(dim)] = found[0]
    if not renames:
        return ds
    ds = ds.swap_dims(renames)
    return ds.set_coords([n for n in renames.values() if n in ds.data_vars])


class NetCDFFormat(FormatBackend):
    name: ClassVar[str] = "netcdf"
    description: ClassVar[str] = "a netCDF file"
    suffixes: ClassVar[tuple[str, ...]] = (".nc", ".nc4", ".cdf", ".netcdf")
    media_type: ClassVar[str] = "application/x-netcdf"
    requires: ClassVar[tuple[str, ...]] = ("h5netcdf",)

    def open_dataset(self, path: Path) -> xr.Dataset:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic in _CLASSIC:
            return xr.open_dataset(path, chunks={}, engine="scipy")
        return _open_h5(path, phony=False)

    def open_fileobj(self, fileobj: IO[bytes]) -> xr.Dataset | None:
        return _open_h5(fileobj, phony=False)


class HDF5Format(FormatBackend):
    name: ClassVar[str] = "hdf5"
    description: ClassVar[str] = "an HDF5 file"
    suffixes: ClassVar[tuple[str, ...]] = (".h5", ".hdf5", ".he5")
    media_type: ClassVar[str] = "application/x-hdf5"
    requires: ClassVar[tuple[str, ...]] = ("h5netcdf", "h5py")

    def open_dataset(self, path: Path) -> xr.Dataset:
        return _open_h5(path, phony=True)

    def open_fileobj(self, fileobj: IO[bytes]) -> xr.Dataset | None:
        return _open_h5(fileobj, phony=True)
