"""Data fusion for DT developers: gridded fields and point observations brought onto common ground.

Each function takes and returns xarray objects, so the same code serves workflows (the integrator
registers them as processes) and notebooks:

- ``regrid``: a field onto another grid (nearest, bilinear, conservative for coarsening), via xarray-regrid;
- ``collocate``: a field sampled at observations in space and time (``twinengine.access.fusion_points``);
- ``resample`` / ``align``: temporal resampling and a common time axis;
- ``harmonise_units``: CF ``units`` converted through pint (the engine's UDUNITS registry);
- ``merge``: one CF-compliant dataset out of several.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, TypeVar

import xarray as xr

from twinengine.access.fusion_points import collocate
from twinengine.access.grid import axes_of
from twinengine.errors import InvalidInput, ValidationFailed
from twinengine.units import UnitError, convert

__all__ = ["align", "collocate", "harmonise_units", "merge", "regrid", "resample"]

X = TypeVar("X", xr.Dataset, xr.DataArray)
RegridMethod = Literal["nearest", "bilinear", "conservative"]
Aggregation = Literal["mean", "sum", "min", "max", "nearest", "linear"]


def _as_dataset(obj: xr.Dataset | xr.DataArray) -> xr.Dataset:
    return obj.to_dataset(name=obj.name or "values") if isinstance(obj, xr.DataArray) else obj


def regrid(field: X, target: xr.Dataset | xr.DataArray, *, method: RegridMethod = "bilinear") -> X:
    """``field`` on ``target``'s x/y grid. ``conservative`` keeps area means (use it to coarsen); ``nearest``
    keeps values as they are (categories); ``bilinear`` interpolates smoothly. Other dimensions pass through."""
    import xarray_regrid  # noqa: F401  (registers the .regrid accessor; it imports dask: not at engine start)

    source_axes = axes_of(_as_dataset(field))
    target_axes = axes_of(_as_dataset(target))
    grid = xr.Dataset(coords={source_axes.y: (source_axes.y, target_axes.ys),
                              source_axes.x: (source_axes.x, target_axes.xs)})
    for name in (source_axes.x, source_axes.y):
        grid[name].attrs = dict(field[name].attrs)
    time_dim = source_axes.t
    if method == "bilinear":
        out = field.regrid.linear(grid, time_dim=time_dim)
    elif method == "nearest":
        out = field.regrid.nearest(grid, time_dim=time_dim)
    elif method == "conservative":
        out = field.regrid.conservative(grid, latitude_coord=source_axes.y, time_dim=time_dim)
    else:
        raise InvalidInput(f"method: {method!r} is not one of nearest, bilinear, conservative")
    out.attrs = dict(field.attrs)
    if isinstance(out, xr.Dataset) and isinstance(field, xr.Dataset):
        for var in field.data_vars:
            if var in out:
                out[var].attrs = dict(field[var].attrs)
    elif isinstance(out, xr.DataArray):
        out.attrs = dict(field.attrs)
    return out  # type: ignore[no-any-return]


def resample(data: X, freq: str, *, how: Aggregation = "mean", time: str | None = None) -> X:
    """``data`` on a regular time axis of step ``freq`` (pandas offset: ``1h``, ``15min``, ``1D``).
    Aggregate when coarsening (mean for rates, sum for amounts, min/max), ``nearest``/``linear`` when
    refining."""
    dim = time or axes_of(_as_dataset(data)).t
    if dim is None:
        raise InvalidInput("the data has no time axis to resample")
    resampler = data.resample({dim: freq})
    if how == "linear":
        out = resampler.interpolate("linear")
    elif how == "nearest":
        out = resampler.nearest()
    elif how in ("mean", "sum", "min", "max"):
        out = getattr(resampler, how)(keep_attrs=True)
    else:
        raise InvalidInput(f"how: {how!r} is not one of mean, sum, min, max, nearest, linear")
    out.attrs = dict(data.attrs)
    return out


def align(*datasets: xr.Dataset, freq: str | None = None, how: Aggregation = "mean",
          join: Literal["inner", "outer"] = "inner") -> list[xr.Dataset]:
    """The datasets on one time axis: resampled to ``freq`` first when given, then aligned on their shared
    times (``inner``) or all times (``outer``, gaps as NaN)."""
    if freq is not None:
        datasets = tuple(resample(ds, freq, how=how) for ds in datasets)
    return list(xr.align(*datasets, join=join))


def _affine(from_unit: str, to_unit: str) -> tuple[float, float]:
    """Units are affine maps of each other (degC to K too): value_to = scale * value_from + offset."""
    offset = convert(0.0, from_unit, to_unit)
    return convert(1.0, from_unit, to_unit) - offset, offset


def harmonise_units(ds: xr.Dataset, units: Mapping[str, str] | None = None, *,
                    like: xr.Dataset | None = None) -> xr.Dataset:
    """Variables converted to the given units (``{"rain": "mm h-1"}``), or to the units of the variables of
    the same name in ``like``. Reads CF ``units`` attributes; lazy arrays stay lazy."""
    wanted = dict(units or {})
    if like is not None:
        for name, var in like.variables.items():
            if name in ds.variables and "units" in var.attrs:
                wanted.setdefault(str(name), str(var.attrs["units"]))
    out = ds.copy()
    for name, target in wanted.items():
        if name not in ds.variables:
            raise ValidationFailed.one(f"units.{name}", "no such variable")
        source = ds[name].attrs.get("units")
        if source is None:
            raise ValidationFailed.one(f"{name}.units", "the variable has no units attribute to convert from")
        try:
            scale, offset = _affine(str(source), target)
        except UnitError as exc:
            raise ValidationFailed.one(f"{name}.units", str(exc)) from None
        attrs = {**ds[name].attrs, "units": target}
        converted = ds[name] * scale + offset if (scale, offset) != (1.0, 0.0) else ds[name]
        converted.attrs = attrs
        out[name] = converted
    return out


def merge(*datasets: xr.Dataset, title: str | None = None, source: str | None = None) -> xr.Dataset:
    """One CF-1.10 dataset: variables merged (conflicting values refused), coordinates given their CF axis
    and units attributes, a ``history`` line saying what was merged."""
    try:
        merged = xr.merge(datasets, compat="no_conflicts", join="outer", combine_attrs="drop_conflicts")
    except (xr.MergeError, ValueError) as exc:
        raise InvalidInput(f"the datasets disagree and cannot be merged: {exc}") from None
    try:
        axes = axes_of(merged)
        merged[axes.x].attrs.update(standard_name="longitude", units="degrees_east", axis="X")
        merged[axes.y].attrs.update(standard_name="latitude", units="degrees_north", axis="Y")
        if axes.t:
            merged[axes.t].attrs.update(standard_name="time", axis="T")
        if axes.z:
            merged[axes.z].attrs.setdefault("axis", "Z")
    except InvalidInput:
        pass  # point data (no grid axes): leave coordinates as they are
    merged.attrs["Conventions"] = "CF-1.10"
    if title:
        merged.attrs["title"] = title
    if source:
        merged.attrs["source"] = source
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    names = ", ".join(str(d.attrs.get("title", f"dataset {i + 1}")) for i, d in enumerate(datasets))
    merged.attrs["history"] = f"{stamp} twinengine fusion.merge of {names}"
    return merged
