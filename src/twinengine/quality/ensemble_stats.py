"""What an ensemble says: the members stacked along a ``member`` dimension, and the statistics derived
over it (mean, spread, quantiles, probability of exceeding a threshold), as an xarray Dataset and as JSON.

Definitions (docs/quality.md): spread is the sample standard deviation over members (ddof 1; 0 for one
member), quantiles interpolate linearly between members (numpy's default), and the probability of
exceedance is the share of members strictly above the threshold. The peak mean written to a property that
declares uncertainty carries the peak's spread (std), quantiles and members (``peak_uncertainty``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["DEFAULT_QUANTILES", "derive", "peak_uncertainty", "stack_members", "summary"]

DEFAULT_QUANTILES = (0.05, 0.5, 0.95)


def stack_members(values: Sequence[Any], *, dim: str = "step") -> xr.DataArray:
    """Member results (numbers or equally long series) as one array with a leading ``member`` dimension."""
    import xarray as xr
    arrays = [np.asarray(v, dtype="float64") for v in values]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"members' results differ in shape: {sorted(shapes)}")
    data = np.stack(arrays)
    dims = ["member", *([dim] if data.ndim == 2 else [f"{dim}_{i}" for i in range(data.ndim - 1)])]
    return xr.DataArray(data, dims=dims, coords={"member": np.arange(len(arrays))}, name="members")


def derive(members: xr.DataArray, *, quantiles: Sequence[float] = DEFAULT_QUANTILES,
           threshold: float | None = None) -> xr.Dataset:
    """Mean, spread, quantiles and (with a threshold) exceedance over ``member``; also of each member's
    maximum (``peak_*``): for a forecast, the chance that the level crosses the threshold at any step."""
    import xarray as xr
    out = xr.Dataset({"members": members})
    for prefix, data in (("", members), ("peak_", _peak(members))):
        ddof = 1 if data.sizes["member"] > 1 else 0
        out[f"{prefix}mean"] = data.mean("member")
        out[f"{prefix}spread"] = data.std("member", ddof=ddof)
        out[f"{prefix}quantiles"] = data.quantile(list(quantiles), dim="member")
        if threshold is not None:
            out[f"{prefix}exceedance"] = (data > threshold).mean("member")
    out.attrs.update(members=int(members.sizes["member"]), quantiles=list(map(float, quantiles)))
    if threshold is not None:
        out.attrs["threshold"] = float(threshold)
    return out


def _peak(members: xr.DataArray) -> xr.DataArray:
    other = [d for d in members.dims if d != "member"]
    return members.max(other) if other else members


def _plain(data: xr.DataArray) -> Any:
    values = np.round(data.values.astype("float64"), 6)
    return values.item() if values.ndim == 0 else values.tolist()


def summary(stats: xr.Dataset) -> dict[str, Any]:
    """The statistics as JSON (members left out): what the ensemble's run answers and what state keeps."""
    out: dict[str, Any] = {"members": stats.attrs["members"], "threshold": stats.attrs.get("threshold")}
    for prefix, key in (("", "series"), ("peak_", "peak")):
        part: dict[str, Any] = {"mean": _plain(stats[f"{prefix}mean"]), "spread": _plain(stats[f"{prefix}spread"]),
                                "quantiles": {f"{q:g}": _plain(stats[f"{prefix}quantiles"].sel(quantile=q))
                                              for q in stats[f"{prefix}quantiles"]["quantile"].values}}
        if f"{prefix}exceedance" in stats:
            part["exceedance"] = _plain(stats[f"{prefix}exceedance"])
        out[key] = part
    return out


def peak_uncertainty(stats: xr.Dataset, forms: Sequence[str]) -> dict[str, Any] | None:
    """The uncertainty of the peak mean in the forms asked (std, quantiles, members), or None for none;
    quantiles in increasing level, keyed as summary() keys them."""
    out: dict[str, Any] = {}
    if "std" in forms:
        out["std"] = _plain(stats["peak_spread"])
    if "quantiles" in forms:
        levels = sorted(float(q) for q in stats["peak_quantiles"]["quantile"].values)
        out["quantiles"] = {f"{q:g}": _plain(stats["peak_quantiles"].sel(quantile=q)) for q in levels}
    if "members" in forms:
        out["members"] = np.atleast_1d(_plain(_peak(stats["members"]))).tolist()
    return out or None
