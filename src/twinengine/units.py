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

__all__ = ["MAX_DATUM_LENGTH", "UnitError", "check_unit", "convert", "describe_unit", "split_datum",
           "unusual_prefixes"]

MAX_DATUM_LENGTH = 64  # a datum is a name (EGM2008, NAVD88, Ordnance Datum Newlyn), not a paragraph


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


# Heights above sea level written after the unit (``m asl``), read as the unit and this datum: UDUNITS has no
# word for a datum, and a value's unit stays convertible without it.
_DATUM_SUFFIXES = {"asl": "asl", "a.s.l.": "asl", "amsl": "asl", "a.m.s.l.": "asl", "aod": "AOD"}


def split_datum(text: str) -> tuple[str, str | None]:
    """``m asl`` (or ``m a.s.l.``, ``m amsl``, ``m AOD``) → (``m``, ``asl``); any other text → (text, None)."""
    unit, _, last = text.strip().rpartition(" ")
    datum = _DATUM_SUFFIXES.get(last.lower())
    return (unit.strip(), datum) if unit.strip() and datum else (text, None)


# Prefixes that are real but rare, and more often a typo or a misreading (``hh`` for hours is a hecto-hour).
_RARE_PREFIXES = frozenset({"hecto", "deca", "deka"})
_USUAL_WITH_RARE = frozenset({"pascal", "liter", "litre"})  # hPa, hL, daL are everyday units
_RARE_ON_SECONDS = _RARE_PREFIXES | {"deci"}


def _unusual(registry: Any, name: str) -> tuple[str, str] | None:
    """(prefix, unit) when ``name`` is a prefixed unit the prefix makes unusual, else None."""
    readings = registry.parse_unit_name(name)
    if not readings:
        return None
    prefix, base, _suffix = readings[0]
    if not prefix:
        return None
    is_time = str(registry.get_dimensionality(base)) == "[time]"
    if is_time and (base != "second" or prefix in _RARE_ON_SECONDS):
        return prefix, base
    if prefix in _RARE_PREFIXES and base not in _USUAL_WITH_RARE:
        return prefix, base
    return None


def _spelled(name: str) -> str:
    return name.replace("meter", "metre").replace("liter", "litre").replace("_", " ")


def describe_unit(text: str) -> str:
    """How a unit was read, in words: ``m3/hh`` → ``cubic metre per hectohour``."""
    powers = {2: "square ", 3: "cubic "}
    above: list[str] = []
    below: list[str] = []
    for name, exponent in _parse(text)._units.items():
        size = abs(exponent)
        word = powers.get(size, "") + _spelled(name) + ("" if size in (1, 2, 3) else f"^{size:g}")
        (above if exponent > 0 else below).append(word)
    words = " ".join(above) or "1"
    return words + "".join(f" per {w}" for w in below)


def unusual_prefixes(text: str) -> str | None:
    """A note saying how ``text`` was read when it parses only through an unusual prefix (hecto, deca, or
    any prefix on a time unit other than the second), else None: ``m3/hh`` is cubic metre per hectohour."""
    registry = _registry()
    found = [(name, hit) for name in _parse(text)._units if (hit := _unusual(registry, name)) is not None]
    if not found:
        return None
    parts = []
    for name, (prefix, base) in found:
        factor = registry.Quantity(1, name).to(base).magnitude
        parts.append(f"{_spelled(name)} is {factor:g} {_spelled(base)}s, through the prefix {prefix}")
    return f"{text!r} is read as {describe_unit(text)} ({'; '.join(parts)}): check that this unit is meant"
