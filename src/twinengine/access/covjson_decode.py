"""CoverageJSON back to xarray, on the client's side: the SDK's ``to_xarray()`` of EDR answers.

The names follow the engine's own netCDF answers (``access.formats.to_xarray``): axes x, y, z, t become
``lon``, ``lat``, ``z``, ``time``, in CF's order (time, z, lat, lon) whatever order ``axisNames`` gives; a
composite axis becomes the ``point`` dimension with its tuple columns as coordinates; a CoverageCollection
becomes one dataset along ``coverage`` (outer join on the other axes). Parameters keep their units, label
and observed property as CF attributes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from twinengine.errors import InvalidInput

__all__ = ["to_xarray"]

_NAMES = {"x": "lon", "y": "lat", "z": "z", "t": "time"}
_ORDER = {"time": 0, "z": 1, "lat": 2, "lon": 3, "point": 4}


def _axis_values(axis: dict[str, Any], name: str) -> np.ndarray:
    if "values" in axis:
        values = axis["values"]
    elif {"start", "stop", "num"} <= set(axis):
        return np.linspace(float(axis["start"]), float(axis["stop"]), int(axis["num"]))
    else:
        raise InvalidInput(f"CoverageJSON axis {name!r} has neither values nor start/stop/num")
    return _times(values) if name == "t" else np.asarray(values, dtype="float64")


def _times(values: list[Any]) -> np.ndarray:
    return np.array([str(v).replace("Z", "").replace("+00:00", "") for v in values], dtype="datetime64[ns]")


def _attrs(parameter: dict[str, Any]) -> dict[str, str]:
    out = {}
    unit = parameter.get("unit") or {}
    symbol = unit.get("symbol")
    symbol = symbol.get("value") if isinstance(symbol, dict) else symbol
    label = symbol or (unit.get("label") or {}).get("en")
    if label:
        out["units"] = str(label)
    description = (parameter.get("description") or {}).get("en")
    if description:
        out["long_name"] = str(description)
    observed = (parameter.get("observedProperty") or {}).get("id")
    if observed:
        out["standard_name"] = str(observed)
    return out


def _coverage(coverage: dict[str, Any], parameters: dict[str, Any]) -> xr.Dataset:
    axes = coverage["domain"].get("axes", {})
    coords: dict[str, Any] = {}
    point_columns: dict[str, np.ndarray] = {}
    for name, axis in axes.items():
        if name == "composite":
            columns = list(axis.get("coordinates", []))
            rows = axis.get("values", [])
            for k, column in enumerate(columns):
                cells = [row[k] for row in rows]
                point_columns[column] = _times(cells) if column == "t" else np.asarray(cells, dtype="float64")
            continue
        coords[_NAMES.get(name, name)] = _axis_values(axis, name)
    data: dict[str, Any] = {}
    used: set[str] = set()
    for pname, rng in coverage.get("ranges", {}).items():
        if rng.get("type") != "NdArray":
            raise InvalidInput(f"range {pname!r} is a {rng.get('type')}; only NdArray ranges are decoded")
        flat = np.array([np.nan if v is None else v for v in rng.get("values", [])], dtype="float64")
        names = list(rng.get("axisNames", []))
        dims = tuple("point" if a == "composite" else _NAMES.get(a, a) for a in names)
        used |= set(names)
        shape = rng.get("shape", [flat.size] if names else [])
        array = flat.reshape(shape) if names else flat.reshape(())
        variable = xr.Variable(dims, array, attrs=_attrs(parameters.get(pname, {})))
        data[pname] = variable.transpose(*sorted(dims, key=lambda d: _ORDER.get(d, len(_ORDER))))  # CF: t, z, y, x
    out_coords: dict[str, Any] = {}
    for name, axis_values in coords.items():
        axis = next(k for k, v in _NAMES.items() if v == name) if name in _NAMES.values() else name
        single = axis not in used and len(axis_values) == 1  # an axis no range runs along: a scalar coordinate
        out_coords[name] = ((), axis_values[0]) if single else (name, axis_values)
    for column, column_values in point_columns.items():
        out_coords[_NAMES.get(column, column)] = ("point", column_values)
    ds = xr.Dataset(data, coords=out_coords)
    if "lon" in ds.coords:
        ds["lon"].attrs.update(units="degrees_east", standard_name="longitude")
    if "lat" in ds.coords:
        ds["lat"].attrs.update(units="degrees_north", standard_name="latitude")
    return ds


def to_xarray(document: dict[str, Any]) -> xr.Dataset:
    """A CoverageJSON Coverage or CoverageCollection (a parsed document) as an xarray dataset."""
    kind = document.get("type")
    if kind == "Coverage":
        return _coverage(document, document.get("parameters", {}))
    if kind == "CoverageCollection":
        parameters = document.get("parameters", {})
        parts = [_coverage(c, {**parameters, **c.get("parameters", {})}) for c in document.get("coverages", [])]
        if not parts:
            raise InvalidInput("the CoverageCollection holds no coverage")
        return parts[0] if len(parts) == 1 else xr.concat(parts, dim="coverage", join="outer", coords="different",
                                                           compat="equals")
    raise InvalidInput(f"not a CoverageJSON Coverage or CoverageCollection (type {kind!r})")
