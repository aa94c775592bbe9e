"""Physical units in CF/UDUNITS syntax (``m3 s-1``, ``mm/h``, ``degC``), via pint, set up as cf_xarray does.

The registry is built on first use: it is only needed when a manifest or a state write carries units. It is
cf_xarray's (``cf_xarray.units``) definitions on a pint registry of our own, because importing that module
imports all of xarray and matplotlib first, a second of ``twin app validate``; a unit test checks that both
registries read and convert units alike.
"""

from __future__ import annotations

import functools
import logging
import re
from functools import lru_cache
from typing import Any

__all__ = ["UnitError", "check_unit", "convert"]


class UnitError(ValueError):
    """Raised when a unit string cannot be parsed or two units measure different things."""


@lru_cache(maxsize=1)
def _registry() -> Any:
    # cf_xarray redefines some of pint's units on purpose (UDUNITS meanings); its notices are not news.
    logging.getLogger("pint.util").setLevel(logging.ERROR)
    import pint

    # As cf_xarray.units (Apache-2.0), which took it from MetPy (BSD-3-Clause) and xclim (Apache-2.0):
    # UDUNITS powers (m2 s-2 is m**2 s**-2) and percent signs, then the CF names pint lacks.
    powers = re.compile(r"(?<=[A-Za-z])(?![A-Za-z])(?<![0-9\-][eE])(?<![0-9\-])(?=[0-9\-])")
    units: Any = pint.UnitRegistry(autoconvert_offset_to_baseunit=True, force_ndarray_like=True,
                                   preprocessors=[str, functools.partial(powers.sub, "**"),
                                                  lambda text: text.replace("%", "percent")])
    for definition in _CF_DEFINITIONS:
        units.define(definition)
    return units


_CF_DEFINITIONS = (
    "percent = 0.01 = %",
    "@alias meter = gpm",
    "year = 365.25 * day = yr",
    "@alias degC = C = deg_C = Celsius = degrees_Celsius",
    "@alias degK = deg_K",
    "@alias day = d",
    "@alias hour = h",
    "degrees_north = degree = degrees_north = degrees_N = degreesN = degree_north = degree_N = degreeN",
    "degrees_east = degree = degrees_east = degrees_E = degreesE = degree_east = degree_E = degreeE",
    "degrees = degree = degrees",
    "[speed] = [length] / [time]",
    "practical_salinity_unit = [] = psu = PSU",
)


@lru_cache(maxsize=1024)
def _parse(text: str) -> Any:
    try:
        return _registry().parse_units(text)
    except Exception as exc:  # pint raises several unrelated types for bad input
        raise UnitError(f"{text!r} is not a unit in CF/UDUNITS syntax (e.g. 'm', 'mm/h', 'm3 s-1')") from exc


def check_unit(text: str) -> str:
    """Return ``text`` unchanged if it parses as a unit, else raise UnitError."""
    _parse(text)
    return text


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a number between compatible units; raise UnitError if they measure different things."""
    if from_unit == to_unit:
        return value
    source, target = _parse(from_unit), _parse(to_unit)
    try:
        return float(_registry().Quantity(value, source).to(target).magnitude)
    except Exception as exc:
        raise UnitError(f"{from_unit!r} cannot be converted to {to_unit!r}") from exc
