"""The data fusion API (``twinengine.access.fusion``) as engine processes, so graphs regrid, collocate,
resample, align, harmonise units and merge with the same code a notebook calls.

Raster cubes (``t, bands, y, x``) become datasets with one variable per band where a process works on
variables (collocate, units, merge); regrid and resample keep the cube's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from twinengine.access import fusion
from twinengine.errors import ProcessParameterInvalid
from twinengine.timeutil import parse_setting_duration

__all__ = ["FUSION_SPECS", "as_dataset"]


def as_dataset(data: Any, what: str) -> xr.Dataset:
    """A process argument as a dataset: a cube's bands become variables."""
    if isinstance(data, xr.Dataset):
        return data
    if isinstance(data, xr.DataArray):
        if "bands" in data.dims:
            ds = data.to_dataset(dim="bands")
            return ds.drop_vars("spatial_ref", errors="ignore")
        return data.to_dataset(name=str(data.name or "values"))
    raise ProcessParameterInvalid(f"{what}: expects a data cube or dataset, not {type(data).__name__}")


def _cube(data: Any, what: str) -> xr.DataArray | xr.Dataset:
    if not isinstance(data, xr.DataArray | xr.Dataset):
        raise ProcessParameterInvalid(f"{what}: expects a data cube or dataset, not {type(data).__name__}")
    return data


def regrid(data: Any, target: Any, method: str = "bilinear") -> Any:
    if method not in ("nearest", "bilinear", "conservative"):
        raise ProcessParameterInvalid(f"regrid: method {method!r} is not nearest, bilinear or conservative")
    return fusion.regrid(_cube(data, "regrid: data"), _cube(target, "regrid: target"),
                         method=method)  # type: ignore[arg-type, type-var]


def collocate(data: Any, field: Any, space: str = "bilinear", time: str = "linear",
              tolerance: str | None = None, prefix: str = "") -> xr.Dataset:
    if space not in ("nearest", "bilinear") or time not in ("nearest", "linear"):
        raise ProcessParameterInvalid("collocate: space is nearest or bilinear, time is nearest or linear")
    gap = np.timedelta64(int(_seconds(tolerance)), "s") if tolerance else None
    return fusion.collocate(as_dataset(data, "collocate: data"), as_dataset(field, "collocate: field"),
                            space=space, time=time, tolerance=gap, prefix=prefix)  # type: ignore[arg-type]


def _seconds(text: str) -> float:
    try:
        value = parse_setting_duration(text, "tolerance")
    except ValueError as exc:
        raise ProcessParameterInvalid(str(exc)) from None
    if not hasattr(value, "total_seconds"):
        raise ProcessParameterInvalid(f"tolerance: {text!r} is not a duration (15m, 1h, 90)")
    return float(value.total_seconds())


def resample_time(data: Any, period: str, method: str = "mean") -> Any:
    if method not in ("mean", "sum", "min", "max", "nearest", "linear"):
        raise ProcessParameterInvalid(f"resample_time: method {method!r} is not mean, sum, min, max, nearest "
                                      "or linear")
    try:
        return fusion.resample(_cube(data, "resample_time: data"), period, how=method)  # type: ignore[arg-type, type-var]
    except ValueError as exc:
        raise ProcessParameterInvalid(f"resample_time: period {period!r}: {exc}") from None


def align_time(data: list[Any], period: str | None = None, method: str = "mean",
               join: str = "inner") -> list[xr.Dataset]:
    if join not in ("inner", "outer"):
        raise ProcessParameterInvalid(f"align_time: join {join!r} is not inner or outer")
    sets = [as_dataset(d, f"align_time: data[{i}]") for i, d in enumerate(data)]
    return fusion.align(*sets, freq=period, how=method, join=join)  # type: ignore[arg-type]


def harmonise_units(data: Any, units: dict[str, str] | None = None, like: Any = None) -> xr.Dataset:
    return fusion.harmonise_units(as_dataset(data, "harmonise_units: data"), units,
                                  like=as_dataset(like, "harmonise_units: like") if like is not None else None)


def merge_datasets(data: list[Any], title: str | None = None, source: str | None = None) -> xr.Dataset:
    sets = [as_dataset(d, f"merge_datasets: data[{i}]") for i, d in enumerate(data)]
    return fusion.merge(*sets, title=title, source=source)


_DATA: dict[str, Any] = {}
_STR = {"type": "string"}
_OPT_STR = [{"type": "string"}, {"type": "null"}]


def _p(name: str, schema: Any, description: str, default: Any = ...) -> dict[str, Any]:
    out = {"name": name, "schema": schema, "description": description, "optional": default is not ...}
    return out | ({"default": default} if default is not ... else {})


def _spec(pid: str, summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": pid, "summary": summary, "description": f"{summary} (twinengine.access.fusion).",
            "categories": ["engine", "fusion"], "parameters": params,
            "returns": {"description": summary, "schema": _DATA}}


FUSION_SPECS: list[tuple[dict[str, Any], Any, bool]] = [
    (_spec("regrid", "A field on another field's x/y grid (nearest, bilinear, conservative)", [
        _p("data", _DATA, "The field"), _p("target", _DATA, "Whose grid to take"),
        _p("method", _STR, "nearest, bilinear or conservative (area means, for coarsening)", "bilinear")]),
     regrid, True),
    (_spec("collocate", "A field sampled at point observations in space and time", [
        _p("data", _DATA, "Observations with lon/lat (and time) along one dimension (e.g. load_stream)"),
        _p("field", _DATA, "Gridded field"), _p("space", _STR, "nearest or bilinear", "bilinear"),
        _p("time", _STR, "nearest or linear", "linear"),
        _p("tolerance", _OPT_STR, "With time=nearest: the largest time gap (15m, 1h)", None),
        _p("prefix", _STR, "Prefix of the sampled variables' names", "")]), collocate, True),
    (_spec("resample_time", "Data on a regular time axis (aggregate to coarsen, interpolate to refine)", [
        _p("data", _DATA, "Cube or dataset with a time axis"),
        _p("period", _STR, "pandas offset: 1h, 15min, 1D"),
        _p("method", _STR, "mean, sum, min, max, nearest or linear", "mean")]), resample_time, True),
    (_spec("align_time", "Datasets on one time axis (optionally resampled first)", [
        _p("data", {"type": "array"}, "Cubes or datasets"), _p("period", _OPT_STR, "Resample to this first", None),
        _p("method", _STR, "How to resample", "mean"), _p("join", _STR, "inner or outer", "inner")]),
     align_time, True),
    (_spec("harmonise_units", "Variables converted to other units (CF units attributes, UDUNITS)", [
        _p("data", _DATA, "Dataset"),
        _p("units", [{"type": "object"}, {"type": "null"}], "variable → unit", None),
        _p("like", _DATA, "Take the units of the same variables here", None)]), harmonise_units, True),
    (_spec("merge_datasets", "One CF-1.10 dataset out of several (conflicting values refused)", [
        _p("data", {"type": "array"}, "Cubes or datasets"), _p("title", _OPT_STR, "Title attribute", None),
        _p("source", _OPT_STR, "Source attribute", None)]), merge_datasets, True),
]
