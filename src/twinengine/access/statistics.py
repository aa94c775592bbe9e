"""Which data variables of a dataset are the uncertainty of another, as the NetCDF-U and CF conventions say.

A variable (``level``) lists its uncertainty in CF's ``ancillary_variables`` (``"level_std level_q05
level_q95"``); each of those names its statistic by an UncertML URI in ``ref`` (NetCDF-U), quantiles their
level in ``quantile`` (0.05), and a CF ``standard_name`` ending in ``standard_error`` counts as a standard
deviation. EDR answers then carry the value and its statistics as one CoverageJSON ParameterGroup
(``access/covjson.py``), and a request for ``level`` brings its statistics along.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

__all__ = ["MEAN", "QUANTILE", "STD", "UNCERTML", "ancillaries", "statistic", "with_statistics"]

UNCERTML = "http://www.uncertml.org/statistics/"
MEAN = UNCERTML + "mean"
STD = UNCERTML + "standard-deviation"
QUANTILE = UNCERTML + "quantile"


def _names(attrs: dict[str, Any]) -> list[str]:
    listed = attrs.get("ancillary_variables")
    return str(listed).split() if isinstance(listed, str) else []


def statistic(attrs: dict[str, Any]) -> str | None:
    """The UncertML statistic a variable holds, or None for a plain variable."""
    ref = attrs.get("ref")
    if isinstance(ref, str) and ref.startswith(UNCERTML):
        return ref
    standard_name = attrs.get("standard_name")
    if isinstance(standard_name, str) and standard_name.endswith(" standard_error"):
        return STD
    return None


def quantile_level(attrs: dict[str, Any]) -> float | None:
    level = attrs.get("quantile")
    try:
        value = float(level) if level is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and 0 < value < 1 else None


def ancillaries(ds: xr.Dataset, name: str) -> list[str]:
    """The statistics of ``name`` the dataset holds on the same dimensions (others are left out)."""
    dims = ds[name].dims
    return [a for a in _names(dict(ds[name].attrs)) if a in ds.data_vars and a != name
            and ds[a].dims == dims and statistic(dict(ds[a].attrs)) is not None]


def base_of(ds: xr.Dataset, name: str) -> str | None:
    """The variable whose statistic ``name`` is, if one lists it."""
    for other in ds.data_vars:
        if str(other) != name and name in ancillaries(ds, str(other)):
            return str(other)
    return None


def with_statistics(ds: xr.Dataset, names: list[str]) -> list[str]:
    """The names asked for, each followed by its statistics: an answer carries a value's uncertainty."""
    out: list[str] = []
    for name in names:
        for wanted in (name, *(ancillaries(ds, name) if name in ds.data_vars else [])):
            if wanted not in out:
                out.append(wanted)
    return out
