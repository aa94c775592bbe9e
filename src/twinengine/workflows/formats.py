"""Output formats of ``save_result``: netCDF, GeoTIFF (raster cubes), zarr (zipped store), JSON, NPY.

NPY keeps a numeric array (a cube's values, a nested list of numbers) as NumPy's ``.npy`` bytes
(``np.save``, no pickles): ensembles of configurations and other arrays without coordinates.

Cubes are computed through the run's executor first, then written by xarray, h5netcdf, rioxarray and zarr.
"""

from __future__ import annotations

import math
import shutil
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from twinengine.errors import ProcessParameterInvalid
from twinengine.workflows.result_size import refuse, write_json

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["FORMATS", "OutputFormat", "find_format", "to_json_value", "write"]


@dataclass(frozen=True)
class OutputFormat:
    name: str
    title: str
    extension: str
    media_type: str
    gis_data_types: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {"title": self.title, "gis_data_types": list(self.gis_data_types), "parameters": {}}


FORMATS = {
    "netCDF": OutputFormat("netCDF", "Network Common Data Form", "nc", "application/x-netcdf", ("raster",)),
    "GTiff": OutputFormat("GTiff", "GeoTIFF", "tif", "image/tiff; application=geotiff", ("raster",)),
    "ZARR": OutputFormat("ZARR", "Zarr store (zipped)", "zarr.zip", "application/zip", ("raster",)),
    "JSON": OutputFormat("JSON", "JSON", "json", "application/json", ("raster", "vector", "table", "other")),
    "NPY": OutputFormat("NPY", "NumPy array (.npy)", "npy", "application/x-npy", ("raster", "other")),
}
_ALIASES = {"nc": "netCDF", "netcdf": "netCDF", "gtiff": "GTiff", "geotiff": "GTiff", "tif": "GTiff",
            "tiff": "GTiff", "zarr": "ZARR", "json": "JSON", "npy": "NPY"}


def find_format(name: str) -> OutputFormat:
    key = _ALIASES.get(name.lower(), name)
    for fmt in FORMATS.values():
        if fmt.name.lower() == key.lower():
            return fmt
    raise ProcessParameterInvalid(f"format {name!r} is not supported; use one of {', '.join(FORMATS)}")


def _clean_attrs(attrs: dict[Any, Any]) -> dict[str, Any]:
    keep: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            keep[str(key)] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
            keep[str(key)] = list(value)
    return keep


def as_dataset(data: xr.DataArray | xr.Dataset) -> xr.Dataset:
    """A cube as a dataset: one variable per band (if it has a band dimension), clean attributes."""
    import xarray as xr
    if isinstance(data, xr.DataArray):
        if "bands" in data.dims:
            ds = data.to_dataset(dim="bands")
        else:
            ds = data.to_dataset(name=str(data.name) if data.name is not None else "data")
    else:
        ds = data
    ds = ds.copy()
    ds.attrs = _clean_attrs(ds.attrs)
    for name in list(ds.variables):
        ds[name].attrs = _clean_attrs(ds[name].attrs)
        ds[name].encoding = {}
    return ds


def to_json_value(value: Any) -> Any:
    """A JSON-able form of a result: cubes as {dims, coords, data}, numbers as numbers, NaN as null."""
    import xarray as xr
    if isinstance(value, xr.Dataset):
        return {name: to_json_value(value[name]) for name in value.data_vars}
    if isinstance(value, xr.DataArray):
        coords = {str(k): to_json_value(v.values) for k, v in value.coords.items() if v.ndim <= 1}
        return {"dims": [str(d) for d in value.dims], "coords": coords, "data": to_json_value(value.values),
                "attrs": _clean_attrs(value.attrs)}
    if isinstance(value, np.ndarray):
        if np.issubdtype(value.dtype, np.datetime64):
            return [str(v) for v in np.datetime_as_string(value, unit="s").tolist()] if value.ndim else str(value)
        return to_json_value(value.tolist())
    if isinstance(value, np.generic):
        return to_json_value(value.item())
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "model_dump"):
        return to_json_value(value.model_dump())
    return str(value)


def write(data: Any, fmt: OutputFormat, folder: Path, stem: str, *, limit: int | None = None,
          budget: int | None = None) -> Path:
    """Write computed ``data`` (numpy-backed) in ``fmt`` under ``folder``; returns the file. With a ``limit``
    (the bytes left of a run's ``budget``) a result over it is refused (``ResultTooLarge``): before it is
    written where its values tell its size (NPY, netCDF, GeoTIFF), while it is written (JSON), before it is
    packed (zarr), or once written; whatever was written of it is removed."""
    path = folder / f"{stem}.{fmt.extension}"
    if limit is not None and fmt.name in ("NPY", "netCDF", "GTiff"):
        estimate = int(getattr(data, "nbytes", 0) or 0)
        if estimate > limit:
            raise refuse(limit, size=estimate, budget=budget)
    try:
        _write(data, fmt, path, limit, budget)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(folder / f"{stem}.zarr", ignore_errors=True)  # a zarr store is kept zipped only
    size = path.stat().st_size
    if limit is not None and size > limit:
        path.unlink()
        raise refuse(limit, size=size, budget=budget)
    return path


def _write(data: Any, fmt: OutputFormat, path: Path, limit: int | None, budget: int | None) -> None:
    import xarray as xr
    if fmt.name == "NPY":
        _write_npy(data, path)
        return
    is_cube = isinstance(data, xr.DataArray | xr.Dataset)
    if fmt.name == "JSON" or not is_cube:
        if fmt.name != "JSON":
            raise ProcessParameterInvalid(f"format {fmt.name} needs a raster data cube; this result is "
                                          f"{type(data).__name__} (use JSON)")
        try:
            write_json(to_json_value(data), path, limit=limit, budget=budget)
        except ValueError as exc:  # a NaN or infinity the value kept
            raise ProcessParameterInvalid(f"format JSON: {exc}") from None
        return
    if fmt.name == "netCDF":
        as_dataset(data).to_netcdf(path, engine="h5netcdf")
    elif fmt.name == "ZARR":
        store = path.with_name(path.name.removesuffix(".zip"))
        as_dataset(data).to_zarr(store, mode="w", consolidated=False)
        files = sorted(file for file in store.rglob("*") if file.is_file())
        packed = sum(file.stat().st_size for file in files)
        if limit is not None and packed > limit:
            raise refuse(limit, size=packed, budget=budget)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
            for file in files:
                zf.write(file, file.relative_to(store).as_posix())
    elif fmt.name == "GTiff":
        cube = data if isinstance(data, xr.DataArray) else data.to_dataarray(dim="bands")
        if "x" not in cube.dims or "y" not in cube.dims or cube.ndim > 3:
            raise ProcessParameterInvalid(f"GTiff needs a raster with x and y and at most one more dimension "
                                          f"(this cube has {list(cube.dims)}); reduce it first or use netCDF")
        import rioxarray  # noqa: F401  (the .rio accessor)

        extra = [d for d in cube.dims if d not in ("x", "y")]
        cube = cube.transpose(*extra, "y", "x")
        if cube.rio.crs is None:
            cube = cube.rio.write_crs("EPSG:4326")
        cube.attrs = _clean_attrs(cube.attrs)
        cube.rio.to_raster(path)


def _write_npy(data: Any, path: Path) -> None:
    """A numeric array as .npy; anything else (ragged lists, strings, objects) is refused, never pickled."""
    import xarray as xr
    values = data.values if isinstance(data, xr.DataArray) else data
    if isinstance(values, xr.Dataset):
        raise ProcessParameterInvalid("format NPY needs one array; this result is a dataset of "
                                      f"{len(values.data_vars)} variables (select one, or use netCDF)")
    try:
        array = np.asarray(values)
    except ValueError as exc:  # ragged nested lists
        raise ProcessParameterInvalid(f"format NPY needs a rectangular numeric array: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise ProcessParameterInvalid(f"format NPY needs a numeric array; this result has dtype {array.dtype}")
    with path.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
