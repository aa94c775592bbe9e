"""The colour scale a variable is drawn on: fixed per variable, so every frame of a time slider and every
collection of one quantity compare, and a floor below which a value is drawn as none.

A scale scaled to each image lies twice: a dry hour's rounding noise (1e-19 mm/h) fills the whole colour
range and looks like a storm, and a rainy hour saturates a scale taken from a dry one. The scale comes, in
order, from the variable's own attributes (``display_range``, then CF ``valid_range`` or
``valid_min``/``valid_max``; ``display_floor`` for the floor), from the table of common quantities below
(matched by CF standard name, then variable name and units), and only last from the data drawn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DEFAULTS", "Legend", "legend_for"]


@dataclass(frozen=True)
class Legend:
    """``lo``..``hi`` span the colours; values below ``floor`` are drawn transparent (None: no floor).
    ``source``: declared (the variable's attributes), default (the table), data (the image) or request."""

    lo: float
    hi: float
    floor: float | None
    source: str


@dataclass(frozen=True)
class _Default:
    names: str  # a regular expression matched against the variable's name and standard name
    units: tuple[str, ...]  # units as written in files (compared without spaces, lower case); () matches any
    lo: float
    hi: float
    floor: float | None
    why: str


# Common quantities. A floor is the smallest value a person would call "some": below it a cell is drawn empty.
DEFAULTS: tuple[_Default, ...] = (
    _Default(r"rain|precip|^pr$|^tp$|^rr$|rainfall", ("mm/h", "mmh-1", "mm/hr", "mmhr-1", "mm h**-1"), 0.0, 20.0,
             0.1, "rain rate: 20 mm/h is heavy rain; 0.1 mm/h is below a rain gauge's resolution (0.1-0.2 mm)"),
    _Default(r"rain|precip|^pr$|^tp$|^rr$|rainfall", ("kgm-2s-1", "kg/m2/s", "kgm**-2s**-1"), 0.0, 20.0 / 3600,
             0.1 / 3600, "precipitation flux (CF): the same 0-20 mm/h with a 0.1 mm/h floor"),
    _Default(r"rain|precip|^pr$|^tp$|^rr$|rainfall", ("mm/d", "mm/day", "mmd-1", "mmday-1"), 0.0, 100.0, 0.1,
             "daily rain: 100 mm/day is extreme; 0.1 mm is a gauge's resolution"),
    _Default(r"rain|precip|^pr$|^tp$|^rr$|rainfall", ("mm",), 0.0, 50.0, 0.1,
             "rain accumulated over a step: 0-50 mm, 0.1 mm floor"),
    _Default(r"rain|precip|^pr$|^tp$|^rr$|rainfall", ("m",), 0.0, 0.05, 0.0001,
             "rain accumulated in metres (as ERA5's tp): 0-50 mm, 0.1 mm floor"),
    _Default(r"temp|^t2m$|^tas$|^t$|air_temperature", ("k",), 230.0, 320.0, None, "air temperature, -43 to 47 °C"),
    _Default(r"temp|^t2m$|^tas$|^t$|air_temperature", ("degc", "°c", "celsius", "degreesc"), -40.0, 45.0, None,
             "air temperature in °C"),
    _Default(r"wind|^ws$|^sfcwind$|^si10$", ("m/s", "ms-1", "m s**-1"), 0.0, 40.0, None,
             "wind speed: 40 m/s is a strong hurricane"),
    _Default(r"humid|^rh$|^hurs$", ("%", "percent"), 0.0, 100.0, None, "relative humidity"),
    _Default(r"soil_moisture|soilmoist|^sm$|^swvl", ("m3/m3", "m3m-3", "m**3m**-3"), 0.0, 0.6, None,
             "volumetric soil moisture: 0.6 is saturated peat"),
    _Default(r"prob|exceed|fraction|cover", ("1", "", "%"), 0.0, 1.0, None,
             "a probability or fraction (0-100 when in %)"),
    _Default(r"pressure|^msl$|^psl$|^sp$", ("pa",), 95_000.0, 105_000.0, None, "sea-level pressure, 950-1050 hPa"),
    _Default(r"pressure|^msl$|^psl$|^sp$", ("hpa",), 950.0, 1050.0, None, "sea-level pressure in hPa"),
)


def _units(text: Any) -> str:
    return re.sub(r"\s+", "", str(text or "")).lower()


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _pair(value: Any) -> tuple[float, float] | None:
    items = list(np.ravel(np.asarray(value))) if value is not None and not isinstance(value, str) else []
    if isinstance(value, str):
        items = [v for v in re.split(r"[,\s]+", value.strip()) if v]
    if len(items) != 2:
        return None
    lo, hi = _number(items[0]), _number(items[1])
    return (lo, hi) if lo is not None and hi is not None and hi > lo else None


def _declared(attrs: Mapping[str, Any]) -> tuple[float, float] | None:
    for key in ("display_range", "valid_range"):
        found = _pair(attrs.get(key))
        if found is not None:
            return found
    lo, hi = _number(attrs.get("valid_min")), _number(attrs.get("valid_max"))
    return (lo, hi) if lo is not None and hi is not None and hi > lo else None


def _default(name: str, attrs: Mapping[str, Any]) -> _Default | None:
    units = _units(attrs.get("units"))
    labels = [str(attrs.get("standard_name") or "").lower(), name.lower()]
    for entry in DEFAULTS:
        if entry.units and units not in {_units(u) for u in entry.units}:
            continue
        if any(label and re.search(entry.names, label) for label in labels):
            if units == "%" and entry.hi == 1.0:  # a fraction given in per cent
                return _Default(entry.names, entry.units, 0.0, 100.0, None, entry.why)
            return entry
    return None


def legend_for(name: str, attrs: Mapping[str, Any], data: np.ndarray | None = None) -> Legend:
    """The scale and floor of variable ``name`` with attributes ``attrs``; ``data`` (the values drawn) is
    used only when neither the attributes nor the table know the quantity."""
    floor = _number(attrs.get("display_floor"))
    declared = _declared(attrs)
    entry = _default(name, attrs)
    if declared is not None:
        return Legend(declared[0], declared[1], floor if floor is not None else (entry.floor if entry else None),
                      "declared")
    if entry is not None:
        return Legend(entry.lo, entry.hi, floor if floor is not None else entry.floor, "default")
    finite = data[np.isfinite(data)] if data is not None else np.empty(0)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if not hi - lo > 1e-9 * max(1.0, abs(lo), abs(hi)):  # a flat field (or rounding noise): one colour
        hi = lo + 1.0
    return Legend(lo, hi, floor, "data")
